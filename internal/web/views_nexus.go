package web

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

const (
	typeClusters   = "Microsoft.NetworkCloud/clusters"
	typeMachines   = "Microsoft.NetworkCloud/bareMetalMachines"
	typeAppliances = "Microsoft.NetworkCloud/storageAppliances"
)

// rotationStatus is one secretRotationStatus entry.
type rotationStatus struct {
	SecretType             string     `json:"secretType"`
	LastRotationTime       *time.Time `json:"lastRotationTime"`
	RotationPeriodDays     int        `json:"rotationPeriodDays"`
	ExpirePeriodDays       int        `json:"expirePeriodDays"`
	SecretArchiveReference *struct {
		KeyVaultID    string `json:"keyVaultId"`
		KeyVaultURI   string `json:"keyVaultUri"`
		SecretName    string `json:"secretName"`
		SecretVersion string `json:"secretVersion"`
	} `json:"secretArchiveReference"`
}

// SecretLink is the portal page of the archived secret's versions ("" when
// the vault is not known by resource ID).
func (r rotationStatus) SecretLink() string {
	ref := r.SecretArchiveReference
	if ref == nil || ref.SecretName == "" || !secretNameRE.MatchString(ref.SecretName) {
		return ""
	}
	l := link(ref.KeyVaultID)
	if l == "" {
		return ""
	}
	return l + "/secrets/" + ref.SecretName
}

type clusterRes struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Properties struct {
		ClusterType           string `json:"clusterType"`
		ClusterVersion        string `json:"clusterVersion"`
		ClusterManagerID      string `json:"clusterManagerId"`
		DetailedStatus        string `json:"detailedStatus"`
		DetailedStatusMessage string `json:"detailedStatusMessage"`
		ProvisioningState     string `json:"provisioningState"`
		SecretArchive         *struct {
			KeyVaultID  string `json:"keyVaultId"`
			UseKeyVault string `json:"useKeyVault"`
		} `json:"secretArchive"`
		SecretArchiveSettings *struct {
			AssociatedIdentity *struct {
				IdentityType                   string `json:"identityType"`
				UserAssignedIdentityResourceID string `json:"userAssignedIdentityResourceId"`
			} `json:"associatedIdentity"`
			VaultURI string `json:"vaultUri"`
		} `json:"secretArchiveSettings"`
		SecretRotationStatus []rotationStatus `json:"secretRotationStatus"`
	} `json:"properties"`
}

func (c clusterRes) Link() string { return link(c.ID) }

func (c clusterRes) ResourceGroup() string {
	r, _ := parseID(c.ID)
	return r.RG
}

// machineRes is a bare-metal machine or a storage appliance.
type machineRes struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		ClusterID            string           `json:"clusterId"`
		DetailedStatus       string           `json:"detailedStatus"`
		CordonStatus         string           `json:"cordonStatus"`
		ReadyState           string           `json:"readyState"`
		SecretRotationStatus []rotationStatus `json:"secretRotationStatus"`
	} `json:"properties"`
}

type rotationAlert struct {
	ID        string     `json:"id"`
	OwnerID   string     `json:"ownerId"`
	Kind      string     `json:"kind"`
	Code      string     `json:"code"`
	Message   string     `json:"message"`
	RaisedAt  time.Time  `json:"raisedAt"`
	ClearedAt *time.Time `json:"clearedAt"`
}

// Owner is the last segment of the alert's owner resource.
func (a rotationAlert) Owner() string { return a.OwnerID[strings.LastIndexByte(a.OwnerID, '/')+1:] }

type clusterData struct {
	Cluster  clusterRes
	Machines section[machineRes]
	Alerts   section[rotationAlert]
}

func (p *Portal) serveCluster(w http.ResponseWriter, r *http.Request, s *session) {
	n, ok := pathNames(r, "sub", "rg", "name")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a cluster.")
		return
	}
	ctx := r.Context()
	var d clusterData
	if err := p.armGet(ctx, s, resPath(n[0], n[1], typeClusters, n[2]), apiNetworkCloud, &d.Cluster); err != nil {
		p.fail(w, r, s, err)
		return
	}
	// The cluster's machines and storage appliances, wherever their
	// resource group: every one in the subscription whose clusterId is it.
	var owners []machineRes
	var ownErr error
	for _, typ := range []string{typeMachines, typeAppliances} {
		items, err := armList[machineRes](ctx, p, s, "/subscriptions/"+url.PathEscape(n[0])+"/providers/"+typ, apiNetworkCloud)
		if err != nil {
			ownErr = err
			break
		}
		for _, m := range items {
			if strings.EqualFold(strings.TrimRight(m.Properties.ClusterID, "/"), d.Cluster.ID) {
				owners = append(owners, m)
			}
		}
	}
	sort.Slice(owners, func(i, j int) bool { return owners[i].Name < owners[j].Name })
	d.Machines = fill(p, owners, ownErr)
	var alerts struct {
		Value []rotationAlert `json:"value"`
	}
	err := p.call(ctx, s, http.MethodGet, p.opts.BaseURL+"/rotation/alerts?"+url.Values{"clusterId": {d.Cluster.ID}}.Encode(),
		p.opts.BaseURL, nil, &alerts)
	d.Alerts = fill(p, alerts.Value, err)
	id, _ := parseID(d.Cluster.ID)
	p.render(w, s, http.StatusOK, "cluster", "Cluster "+d.Cluster.Name, []crumb{
		{"Clusters", Prefix + "/clusters"},
		{id.RG, Prefix + "/subscriptions/" + url.PathEscape(id.Sub) + "/resourcegroups/" + url.PathEscape(id.RG)}}, d)
}
