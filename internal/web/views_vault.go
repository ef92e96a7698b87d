package web

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

const typeVaults = "Microsoft.KeyVault/vaults"

type subscription struct {
	SubscriptionID string `json:"subscriptionId"`
	DisplayName    string `json:"displayName"`
	State          string `json:"state"`
	TenantID       string `json:"tenantId"`
}

type resourceGroup struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Location string `json:"location"`
}

// vaultRes is a vault as the portal reads it: properties only, by type.
type vaultRes struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		TenantID string `json:"tenantId"`
		SKU      struct {
			Family string `json:"family"`
			Name   string `json:"name"`
		} `json:"sku"`
		AccessPolicies            []accessPolicy `json:"accessPolicies"`
		VaultURI                  string         `json:"vaultUri"`
		EnableSoftDelete          bool           `json:"enableSoftDelete"`
		SoftDeleteRetentionInDays int            `json:"softDeleteRetentionInDays"`
		EnableRBACAuthorization   bool           `json:"enableRbacAuthorization"`
		EnablePurgeProtection     *bool          `json:"enablePurgeProtection"`
		PublicNetworkAccess       string         `json:"publicNetworkAccess"`
		ProvisioningState         string         `json:"provisioningState"`
		NetworkACLs               *struct {
			Bypass        string `json:"bypass"`
			DefaultAction string `json:"defaultAction"`
			IPRules       []struct {
				Value string `json:"value"`
			} `json:"ipRules"`
			VirtualNetworkRules []struct {
				ID string `json:"id"`
			} `json:"virtualNetworkRules"`
		} `json:"networkAcls"`
	} `json:"properties"`
}

func (v vaultRes) Link() string { return link(v.ID) }

func (v vaultRes) ResourceGroup() string {
	r, _ := parseID(v.ID)
	return r.RG
}

func (v vaultRes) PurgeProtection() bool {
	return v.Properties.EnablePurgeProtection != nil && *v.Properties.EnablePurgeProtection
}

type accessPolicy struct {
	TenantID      string `json:"tenantId"`
	ObjectID      string `json:"objectId"`
	ApplicationID string `json:"applicationId"`
	Permissions   struct {
		Keys         []string `json:"keys"`
		Secrets      []string `json:"secrets"`
		Certificates []string `json:"certificates"`
	} `json:"permissions"`
}

// secretItem is a secret's metadata from the data plane's list: there is
// no field for a value, so none can be shown.
type secretItem struct {
	ID          string            `json:"id"`
	ContentType string            `json:"contentType"`
	Tags        map[string]string `json:"tags"`
	Managed     *bool             `json:"managed"`
	Attributes  struct {
		Enabled *bool  `json:"enabled"`
		Created *int64 `json:"created"`
		Updated *int64 `json:"updated"`
		Expires *int64 `json:"exp"`
		NotBef  *int64 `json:"nbf"`
	} `json:"attributes"`
}

// Name is the secret's name (the segment after /secrets/).
func (s secretItem) Name() string {
	_, rest, _ := strings.Cut(s.ID, "/secrets/")
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// Version is the version segment of a version's id.
func (s secretItem) Version() string {
	_, rest, _ := strings.Cut(s.ID, "/secrets/")
	_, ver, _ := strings.Cut(rest, "/")
	return ver
}

func (s secretItem) Enabled() bool { return s.Attributes.Enabled == nil || *s.Attributes.Enabled }

type lockRes struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Properties struct {
		Level string `json:"level"`
		Notes string `json:"notes"`
	} `json:"properties"`
}

// Scope is where the lock is defined (it may be inherited).
func (l lockRes) Scope() string {
	scope, _, _ := strings.Cut(l.ID, "/providers/Microsoft.Authorization/locks/")
	return scope
}

type diagSetting struct {
	Name       string `json:"name"`
	Properties struct {
		StorageAccountID string `json:"storageAccountId"`
		WorkspaceID      string `json:"workspaceId"`
		Logs             []struct {
			Category      string `json:"category"`
			CategoryGroup string `json:"categoryGroup"`
			Enabled       bool   `json:"enabled"`
		} `json:"logs"`
	} `json:"properties"`
}

// section is a part of a page that may be refused on its own (a Reader sees
// the vault but not its secrets).
type section[T any] struct {
	Items  []T
	Denied string // the API's 403 message
	Err    string
}

func fill[T any](p *Portal, items []T, err error) section[T] {
	var ae *apiError
	switch {
	case err == nil:
		return section[T]{Items: items}
	case isStatus(err, http.StatusForbidden) && asAPI(err, &ae):
		return section[T]{Denied: ae.Message}
	case asAPI(err, &ae):
		return section[T]{Err: ae.Message}
	default:
		p.log.Warn("portal: API call failed", "err", err)
		return section[T]{Err: "keyhaven's API could not be reached."}
	}
}

func asAPI(err error, ae **apiError) bool {
	e, ok := err.(*apiError)
	if ok {
		*ae = e
	}
	return ok
}

func (p *Portal) serveSubscriptions(w http.ResponseWriter, r *http.Request, s *session) {
	subs, err := armList[subscription](r.Context(), p, s, "/subscriptions", apiSubscriptions)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	p.render(w, s, http.StatusOK, "subscriptions", "Subscriptions", nil, subs)
}

type subscriptionData struct {
	Sub    subscription
	Groups section[resourceGroup]
	Vaults section[vaultRes]
}

func (p *Portal) serveSubscription(w http.ResponseWriter, r *http.Request, s *session) {
	n, ok := pathNames(r, "sub")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a subscription id.")
		return
	}
	ctx := r.Context()
	var d subscriptionData
	if err := p.armGet(ctx, s, "/subscriptions/"+url.PathEscape(n[0]), apiSubscriptions, &d.Sub); err != nil {
		p.fail(w, r, s, err)
		return
	}
	groups, err := armList[resourceGroup](ctx, p, s, "/subscriptions/"+url.PathEscape(n[0])+"/resourcegroups", apiResources)
	d.Groups = fill(p, groups, err)
	vaults, err := armList[vaultRes](ctx, p, s, "/subscriptions/"+url.PathEscape(n[0])+"/providers/"+typeVaults, apiKeyVault)
	d.Vaults = fill(p, vaults, err)
	p.render(w, s, http.StatusOK, "subscription", d.Sub.DisplayName,
		[]crumb{{"Subscriptions", Prefix + "/subscriptions"}}, d)
}

type groupData struct {
	Sub, Name  string
	Vaults     section[vaultRes]
	Identities section[identityRes]
	Clusters   section[clusterRes]
	Devices    section[deviceRes]
}

func (p *Portal) serveResourceGroup(w http.ResponseWriter, r *http.Request, s *session) {
	n, ok := pathNames(r, "sub", "rg")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a resource group.")
		return
	}
	ctx := r.Context()
	var rg resourceGroup
	if err := p.armGet(ctx, s, rgPath(n[0], n[1]), apiResources, &rg); err != nil {
		p.fail(w, r, s, err)
		return
	}
	d := groupData{Sub: n[0], Name: rg.Name}
	vaults, err := armList[vaultRes](ctx, p, s, rgPath(n[0], n[1])+"/providers/"+typeVaults, apiKeyVault)
	d.Vaults = fill(p, vaults, err)
	clusters, err := armList[clusterRes](ctx, p, s, rgPath(n[0], n[1])+"/providers/"+typeClusters, apiNetworkCloud)
	d.Clusters = fill(p, clusters, err)
	devices, err := armList[deviceRes](ctx, p, s, rgPath(n[0], n[1])+"/providers/"+typeDevices, apiEdge)
	d.Devices = fill(p, devices, err)
	identities, err := armList[identityRes](ctx, p, s, rgPath(n[0], n[1])+"/providers/"+typeIdentities, apiMSI)
	d.Identities = fill(p, identities, err)
	p.render(w, s, http.StatusOK, "group", "Resource group "+rg.Name, []crumb{
		{"Subscriptions", Prefix + "/subscriptions"},
		{n[0], Prefix + "/subscriptions/" + url.PathEscape(n[0])}}, d)
}

// forEachSubscription lists a resource type in every subscription the user
// can see.
func forEachSubscription[T any](ctx context.Context, p *Portal, s *session, typ, apiVersion string) ([]T, error) {
	subs, err := armList[subscription](ctx, p, s, "/subscriptions", apiSubscriptions)
	if err != nil {
		return nil, err
	}
	var out []T
	for _, sub := range subs {
		items, err := armList[T](ctx, p, s, "/subscriptions/"+url.PathEscape(sub.SubscriptionID)+"/providers/"+typ, apiVersion)
		if isStatus(err, http.StatusForbidden) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
	}
	return out, nil
}

// listPage serves the page listing one resource type across every
// subscription the user can see, sorted by name (vaults, clusters, devices).
func listPage[T any](p *Portal, typ, apiVersion, tmpl, title string, name func(T) string) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		items, err := forEachSubscription[T](r.Context(), p, s, typ, apiVersion)
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		sort.Slice(items, func(i, j int) bool { return name(items[i]) < name(items[j]) })
		p.render(w, s, http.StatusOK, tmpl, title, nil, items)
	}
}

type vaultData struct {
	Vault   vaultRes
	Secrets section[secretItem]
	IAM     iamView
	Locks   section[lockRes]
	Diag    section[diagSetting]
	Base    string // the vault's portal path
	// Names are the directory's display names of the access policies'
	// object ids, where the user may read them.
	Names map[string]string
}

// maxNameLookups bounds the directory lookups of one vault page.
const maxNameLookups = 25

// principalNames looks object ids (of access policies and role
// assignments) up in the directory (service principals, managed identities
// included, then users); ids the user may not read or that are gone stay
// unnamed.
func (p *Portal) principalNames(ctx context.Context, s *session, ids []string) map[string]string {
	names := map[string]string{}
	for _, oid := range ids {
		if len(names) >= maxNameLookups || !nameRE.MatchString(oid) {
			continue
		}
		if _, done := names[oid]; done {
			continue
		}
		var sp struct {
			DisplayName          string `json:"displayName"`
			ServicePrincipalType string `json:"servicePrincipalType"`
		}
		if err := p.call(ctx, s, http.MethodGet, p.opts.BaseURL+"/v1.0/servicePrincipals/"+url.PathEscape(oid), p.opts.BaseURL, nil, &sp); err == nil {
			names[oid] = sp.DisplayName + " (" + sp.ServicePrincipalType + ")"
			continue
		}
		var u struct {
			DisplayName       string `json:"displayName"`
			UserPrincipalName string `json:"userPrincipalName"`
		}
		if err := p.call(ctx, s, http.MethodGet, p.opts.BaseURL+"/v1.0/users/"+url.PathEscape(oid), p.opts.BaseURL, nil, &u); err == nil {
			names[oid] = u.DisplayName + " (" + u.UserPrincipalName + ")"
			continue
		}
		names[oid] = ""
	}
	return names
}

// getVault reads the vault named by the request path.
func (p *Portal) getVault(w http.ResponseWriter, r *http.Request, s *session) (*vaultRes, bool) {
	n, ok := pathNames(r, "sub", "rg", "name")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a key vault.")
		return nil, false
	}
	var v vaultRes
	if err := p.armGet(r.Context(), s, resPath(n[0], n[1], typeVaults, n[2]), apiKeyVault, &v); err != nil {
		p.fail(w, r, s, err)
		return nil, false
	}
	return &v, true
}

func vaultCrumbs(v *vaultRes) []crumb {
	id, _ := parseID(v.ID)
	return []crumb{
		{"Subscriptions", Prefix + "/subscriptions"},
		{id.Sub, Prefix + "/subscriptions/" + url.PathEscape(id.Sub)},
		{id.RG, Prefix + "/subscriptions/" + url.PathEscape(id.Sub) + "/resourcegroups/" + url.PathEscape(id.RG)},
	}
}

// dataPlane is a data-plane URL under the vault's URI.
func dataPlane(v *vaultRes, path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", apiDataPlane)
	return strings.TrimRight(v.Properties.VaultURI, "/") + path + "?" + q.Encode()
}

func (p *Portal) serveVault(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := p.getVault(w, r, s)
	if !ok {
		return
	}
	ctx := r.Context()
	d := vaultData{Vault: *v, Base: v.Link()}
	secrets, err := list[secretItem](ctx, p, s, dataPlane(v, "/secrets", url.Values{"maxresults": {"25"}}), p.opts.VaultAudience, 1000)
	sort.Slice(secrets, func(i, j int) bool { return secrets[i].Name() < secrets[j].Name() })
	d.Secrets = fill(p, secrets, err)
	locks, err := armList[lockRes](ctx, p, s, v.ID+"/providers/Microsoft.Authorization/locks", apiLocks)
	d.Locks = fill(p, locks, err)
	diag, err := armList[diagSetting](ctx, p, s, v.ID+"/providers/Microsoft.Insights/diagnosticSettings", apiDiagnostics)
	d.Diag = fill(p, diag, err)
	var ids []string
	for _, ap := range v.Properties.AccessPolicies {
		ids = append(ids, ap.ObjectID)
	}
	d.IAM = p.iam(ctx, s, v.ID, ids)
	d.Names = d.IAM.Names
	p.render(w, s, http.StatusOK, "vault", "Key vault "+v.Name, vaultCrumbs(v), d)
}

type versionsData struct {
	Vault    vaultRes
	Name     string
	Versions section[secretItem]
}

func (p *Portal) serveSecretVersions(w http.ResponseWriter, r *http.Request, s *session) {
	name := r.PathValue("secret")
	if !secretNameRE.MatchString(name) {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a secret name.")
		return
	}
	v, ok := p.getVault(w, r, s)
	if !ok {
		return
	}
	versions, err := list[secretItem](r.Context(), p, s, dataPlane(v, "/secrets/"+name+"/versions", url.Values{"maxresults": {"25"}}),
		p.opts.VaultAudience, 1000)
	sort.Slice(versions, func(i, j int) bool {
		return derefInt(versions[i].Attributes.Created) > derefInt(versions[j].Attributes.Created)
	})
	crumbs := append(vaultCrumbs(v), crumb{v.Name, v.Link()})
	p.render(w, s, http.StatusOK, "versions", "Secret "+name, crumbs,
		versionsData{Vault: *v, Name: name, Versions: fill(p, versions, err)})
}

func derefInt(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
