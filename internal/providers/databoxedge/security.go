package databoxedge

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/store"
)

// vaultHealth is what the service sees of a device's vault.
type vaultHealth struct {
	state *keyvault.VaultState // nil when no vault holds the name (purged)
	// gone: deleted, purged, or the name now belongs to another vault.
	gone bool
	// policyOK: the device identity has secrets Get and Set.
	policyOK bool
}

func (p *Provider) health(ctx context.Context, d *deviceRecord) (*vaultHealth, error) {
	kv := d.KeyVault
	if kv == nil || p.opts.Vaults == nil {
		return nil, nil
	}
	h := &vaultHealth{}
	st, err := p.opts.Vaults.VaultStatus(ctx, kv.Name)
	switch {
	case isStatus(err, http.StatusNotFound):
		h.gone = true
		return h, nil
	case err != nil:
		return nil, azerr.From(err)
	}
	h.state = st
	if st.Deleted || !strings.EqualFold(st.Info.ResourceID, kv.ResourceID) {
		h.gone = true
		return h, nil
	}
	blk, err := p.ids.GetResourceIdentity(ctx, d.id().String())
	if err != nil {
		return nil, azerr.From(err)
	}
	if blk == nil || blk.PrincipalID == "" {
		return h, nil
	}
	for _, ap := range st.Info.AccessPolicies {
		if !strings.EqualFold(ap.ObjectID, blk.PrincipalID) {
			continue
		}
		has := func(perm string) bool {
			return slices.ContainsFunc(ap.Permissions.Secrets, func(s string) bool {
				return strings.EqualFold(s, perm) || strings.EqualFold(s, "all")
			})
		}
		if has("get") && has("set") {
			h.policyOK = true
		}
	}
	return h, nil
}

// alerts computes the device's key-vault alerts on read: a critical alert
// while its vault is deleted or purged, a warning while the device identity
// lacks its Get/Set access policy. Both clear once recovered.
func (p *Provider) alerts(ctx context.Context, d *deviceRecord) ([]alert, error) {
	h, err := p.health(ctx, d)
	if err != nil || h == nil {
		return []alert{}, err
	}
	mk := func(typ, severity, title, recommendation, code, msg string) alert {
		name := uuid.NewSHA1(uuid.NameSpaceURL, []byte(strings.ToLower(d.id().String())+"|"+typ)).String()
		at := p.clk.Now().UTC()
		if h.state != nil && h.state.DeletionDate != nil && typ == AlertKeyVaultDeleted {
			at = h.state.DeletionDate.UTC()
		}
		return alert{ID: d.id().Child("alerts", name).String(), Name: name, Type: AlertType, Properties: alertProps{
			Title: title, AlertType: typ, AppearedAtDateTime: at, Recommendation: recommendation, Severity: severity,
			ErrorDetails:        alertErrorDetails{ErrorCode: code, ErrorMessage: msg, Occurrences: 1},
			DetailedInformation: map[string]string{"keyVaultName": d.KeyVault.Name, "keyVaultId": d.KeyVault.ResourceID}}}
	}
	kv := d.KeyVault
	var out []alert
	switch {
	case h.gone:
		state := "purged"
		if h.state != nil && h.state.Deleted {
			state = "deleted"
		}
		out = append(out, mk(AlertKeyVaultDeleted, "Critical",
			"The key vault '"+kv.Name+"' associated with the device was "+state+".",
			"Recover the key vault (POST .../recoverKeyVault, or keyhaven databoxedge device recover-key-vault): within the retention period the vault is recovered with the same name; after a purge a new vault is created.",
			"KeyVaultDeleted", "The key vault "+kv.ResourceID+" is "+state+"."))
	case !h.policyOK:
		out = append(out, mk(AlertKeyVaultAccessPolicy, "Critical",
			"The device's managed identity has lost access to key vault '"+kv.Name+"'.",
			"Recover the key vault (POST .../recoverKeyVault, or keyhaven databoxedge device recover-key-vault) to restore the managed identity's secret Get and Set access.",
			"KeyVaultAccessPolicyMissing", "The access policy of the device's system-assigned identity on "+kv.ResourceID+" is missing or lacks secret Get and Set."))
	case d.SyncStatus == SyncFailed:
		msg := d.SyncError
		if msg == "" {
			msg = "The device reported that it could not sync its secrets with " + kv.ResourceID + "."
		}
		out = append(out, mk(AlertKeyVaultSyncFailed, "Warning",
			"The device could not sync its secrets with key vault '"+kv.Name+"'.",
			"Check the device's connectivity to the key vault, then select Sync device secrets (POST .../syncDeviceSecrets, or keyhaven databoxedge device sync-secrets).",
			"KeyVaultSyncFailed", msg))
	}
	if out == nil {
		out = []alert{}
	}
	return out, nil
}

// serveAlerts serves GET .../dataBoxEdgeDevices/{device}/alerts[/{name}].
func (p *Provider) serveAlerts(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Method != http.MethodGet || len(req.ID.Providers) != 1 || req.ID.ResourceGroup == "" {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	seg := req.ID.Providers[0]
	dev := arm.NewResourceID(req.ID.SubscriptionID, req.ID.ResourceGroup, Namespace, typeDevices, seg.Names[0])
	d, err := p.load(ctx, dev)
	if err != nil {
		return nil, err
	}
	as, err := p.alerts(ctx, d)
	if err != nil {
		return nil, err
	}
	if req.Kind == arm.KindCollection {
		return arm.OK(arm.Page[alert]{Value: as}), nil
	}
	for _, a := range as {
		if strings.EqualFold(a.Name, req.ID.Name()) {
			return arm.OK(a), nil
		}
	}
	return nil, arm.ResourceNotFound(req.ID)
}

// extended renders DataBoxEdgeDeviceExtendedInfo.
// extendedResponse answers an action with the device's extended
// information as it is after the action.
func (p *Provider) extendedResponse(ctx context.Context, d *deviceRecord) (*arm.Response, error) {
	out, err := p.extended(ctx, d)
	if err != nil {
		return nil, err
	}
	return arm.OK(out), nil
}

func (p *Provider) extended(ctx context.Context, d *deviceRecord) (extendedInfo, error) {
	props := extendedInfoProps{ResourceKey: d.ResourceKey, KeyVaultSyncStatus: SyncNotConfigured, DeviceSecrets: map[string]secretRef{}}
	if kv := d.KeyVault; kv != nil {
		props.ClientSecretStoreID, props.ClientSecretStoreURL = kv.ResourceID, strings.TrimRight(kv.URI, "/")
		props.ChannelIntegrityKeyName, props.ChannelIntegrityKeyVersion = kv.CIKName, kv.CIKVersion
		props.KeyVaultSyncStatus = d.SyncStatus
		h, err := p.health(ctx, d)
		if err != nil {
			return extendedInfo{}, err
		}
		if h != nil && (h.gone || !h.policyOK) {
			props.KeyVaultSyncStatus = SyncFailed
		}
		if kv.CIKName != "" {
			props.DeviceSecrets[SecretChannelIntegrityKey] = secretRef{KeyVaultID: strings.TrimRight(kv.URI, "/") + "/secrets/" + kv.CIKName}
		}
		// References the device reported into this vault (a vault created
		// after a purge has none until the device pushes again).
		prefix := strings.ToLower(strings.TrimRight(kv.URI, "/")) + "/secrets/"
		for name, ref := range d.DeviceSecrets {
			if strings.HasPrefix(strings.ToLower(ref), prefix) {
				props.DeviceSecrets[name] = secretRef{KeyVaultID: ref}
			}
		}
		if props.KeyVaultSyncStatus == SyncFailed {
			props.KeyVaultSyncError = d.SyncError
		}
		props.KeyVaultSyncTime = d.SyncedAt
		if props.KeyVaultSyncStatus == SyncPending {
			props.KeyVaultSyncRequestID = d.SyncRequest
		}
	}
	return extendedInfo{ID: d.id().String(), Name: d.Name, Type: DeviceType, Properties: props}, nil
}

// getExtendedInfo serves POST .../getExtendedInformation.
func (p *Provider) getExtendedInfo(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	d, err := p.load(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	return p.extendedResponse(ctx, d)
}

// extendedPatch is DataBoxEdgeDeviceExtendedInfoPatch.
type extendedPatch struct {
	ClientSecretStoreID        *string `json:"clientSecretStoreId"`
	ClientSecretStoreURL       *string `json:"clientSecretStoreUrl"`
	ChannelIntegrityKeyName    *string `json:"channelIntegrityKeyName"`
	ChannelIntegrityKeyVersion *string `json:"channelIntegrityKeyVersion"`
	SyncStatus                 *string `json:"syncStatus"`
	// keyhaven extensions: the device's failure reason, and where it stored
	// its secrets (references only).
	KeyVaultSyncError *string                      `json:"keyVaultSyncError"`
	DeviceSecrets     map[string]deviceSecretPatch `json:"deviceSecrets"`
	// SyncRequestID echoes the keyVaultSyncRequestId the device saw when
	// it began the push it reports.
	SyncRequestID *string `json:"keyVaultSyncRequestId"`
}

// updateExtendedInfo serves POST .../updateExtendedInformation (the spec's
// Devices_UpdateExtendedInformation): the device reports its CIK version
// and sync status. The vault itself changes only through activation and
// recoverKeyVault, so a clientSecretStoreId/Url naming another vault is
// refused.
func (p *Provider) updateExtendedInfo(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body extendedPatch
	if len(bytes.TrimSpace(req.Body)) > 0 {
		if err := arm.DecodeJSON(req.Body, &body); err != nil {
			return nil, err
		}
	}
	status := ""
	if body.SyncStatus != nil && *body.SyncStatus != "" {
		var err error
		if status, err = pick(syncStatuses, *body.SyncStatus, "syncStatus"); err != nil {
			return nil, err
		}
	}
	for _, c := range []struct {
		t string
		s *string
	}{{"channelIntegrityKeyName", body.ChannelIntegrityKeyName}, {"channelIntegrityKeyVersion", body.ChannelIntegrityKeyVersion}} {
		if err := checkText(c.t, c.s, 127); err != nil {
			return nil, err
		}
	}
	d, err := p.update(ctx, req.Target, func(d *deviceRecord) error {
		kv := d.KeyVault
		if kv == nil {
			if body.ClientSecretStoreID != nil || body.ClientSecretStoreURL != nil || body.ChannelIntegrityKeyName != nil || body.ChannelIntegrityKeyVersion != nil {
				return azerr.Conflict("The device '%s' has no key vault yet; generate an activation key first.", d.Name)
			}
		} else {
			if s := deref(body.ClientSecretStoreID); s != "" && !strings.EqualFold(s, kv.ResourceID) {
				return badProp("clientSecretStoreId", "The device's key vault is '%s'; use recoverKeyVault to change it.", kv.ResourceID)
			}
			if s := deref(body.ClientSecretStoreURL); s != "" && !strings.EqualFold(strings.TrimRight(s, "/"), strings.TrimRight(kv.URI, "/")) {
				return badProp("clientSecretStoreUrl", "The device's key vault is at '%s'; use recoverKeyVault to change it.", kv.URI)
			}
			if body.ChannelIntegrityKeyName != nil && *body.ChannelIntegrityKeyName != "" {
				kv.CIKName = *body.ChannelIntegrityKeyName
			}
			if body.ChannelIntegrityKeyVersion != nil && *body.ChannelIntegrityKeyVersion != "" {
				kv.CIKVersion = *body.ChannelIntegrityKeyVersion
			}
		}
		if body.DeviceSecrets != nil {
			refs, err := checkDeviceSecrets(kv, body.DeviceSecrets)
			if err != nil {
				return err
			}
			if d.DeviceSecrets == nil {
				d.DeviceSecrets = map[string]string{}
			}
			for name, ref := range refs {
				d.DeviceSecrets[name] = ref
			}
		}
		if status == SyncSynced && d.SyncStatus == SyncPending && body.SyncRequestID != nil && *body.SyncRequestID != d.SyncRequest {
			// The device pushed before the pending request: it stays
			// pending for the next pass.
			status = ""
		}
		if status != "" {
			d.SyncStatus, d.SyncError = status, ""
			switch status {
			case SyncFailed:
				d.SyncError = syncErrorText(deref(body.KeyVaultSyncError))
			case SyncSynced:
				now := req.Now
				d.SyncedAt = &now
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.extendedResponse(ctx, d)
}

// recoverKeyVault serves POST .../recoverKeyVault (keyhaven extension for
// the portal's "Reconfigure"), {"keyVaultName": optional, only used when the
// old vault was purged}. Within retention the deleted vault is recovered
// with the same name and locked again; after a purge a new vault is created
// and a new CIK generated. The audit-log account (and its lock) and the
// diagnostic setting are recreated when missing, and the identity's
// Get/Set access policy is granted again. The device then has to push its
// secrets: keyVaultSyncStatus becomes KeyVaultSyncPending.
func (p *Provider) recoverKeyVault(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	newName, err := decodeVaultName(req)
	if err != nil {
		return nil, err
	}
	if err := p.needPlatform(); err != nil {
		return nil, err
	}
	d, err := p.load(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	if d.KeyVault == nil {
		return nil, azerr.New(http.StatusConflict, "KeyVaultNotConfigured",
			"The device '%s' has no key vault yet; generate an activation key to create it.", d.Name)
	}
	dp, err := p.devicePrincipal(ctx, d)
	if err != nil {
		return nil, err
	}
	h, err := p.health(ctx, d)
	if err != nil {
		return nil, err
	}
	old := d.KeyVault
	recoverable := h.state != nil && h.state.Deleted && strings.EqualFold(h.state.Info.ResourceID, old.ResourceID) && !h.state.Purging
	purged := h.gone && !recoverable
	name := old.Name
	if purged {
		name = newName
		if name == "" {
			if name, err = p.defaultVaultName(d.Name); err != nil {
				return nil, azerr.Internal(err)
			}
		}
	} else if newName != "" && !strings.EqualFold(newName, old.Name) {
		return nil, arm.BadRequest("KeyVaultRecoverable",
			"The key vault '%s' can still be recovered (its name cannot be reused until it is purged); omit keyVaultName.", old.Name).WithTarget("keyVaultName")
	}
	vid := vaultIDOf(d, name)
	if err := p.authorizeVault(ctx, req, "Microsoft.KeyVault/vaults/write", vid.String()); err != nil {
		return nil, err
	}
	if purged {
		if err := p.checkNameFree(ctx, name); err != nil {
			return nil, err
		}
	}
	hasAccount := false
	if old.StorageAccountID != "" {
		if hasAccount, err = p.opts.Accounts.Exists(ctx, old.StorageAccountID); err != nil {
			return nil, azerr.From(err)
		}
	}
	acct := ""
	if !hasAccount || purged {
		if acct, err = p.storageName(name); err != nil {
			return nil, azerr.Internal(err)
		}
	}
	id := d.id()
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := store.GetJSON[deviceRecord](ctx, tx, keyOf(id))
		if err != nil {
			return err
		}
		if cur.KeyVault == nil || !strings.EqualFold(cur.KeyVault.Name, old.Name) {
			return azerr.Conflict("The device's key vault changed during recovery; retry.")
		}
		link := *cur.KeyVault
		switch {
		case purged:
			vi, err := p.opts.Vaults.CreateVaultTx(ctx, tx, keyvault.VaultSpec{Name: name, SubscriptionID: d.SubscriptionID,
				ResourceGroup: d.ResourceGroup, Location: d.Location, TenantID: dp.TenantID,
				AccessPolicies: []authz.AccessPolicy{policyFor(dp)}, By: req.Principal}, req.Now)
			if err != nil {
				return err
			}
			link = keyVaultLink{Name: vi.Name, ResourceID: vi.ResourceID, URI: p.opts.Vaults.VaultURI(vi.Name), StorageAccountID: link.StorageAccountID}
		case recoverable:
			if _, err := p.opts.Vaults.RecoverVaultTx(ctx, tx, d.SubscriptionID, d.ResourceGroup, name, req.Principal, req.Now); err != nil {
				return err
			}
		}
		if err := p.lockTx(ctx, tx, vid, VaultLockName, "Key vault of Data Box Edge device "+id.String(), req.Principal); err != nil {
			return err
		}
		if acct != "" {
			sid, err := p.accountTx(ctx, tx, d, name, acct, req)
			if err != nil {
				return err
			}
			link.StorageAccountID = sid
		} else if aid, err := arm.ParseResourceID(link.StorageAccountID); err == nil {
			if err := p.lockTx(ctx, tx, aid, StorageLockName, "Audit logs of key vault "+name, req.Principal); err != nil {
				return err
			}
		}
		link.Configured = false
		cur.KeyVault = &link
		_, err = store.PutJSON(ctx, tx, keyOf(id), cur, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if !purged {
		if _, err := p.opts.Vaults.AddAccessPolicy(ctx, name, policyFor(dp), req.Principal); err != nil {
			return nil, azerr.From(err)
		}
	}
	d, err = p.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if d, err = p.finishSetup(ctx, req, d, dp, purged); err != nil {
		return nil, err
	}
	// The device pushes its secrets to the recovered (or new) vault: the
	// device agent's job, triggered by this status.
	if d, err = p.update(ctx, id, func(d *deviceRecord) error {
		requestSync(d)
		return nil
	}); err != nil {
		return nil, err
	}
	return p.extendedResponse(ctx, d)
}
