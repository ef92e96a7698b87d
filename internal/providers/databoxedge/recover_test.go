package databoxedge

import (
	"strings"
	"testing"
)

// activated creates device name, generates its activation key with vault
// kvName and redeems it (the device is Online).
func (e *env) activated(name, kvName string) {
	e.T.Helper()
	e.device(name)
	key := e.activate(name, map[string]any{"keyVaultName": kvName})["activationKey"].(string)
	if _, err := e.p.RedeemActivationKey(e.Ctx, key); err != nil {
		e.T.Fatal(err)
	}
}

func (e *env) status(name string) string {
	e.T.Helper()
	return e.Must("GET", devPath("rg1", name)+v, nil, 200).JSON(e.T)["properties"].(map[string]any)["dataBoxEdgeDeviceStatus"].(string)
}

func (e *env) recoverVault(name string, body any) map[string]any {
	e.T.Helper()
	return e.Must("POST", devPath("rg1", name)+"/recoverKeyVault"+v, body, 200).JSON(e.T)["properties"].(map[string]any)
}

// deleteVault removes the lock and deletes the vault "accidentally".
func (e *env) deleteVault(kvName string) {
	e.T.Helper()
	e.Must("DELETE", lockPath(vaultPath("rg1", kvName), VaultLockName), nil, 200)
	e.Must("DELETE", vaultPath("rg1", kvName)+kvV, nil, 200)
}

func alertTypes(as []map[string]any) []string {
	var out []string
	for _, a := range as {
		p := a["properties"].(map[string]any)
		out = append(out, p["alertType"].(string)+":"+p["severity"].(string))
	}
	return out
}

func TestVaultDeletedAlertAndRecover(t *testing.T) {
	e := newEnv(t)
	e.activated("edge1", "edge1-kv")
	if st := e.status("edge1"); st != StatusOnline {
		t.Fatalf("status %s", st)
	}
	before := e.extended("edge1")
	internal, err := e.kv.VaultStatus(e.Ctx, "edge1-kv")
	if err != nil {
		t.Fatal(err)
	}
	e.deleteVault("edge1-kv")

	as := e.alerts("edge1")
	if got := alertTypes(as); len(got) != 1 || got[0] != AlertKeyVaultDeleted+":Critical" {
		t.Fatalf("alerts %v", got)
	}
	e.Must("GET", devPath("rg1", "edge1")+"/alerts/"+as[0]["name"].(string)+v, nil, 200)
	if st := e.status("edge1"); st != StatusNeedsAttention {
		t.Fatalf("status with a deleted vault %s", st)
	}
	if x := e.extended("edge1"); x["keyVaultSyncStatus"] != SyncFailed {
		t.Fatalf("sync status %v", x["keyVaultSyncStatus"])
	}

	x := e.recoverVault("edge1", nil)
	if x["keyVaultSyncStatus"] != SyncPending || x["clientSecretStoreId"] != before["clientSecretStoreId"] ||
		x["channelIntegrityKeyVersion"] != before["channelIntegrityKeyVersion"] {
		t.Fatalf("after recovery %v (before %v)", x, before)
	}
	now, err := e.kv.VaultStatus(e.Ctx, "edge1-kv")
	if err != nil || now.Deleted || now.Info.InternalID != internal.Info.InternalID {
		t.Fatalf("recovered vault %+v (%v), want the same internal id %s", now, err, internal.Info.InternalID)
	}
	if l := locksAt(e, vaultPath("rg1", "edge1-kv")); !contains(l, VaultLockName+":CanNotDelete") {
		t.Fatalf("lock not re-placed: %v", l)
	}
	if as := e.alerts("edge1"); len(as) != 0 {
		t.Fatalf("alerts after recovery %v", alertTypes(as))
	}
	if st := e.status("edge1"); st != StatusOnline {
		t.Fatalf("status after recovery %s", st)
	}
	if code, _ := e.secret(vaultAudience(e.devicePrincipal("edge1")), "edge1-kv", x["channelIntegrityKeyName"].(string)); code != 200 {
		t.Fatalf("CIK after recovery: %d", code)
	}
	// The device agent reports its secrets pushed.
	r := e.Must("POST", devPath("rg1", "edge1")+"/updateExtendedInformation"+v, map[string]any{"syncStatus": "KeyVaultSynced"}, 200).JSON(t)
	if r["properties"].(map[string]any)["keyVaultSyncStatus"] != SyncSynced {
		t.Fatalf("update extended info %v", r)
	}
}

func TestAccessPolicyRemovedAlertAndRecover(t *testing.T) {
	e := newEnv(t)
	e.activated("edge1", "edge1-kv")
	pr := e.devicePrincipal("edge1")
	e.Must("PUT", vaultPath("rg1", "edge1-kv")+"/accessPolicies/remove"+kvV, map[string]any{"properties": map[string]any{
		"accessPolicies": []any{map[string]any{"tenantId": pr.TenantID, "objectId": pr.ObjectID, "permissions": map[string]any{"secrets": []string{"set"}}}}}}, 200)
	if got := alertTypes(e.alerts("edge1")); len(got) != 1 || got[0] != AlertKeyVaultAccessPolicy+":Critical" {
		t.Fatalf("alerts %v", got)
	}
	e.recoverVault("edge1", nil)
	if got := alertTypes(e.alerts("edge1")); len(got) != 0 {
		t.Fatalf("alerts after recovery %v", got)
	}
	st, err := e.kv.VaultStatus(e.Ctx, "edge1-kv")
	if err != nil || len(st.Info.AccessPolicies) != 1 || strings.Join(st.Info.AccessPolicies[0].Permissions.Secrets, ",") != "get,set" {
		t.Fatalf("policies after recovery %+v (%v)", st.Info.AccessPolicies, err)
	}
}

func TestPurgedVaultGetsNewVault(t *testing.T) {
	e := newEnv(t)
	e.activated("edge1", "edge1-kv")
	before := e.extended("edge1")
	e.deleteVault("edge1-kv")
	e.Must("POST", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/edge1-kv/purge"+kvV, nil, 202)
	if got := alertTypes(e.alerts("edge1")); len(got) != 1 || got[0] != AlertKeyVaultDeleted+":Critical" {
		t.Fatalf("alerts after purge %v", got)
	}
	// The audit-log account went too: recovery recreates it.
	accts := e.Must("GET", rgPath("rg1")+"/providers/Microsoft.Storage/storageAccounts"+stV, nil, 200).Values(t)
	e.Must("DELETE", lockPath(accts[0]["id"].(string), StorageLockName), nil, 200)
	e.Must("DELETE", accts[0]["id"].(string)+stV, nil, 200)

	x := e.recoverVault("edge1", map[string]any{"keyVaultName": "edge1-kv2"})
	if !strings.HasSuffix(x["clientSecretStoreId"].(string), "/vaults/edge1-kv2") || x["channelIntegrityKeyVersion"] == before["channelIntegrityKeyVersion"] ||
		x["keyVaultSyncStatus"] != SyncPending {
		t.Fatalf("after recovery %v", x)
	}
	if code, _ := e.secret(vaultAudience(e.devicePrincipal("edge1")), "edge1-kv2", x["channelIntegrityKeyName"].(string)); code != 200 {
		t.Fatalf("new CIK: %d", code)
	}
	if l := locksAt(e, vaultPath("rg1", "edge1-kv2")); !contains(l, VaultLockName+":CanNotDelete") {
		t.Fatalf("new vault locks %v", l)
	}
	accts = e.Must("GET", rgPath("rg1")+"/providers/Microsoft.Storage/storageAccounts"+stV, nil, 200).Values(t)
	if len(accts) != 1 || accts[0]["tags"].(map[string]any)[StorageVaultTag] != "edge1-kv2" {
		t.Fatalf("accounts after recovery %v", accts)
	}
	ds := e.Must("GET", vaultPath("rg1", "edge1-kv2")+"/providers/Microsoft.Insights/diagnosticSettings/"+DiagSettingName+dsV, nil, 200).JSON(t)
	if !strings.EqualFold(ds["properties"].(map[string]any)["storageAccountId"].(string), accts[0]["id"].(string)) {
		t.Fatalf("diagnostic setting %v", ds)
	}
	if got := alertTypes(e.alerts("edge1")); len(got) != 0 {
		t.Fatalf("alerts %v", got)
	}
}

func TestRecoverRefusals(t *testing.T) {
	e := newEnv(t)
	e.device("edge0")
	e.activated("edge1", "edge1-kv")
	e.deleteVault("edge1-kv")
	cases := []struct {
		name, device string
		body         any
		deny         string
		status       int
		code         string
	}{
		{name: "fail/not-activated", device: "edge0", status: 409, code: "KeyVaultNotConfigured"},
		{name: "fail/new-name-while-recoverable", device: "edge1", body: map[string]any{"keyVaultName": "other-kv"}, status: 400, code: "KeyVaultRecoverable"},
		{name: "fail/no-vault-write", device: "edge1", deny: "Microsoft.KeyVault/vaults/write", status: 403, code: "LinkedAuthorizationFailed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.deny != "" {
				e.dec.Set(c.deny, true)
				defer e.dec.Set(c.deny, false)
			}
			r := e.Must("POST", devPath("rg1", c.device)+"/recoverKeyVault"+v, c.body, c.status)
			if got := r.ErrCode(t); got != c.code {
				t.Fatalf("code %q, want %q: %s", got, c.code, r.Body.String())
			}
		})
	}
	t.Run("fail/update-extended-info", func(t *testing.T) {
		for _, b := range []map[string]any{{"syncStatus": "Whatever"}, {"clientSecretStoreId": vaultPath("rg1", "elsewhere")}} {
			e.Must("POST", devPath("rg1", "edge1")+"/updateExtendedInformation"+v, b, 400)
		}
	})
}

func TestDeleteDeviceConsent(t *testing.T) {
	cases := []struct {
		name      string
		query     string
		vaultGone bool
	}{
		{name: "ok/without-consent-vault-stays", query: ""},
		{name: "ok/consent-false", query: "&deleteKeyVault=false"},
		{name: "ok/consent-deletes-vault", query: "&deleteKeyVault=true", vaultGone: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.activated("edge1", "edge1-kv")
			pr := e.devicePrincipal("edge1")
			e.Must("DELETE", devPath("rg1", "edge1")+v+c.query, nil, 200)
			if _, err := e.ids.LookupPrincipal(e.Ctx, pr.ObjectID); err == nil {
				t.Fatal("the device identity outlived the device")
			}
			st, err := e.kv.VaultStatus(e.Ctx, "edge1-kv")
			if err != nil {
				t.Fatal(err)
			}
			locks := locksAt(e, vaultPath("rg1", "edge1-kv"))
			if c.vaultGone {
				if !st.Deleted || len(locks) != 0 {
					t.Fatalf("vault %+v, locks %v: want soft-deleted without lock", st, locks)
				}
				return
			}
			if st.Deleted || !contains(locks, VaultLockName+":CanNotDelete") {
				t.Fatalf("vault %+v, locks %v: want it intact", st, locks)
			}
		})
	}
	t.Run("fail/consent-without-vault-delete-permission", func(t *testing.T) {
		e := newEnv(t)
		e.activated("edge1", "edge1-kv")
		e.dec.Set("Microsoft.KeyVault/vaults/delete", true)
		if code := e.Must("DELETE", devPath("rg1", "edge1")+v+"&deleteKeyVault=true", nil, 403).ErrCode(t); code != "LinkedAuthorizationFailed" {
			t.Fatalf("code %s", code)
		}
		e.Must("GET", devPath("rg1", "edge1")+v, nil, 200)
		e.Must("DELETE", devPath("rg1", "edge1")+v+"&deleteKeyVault=maybe", nil, 400)
	})
}

// A lock the customer placed is not lifted by consent to delete the vault.
func TestDeleteConsentRespectsCustomerLocks(t *testing.T) {
	e := newEnv(t)
	e.activated("edge1", "edge1-kv")
	e.Must("PUT", lockPath(rgPath("rg1"), "customer"), map[string]any{"properties": map[string]any{"level": "CanNotDelete"}}, 201)
	if code := e.Must("DELETE", devPath("rg1", "edge1")+v+"&deleteKeyVault=true", nil, 409).ErrCode(t); code != "ScopeLocked" {
		t.Fatalf("code %s", code)
	}
	if st, err := e.kv.VaultStatus(e.Ctx, "edge1-kv"); err != nil || st.Deleted {
		t.Fatalf("vault %+v (%v)", st, err)
	}
	e.Must("GET", devPath("rg1", "edge1")+v, nil, 200)
	e.Must("DELETE", lockPath(rgPath("rg1"), "customer"), nil, 200)
	e.Must("DELETE", devPath("rg1", "edge1")+v+"&deleteKeyVault=true", nil, 200)
}
