package databoxedge

import (
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// TestActivationCreatesWhatTheGuideLists checks each item of the guide's
// "When you generate an activation key, the following events occur".
func TestActivationCreatesWhatTheGuideLists(t *testing.T) {
	e := newEnv(t)
	dev := e.device("edge1")
	pid := dev["identity"].(map[string]any)["principalId"].(string)
	out := e.activate("edge1", map[string]any{"keyVaultName": "edge1-secrets"})
	key, _ := out["activationKey"].(string)
	if out["keyVaultName"] != "edge1-secrets" || out["keyVaultCreated"] != true || !strings.HasPrefix(key, ActivationKeyPrefix+".") {
		t.Fatalf("activation answer %v", out)
	}
	vid := vaultPath("rg1", "edge1-secrets")

	t.Run("ok/vault-standard-access-policy-soft-delete", func(t *testing.T) {
		vlt := e.Must("GET", vid+kvV, nil, 200).JSON(t)
		p := vlt["properties"].(map[string]any)
		if p["sku"].(map[string]any)["name"] != "standard" || p["enableRbacAuthorization"] != false || p["enableSoftDelete"] != true {
			t.Fatalf("vault properties %v", p)
		}
		pols := p["accessPolicies"].([]any)
		if len(pols) != 1 {
			t.Fatalf("access policies %v", pols)
		}
		ap := pols[0].(map[string]any)
		perms := ap["permissions"].(map[string]any)
		secrets := perms["secrets"].([]any)
		if ap["objectId"] != pid || len(secrets) != 2 || !slices.Contains(secrets, any("get")) || !slices.Contains(secrets, any("set")) ||
			perms["keys"] != nil || perms["certificates"] != nil {
			t.Fatalf("policy %v, want secrets get+set only for %s", ap, pid)
		}
	})
	t.Run("ok/vault-locked", func(t *testing.T) {
		if l := locksAt(e, vid); !contains(l, VaultLockName+":CanNotDelete") {
			t.Fatalf("vault locks %v", l)
		}
		if code := e.Must("DELETE", vid+kvV, nil, 409).ErrCode(t); code != "ScopeLocked" {
			t.Fatalf("delete of the locked vault: %s", code)
		}
	})
	var acctID string
	t.Run("ok/zrs-account-tagged-and-locked", func(t *testing.T) {
		accts := e.Must("GET", rgPath("rg1")+"/providers/Microsoft.Storage/storageAccounts"+stV, nil, 200).Values(t)
		if len(accts) != 1 {
			t.Fatalf("accounts %v", accts)
		}
		a := accts[0]
		acctID = a["id"].(string)
		if a["sku"].(map[string]any)["name"] != "Standard_ZRS" || a["tags"].(map[string]any)[StorageVaultTag] != "edge1-secrets" {
			t.Fatalf("account %v", a)
		}
		if l := locksAt(e, acctID); !contains(l, StorageLockName+":CanNotDelete") {
			t.Fatalf("account locks %v", l)
		}
	})
	t.Run("ok/diagnostic-setting-audit-to-account", func(t *testing.T) {
		ds := e.Must("GET", vid+"/providers/Microsoft.Insights/diagnosticSettings/"+DiagSettingName+dsV, nil, 200).JSON(t)
		p := ds["properties"].(map[string]any)
		logs := p["logs"].([]any)
		if !strings.EqualFold(p["storageAccountId"].(string), acctID) || len(logs) != 1 ||
			logs[0].(map[string]any)["category"] != "AuditEvent" || logs[0].(map[string]any)["enabled"] != true {
			t.Fatalf("diagnostic setting %v", ds)
		}
	})
	t.Run("ok/extended-info-and-cik-readable-by-device-only", func(t *testing.T) {
		x := e.extended("edge1")
		name, _ := x["channelIntegrityKeyName"].(string)
		if !strings.EqualFold(x["clientSecretStoreId"].(string), vid) || x["clientSecretStoreUrl"] != "https://edge1-secrets.vault.localhost:8443" ||
			!strings.HasPrefix(name, CIKPrefix) || x["channelIntegrityKeyVersion"] == "" || x["keyVaultSyncStatus"] != SyncSynced {
			t.Fatalf("extended info %v", x)
		}
		code, sec := e.secret(vaultAudience(e.devicePrincipal("edge1")), "edge1-secrets", name)
		if code != 200 {
			t.Fatalf("device reads its CIK: %d %v", code, sec)
		}
		raw, err := base64.StdEncoding.DecodeString(sec["value"].(string))
		if err != nil || len(raw) != CIKBytes || !strings.HasSuffix(sec["id"].(string), "/"+x["channelIntegrityKeyVersion"].(string)) {
			t.Fatalf("CIK %v (%v)", sec, err)
		}
		admin := &principal.Principal{TenantID: e.boot.TenantID, ObjectID: e.boot.AdminObjectID, Kind: principal.User, Audience: "https://vault.localhost:8443"}
		if code, _ := e.secret(admin, "edge1-secrets", name); code != http.StatusForbidden {
			t.Fatalf("a principal without an access policy read the CIK: %d", code)
		}
	})
	t.Run("ok/redeem-once-makes-device-online", func(t *testing.T) {
		a, err := e.p.RedeemActivationKey(e.Ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if a.Workload == nil || a.Workload.IdentityHeader == "" || a.Workload.PrincipalID != pid || a.CIKName == "" ||
			!strings.EqualFold(a.KeyVaultID, vid) {
			t.Fatalf("activation %+v", a)
		}
		st := e.Must("GET", devPath("rg1", "edge1")+v, nil, 200).JSON(t)["properties"].(map[string]any)["dataBoxEdgeDeviceStatus"]
		if st != StatusOnline {
			t.Fatalf("status %v", st)
		}
		if _, err := e.p.RedeemActivationKey(e.Ctx, key); !errors.Is(err, ErrInvalidActivationKey) {
			t.Fatalf("second redeem: %v", err)
		}
	})
}

func TestActivationRefusals(t *testing.T) {
	e := newEnv(t)
	e.device("edge1")
	e.Must("PUT", vaultPath("rg2", "taken-vault")+kvV, map[string]any{"location": "westeurope", "properties": map[string]any{
		"tenantId": e.boot.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{}}}, 201)
	e.Must("PUT", vaultPath("rg2", "gone-vault")+kvV, map[string]any{"location": "westeurope", "properties": map[string]any{
		"tenantId": e.boot.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{}}}, 201)
	e.Must("DELETE", vaultPath("rg2", "gone-vault")+kvV, nil, 200)

	cases := []struct {
		name   string
		body   any
		deny   string
		status int
		code   string
	}{
		{name: "fail/name-in-use", body: map[string]any{"keyVaultName": "taken-vault"}, status: 409, code: "KeyVaultNameInUse"},
		{name: "fail/name-held-by-deleted-vault", body: map[string]any{"keyVaultName": "gone-vault"}, status: 409, code: "KeyVaultNameInUse"},
		{name: "fail/name-too-short", body: map[string]any{"keyVaultName": "ab"}, status: 400, code: "InvalidRequestContent"},
		{name: "fail/name-bad-chars", body: map[string]any{"keyVaultName": "a_b_c"}, status: 400, code: "InvalidRequestContent"},
		{name: "fail/no-vault-write", deny: "Microsoft.KeyVault/vaults/write", status: 403, code: "LinkedAuthorizationFailed"},
		{name: "fail/no-device-write", deny: DeviceType + "/write", status: 403, code: "AuthorizationFailed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.deny != "" {
				e.dec.Set(c.deny, true)
				defer e.dec.Set(c.deny, false)
			}
			r := e.Must("POST", devPath("rg1", "edge1")+"/generateActivationKey"+v, c.body, c.status)
			if got := r.ErrCode(t); got != c.code {
				t.Fatalf("code %q, want %q: %s", got, c.code, r.Body.String())
			}
			if x := e.extended("edge1"); x["clientSecretStoreId"] != nil {
				t.Fatalf("a refused activation configured a vault: %v", x)
			}
		})
	}
	t.Run("ok/default-name", func(t *testing.T) {
		out := e.activate("edge1", nil)
		name := out["keyVaultName"].(string)
		if !strings.HasPrefix(name, "edge1-") || len(name) < 3 || len(name) > 24 {
			t.Fatalf("default vault name %q", name)
		}
		e.Must("GET", vaultPath("rg1", name)+kvV, nil, 200)
	})
	t.Run("fail/redeem", func(t *testing.T) {
		for _, k := range []string{"", "khase1.x.y", "other.a.b", ActivationKeyPrefix + "." + base64.RawURLEncoding.EncodeToString([]byte(devPath("rg1", "edge1"))) + "." +
			base64.RawURLEncoding.EncodeToString(make([]byte, 32))} {
			if _, err := e.p.RedeemActivationKey(e.Ctx, k); !errors.Is(err, ErrInvalidActivationKey) {
				t.Fatalf("redeem %q: %v", k, err)
			}
		}
	})
	t.Run("fail/redeem-expired", func(t *testing.T) {
		key := e.activate("edge1", nil)["activationKey"].(string)
		e.Clock.Advance(ActivationKeyTTL + time.Minute)
		if _, err := e.p.RedeemActivationKey(e.Ctx, key); !errors.Is(err, ErrInvalidActivationKey) {
			t.Fatalf("expired key: %v", err)
		}
	})
}

// TestRegenerateDoesNotAccessVault: "The key vault is not accessed when you
// regenerate the activation key" — not even when it is gone.
func TestRegenerateDoesNotAccessVault(t *testing.T) {
	e := newEnv(t)
	e.device("edge1")
	first := e.activate("edge1", map[string]any{"keyVaultName": "edge1-kv"})
	rec, err := e.Store.Get(e.Ctx, "rp/keyvault/names/edge1-kv")
	if err != nil {
		t.Fatal(err)
	}
	x1 := e.extended("edge1")
	second := e.activate("edge1", nil)
	if second["keyVaultCreated"] != false || second["keyVaultName"] != "edge1-kv" || second["activationKey"] == first["activationKey"] {
		t.Fatalf("regenerate %v", second)
	}
	again, err := e.Store.Get(e.Ctx, "rp/keyvault/names/edge1-kv")
	if err != nil || again.Version != rec.Version {
		t.Fatalf("the vault record changed: version %d -> %d (%v)", rec.Version, again.Version, err)
	}
	if x2 := e.extended("edge1"); x2["channelIntegrityKeyVersion"] != x1["channelIntegrityKeyVersion"] {
		t.Fatalf("CIK changed: %v -> %v", x1, x2)
	}
	if _, err := e.p.RedeemActivationKey(e.Ctx, first["activationKey"].(string)); !errors.Is(err, ErrInvalidActivationKey) {
		t.Fatalf("the replaced key still redeems: %v", err)
	}
	r := e.Must("POST", devPath("rg1", "edge1")+"/generateActivationKey"+v, map[string]any{"keyVaultName": "other-kv"}, 400)
	if r.ErrCode(t) != "KeyVaultAlreadyConfigured" {
		t.Fatalf("renaming on regenerate: %s", r.Body.String())
	}
	// Even with the vault deleted, regenerating answers without it.
	e.Must("DELETE", lockPath(vaultPath("rg1", "edge1-kv"), VaultLockName), nil, 200)
	e.Must("DELETE", vaultPath("rg1", "edge1-kv")+kvV, nil, 200)
	e.activate("edge1", nil)
}
