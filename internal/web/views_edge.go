package web

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"time"
)

const typeDevices = "Microsoft.DataBoxEdge/dataBoxEdgeDevices"

type deviceRes struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Identity *struct {
		Type        string `json:"type"`
		PrincipalID string `json:"principalId"`
	} `json:"identity"`
	Properties struct {
		DataBoxEdgeDeviceStatus string `json:"dataBoxEdgeDeviceStatus"`
		DeviceType              string `json:"deviceType"`
		SerialNumber            string `json:"serialNumber"`
		ProvisioningState       string `json:"provisioningState"`
	} `json:"properties"`
}

func (d deviceRes) Link() string { return link(d.ID) }

func (d deviceRes) ResourceGroup() string {
	r, _ := parseID(d.ID)
	return r.RG
}

// extendedInfo is the part of getExtendedInformation the Security page
// shows: vault references and sync status (never a secret).
type extendedInfo struct {
	Properties struct {
		ClientSecretStoreID        string     `json:"clientSecretStoreId"`
		ClientSecretStoreURL       string     `json:"clientSecretStoreUrl"`
		ChannelIntegrityKeyName    string     `json:"channelIntegrityKeyName"`
		ChannelIntegrityKeyVersion string     `json:"channelIntegrityKeyVersion"`
		KeyVaultSyncStatus         string     `json:"keyVaultSyncStatus"`
		KeyVaultSyncError          string     `json:"keyVaultSyncError"`
		KeyVaultSyncTime           *time.Time `json:"keyVaultSyncTime"`
		DeviceSecrets              map[string]struct {
			KeyVaultID string `json:"keyVaultId"`
		} `json:"deviceSecrets"`
	} `json:"properties"`
}

type edgeAlert struct {
	Name       string `json:"name"`
	Properties struct {
		Title              string    `json:"title"`
		AlertType          string    `json:"alertType"`
		AppearedAtDateTime time.Time `json:"appearedAtDateTime"`
		Recommendation     string    `json:"recommendation"`
		Severity           string    `json:"severity"`
		ErrorDetails       struct {
			ErrorCode    string `json:"errorCode"`
			ErrorMessage string `json:"errorMessage"`
		} `json:"errorDetails"`
	} `json:"properties"`
}

type deviceSecretRow struct {
	Name, KeyVaultID string
}

type deviceData struct {
	Device    deviceRes
	Info      *extendedInfo
	InfoErr   string
	VaultName string
	VaultLink string
	Secrets   []deviceSecretRow
	Alerts    section[edgeAlert]
	Base      string
}

// serveDevice is the device's Security page: its key vault, the Channel
// Integrity Key's name, keyVaultSyncStatus, the device secrets' references,
// alerts, and the Sync device secrets and Recover key vault commands.
func (p *Portal) serveDevice(w http.ResponseWriter, r *http.Request, s *session) {
	n, ok := pathNames(r, "sub", "rg", "name")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a device.")
		return
	}
	ctx := r.Context()
	path := resPath(n[0], n[1], typeDevices, n[2])
	d := deviceData{}
	if err := p.armGet(ctx, s, path, apiEdge, &d.Device); err != nil {
		p.fail(w, r, s, err)
		return
	}
	d.Base = d.Device.Link()
	var info extendedInfo
	err := p.call(ctx, s, http.MethodPost, p.arm(path+"/getExtendedInformation", apiEdge, nil), p.opts.BaseURL, nil, &info)
	if sec := fill(p, []extendedInfo{info}, err); sec.Denied != "" || sec.Err != "" {
		d.InfoErr = sec.Denied + sec.Err
	} else {
		d.Info = &info
		if id, ok := parseID(info.Properties.ClientSecretStoreID); ok {
			d.VaultName, d.VaultLink = id.Name, link(info.Properties.ClientSecretStoreID)
		}
		for name, ref := range info.Properties.DeviceSecrets {
			d.Secrets = append(d.Secrets, deviceSecretRow{Name: name, KeyVaultID: ref.KeyVaultID})
		}
		sort.Slice(d.Secrets, func(i, j int) bool { return d.Secrets[i].Name < d.Secrets[j].Name })
	}
	alerts, err := armList[edgeAlert](ctx, p, s, path+"/alerts", apiEdge)
	d.Alerts = fill(p, alerts, err)
	p.render(w, s, http.StatusOK, "device", "Security of "+d.Device.Name, []crumb{
		{"Stack Edge devices", Prefix + "/devices"},
		{n[1], Prefix + "/subscriptions/" + url.PathEscape(n[0]) + "/resourcegroups/" + url.PathEscape(n[1])}}, d)
}

var vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

func (p *Portal) deviceAction(w http.ResponseWriter, r *http.Request, s *session, action, label string, body any, done string) {
	n, ok := pathNames(r, "sub", "rg", "name")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a device.")
		return
	}
	path := resPath(n[0], n[1], typeDevices, n[2])
	err := p.call(r.Context(), s, http.MethodPost, p.arm(path+"/"+action, apiEdge, nil), p.opts.BaseURL, body, nil)
	var ae *apiError
	switch {
	case err == nil:
		s.setFlash(done)
	case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != http.StatusForbidden:
		// Refused for a reason the operator can act on (not activated,
		// no vault yet): say so on the Security page.
		s.setFlash(label + " was refused: " + ae.Message)
	default:
		p.fail(w, r, s, err)
		return
	}
	http.Redirect(w, r, link(path), http.StatusSeeOther)
}

// serveDeviceSync is "Sync device secrets": POST {device}/syncDeviceSecrets.
func (p *Portal) serveDeviceSync(w http.ResponseWriter, r *http.Request, s *session) {
	p.deviceAction(w, r, s, "syncDeviceSecrets", "Sync device secrets", nil,
		"Sync requested: keyVaultSyncStatus is KeyVaultSyncPending until the device pushes its secrets.")
}

// serveDeviceRecover is "Recover key vault" (the guide's Reconfigure): POST
// {device}/recoverKeyVault, with a new vault name when the old one was purged.
func (p *Portal) serveDeviceRecover(w http.ResponseWriter, r *http.Request, s *session) {
	var body any
	if name := r.PostForm.Get("keyVaultName"); name != "" {
		if !vaultNameRE.MatchString(name) {
			p.renderError(w, r, s, http.StatusBadRequest, "Bad vault name", "A key vault name is 3-24 letters, digits and hyphens, starting with a letter.")
			return
		}
		body = map[string]string{"keyVaultName": name}
	}
	p.deviceAction(w, r, s, "recoverKeyVault", "Recover key vault", body,
		"Recover key vault requested: the vault, its lock, audit logging and the device's access are restored; the device pushes its secrets next (KeyVaultSyncPending).")
}
