package databoxedge

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

var testEndpoints = Endpoints{ResourceManager: "https://localhost:8443/", IdentityEndpoint: "https://localhost:8443/msi/token",
	VaultAudience: "https://vault.localhost:8443"}

// postActivation sends body to the activation route from ip; it returns the
// status, the decoded answer and the request info the audit event is built
// from.
func postActivation(h http.Handler, ip, method, body string) (int, map[string]any, *principal.Info) {
	info := &principal.Info{ClientIP: ip, RequestID: "r1"}
	r := httptest.NewRequest(method, "https://localhost:8443"+ActivationPath, strings.NewReader(body))
	r = r.WithContext(principal.WithInfo(context.Background(), info))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m, info
}

func keyBody(k string) string {
	b, _ := json.Marshal(map[string]string{"activationKey": k})
	return string(b)
}

func TestActivationRoute(t *testing.T) {
	e := newEnv(t)
	e.device("edge1")
	key := e.activate("edge1", map[string]any{"keyVaultName": "edge1-kv"})["activationKey"].(string)
	h := e.p.ActivationHandler(testEndpoints)

	tests := []struct {
		name       string
		ip, method string
		body       string
		wantStatus int
		wantCode   string
	}{
		{"fail/method", "192.0.2.1", "GET", "", 405, "MethodNotAllowed"},
		{"fail/empty", "192.0.2.1", "POST", "", 400, "InvalidRequestContent"},
		{"fail/unknown-field", "192.0.2.1", "POST", `{"activationKey":"x","extra":1}`, 400, "InvalidRequestContent"},
		{"fail/too-large", "192.0.2.1", "POST", keyBody(strings.Repeat("k", 5000)), 413, "RequestEntityTooLarge"},
		{"fail/garbage-key", "192.0.2.1", "POST", keyBody("khase1.x.y"), 401, "InvalidActivationKey"},
		{"fail/long-key", "192.0.2.1", "POST", keyBody(strings.Repeat("k", 2000)), 401, "InvalidActivationKey"},
		{"ok/redeem", "192.0.2.2", "POST", keyBody(key), 200, ""},
		{"fail/used-up", "192.0.2.2", "POST", keyBody(key), 401, "InvalidActivationKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, m, info := postActivation(h, tc.ip, tc.method, tc.body)
			if status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %v", status, tc.wantStatus, m)
			}
			if info.OperationName != OperationActivate {
				t.Fatalf("operation %q", info.OperationName)
			}
			if tc.wantCode != "" {
				if code := m["error"].(map[string]any)["code"]; code != tc.wantCode {
					t.Fatalf("code %v, want %s", code, tc.wantCode)
				}
				if info.Principal != nil || info.ResourceID != "" {
					t.Fatalf("a refused activation names a caller or device: %+v", info)
				}
				return
			}
			dev := devPath("rg1", "edge1")
			if !strings.EqualFold(m["deviceId"].(string), dev) || m["identityHeader"] == "" || m["identityEndpoint"] != testEndpoints.IdentityEndpoint ||
				m["resourceManager"] != "https://localhost:8443" || m["vaultAudience"] != testEndpoints.VaultAudience ||
				!strings.Contains(m["keyVaultUri"].(string), "edge1-kv.vault.localhost") || !strings.HasPrefix(m["channelIntegrityKeyName"].(string), CIKPrefix) {
				t.Fatalf("activation %v", m)
			}
			names := m["deviceSecretNames"].(map[string]any)
			if !strings.HasPrefix(names[SecretBitLockerRecoveryKey].(string), "ase-bitlocker-") || !strings.HasPrefix(names[SecretBMCPassword].(string), "ase-bmc-") {
				t.Fatalf("secret names %v", names)
			}
			// The audit event names the device and its identity, never the key.
			if !strings.EqualFold(info.ResourceID, dev) || info.Principal == nil || info.Principal.Kind != principal.ManagedIdentity ||
				!strings.EqualFold(info.Principal.MIResourceID, dev) {
				t.Fatalf("audit info %+v", info)
			}
			if st := e.status("edge1"); st != StatusOnline {
				t.Fatalf("status %s", st)
			}
		})
	}
	t.Run("fail/rate-limited", func(t *testing.T) {
		var last int
		var m map[string]any
		for range activationBurst + 1 {
			last, m, _ = postActivation(h, "198.51.100.9", "POST", keyBody("khase1.x.y"))
		}
		if last != http.StatusTooManyRequests {
			t.Fatalf("attempt %d: status %d %v", activationBurst+1, last, m)
		}
		e.Clock.Advance(activationRefill)
		if last, _, _ = postActivation(h, "198.51.100.9", "POST", keyBody("khase1.x.y")); last != http.StatusUnauthorized {
			t.Fatalf("after refill: %d", last)
		}
		if last, _, _ = postActivation(h, "198.51.100.10", "POST", keyBody("khase1.x.y")); last != http.StatusUnauthorized {
			t.Fatalf("another client: %d", last)
		}
	})
}

type denyAll struct{}

func (denyAll) Decide(context.Context, authz.Request) (authz.Decision, error) {
	return authz.Decision{}, nil
}

func TestSelfDecider(t *testing.T) {
	dev := devPath("rg1", "edge1")
	other := devPath("rg1", "edge2")
	uai := rgPath("rg1") + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + "id1"
	mi := func(res string) *principal.Principal {
		return &principal.Principal{Kind: principal.ManagedIdentity, ObjectID: "o", MIResourceID: res}
	}
	user := &principal.Principal{Kind: principal.User, ObjectID: "o"}
	get := DeviceType + "/getExtendedInformation/action"
	upd := DeviceType + "/updateExtendedInformation/action"
	tests := []struct {
		name   string
		p      *principal.Principal
		action string
		scope  string
		data   bool
		want   bool
	}{
		{"ok/own-get", mi(dev), get, dev, false, true},
		{"ok/own-update", mi(dev), upd, strings.ToUpper(dev), false, true},
		{"fail/other-device", mi(dev), upd, other, false, false},
		{"fail/write", mi(dev), DeviceType + "/write", dev, false, false},
		{"fail/sync-secrets", mi(dev), DeviceType + "/syncDeviceSecrets/action", dev, false, false},
		{"fail/recover", mi(dev), DeviceType + "/recoverKeyVault/action", dev, false, false},
		{"fail/data-action", mi(dev), upd, dev, true, false},
		{"fail/user", user, upd, dev, false, false},
		{"fail/user-assigned", mi(uai), upd, uai, false, false},
		{"fail/no-principal", nil, upd, dev, false, false},
	}
	d := SelfDecider(denyAll{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Decide(context.Background(), authz.Request{Principal: tc.p, Action: tc.action, Scope: tc.scope, DataAction: tc.data})
			if err != nil || got.Allowed != tc.want {
				t.Fatalf("allowed %v (%v), want %v", got.Allowed, err, tc.want)
			}
		})
	}
}

// TestDeviceReportsAndSyncSecrets: the device reports its secrets'
// references and its status; the operator's sync sets pending; a failure
// report is visible in extended info and alerts; values are refused.
func TestDeviceReportsAndSyncSecrets(t *testing.T) {
	e := newEnv(t)
	e.device("edge0")
	r := e.Must("POST", devPath("rg1", "edge0")+"/syncDeviceSecrets"+v, nil, 409)
	if r.ErrCode(t) != "KeyVaultNotConfigured" {
		t.Fatalf("sync without vault: %s", r.Body.String())
	}
	e.activated("edge1", "edge1-kv")
	dev := devPath("rg1", "edge1")
	kvURI := "https://edge1-kv.vault.localhost:8443"
	ref := kvURI + "/secrets/ase-bitlocker-1/0123abcd"
	upd := func(body any, status int) map[string]any {
		t.Helper()
		return e.Must("POST", dev+"/updateExtendedInformation"+v, body, status).JSON(t)
	}
	for _, bad := range []map[string]any{
		{"deviceSecrets": map[string]any{"NotASecret": map[string]any{"keyVaultId": ref}}},
		{"deviceSecrets": map[string]any{SecretBitLockerRecoveryKey: map[string]any{"keyVaultId": "https://other.vault.localhost:8443/secrets/a/b"}}},
		{"deviceSecrets": map[string]any{SecretBitLockerRecoveryKey: map[string]any{"keyVaultId": ref, "encryptedSecret": map[string]any{"value": "x"}}}},
	} {
		upd(bad, 400)
	}
	upd(map[string]any{"syncStatus": SyncSynced, "deviceSecrets": map[string]any{SecretBitLockerRecoveryKey: map[string]any{"keyVaultId": ref}}}, 200)
	x := e.extended("edge1")
	secrets := x["deviceSecrets"].(map[string]any)
	if x["keyVaultSyncStatus"] != SyncSynced || secrets[SecretBitLockerRecoveryKey].(map[string]any)["keyVaultId"] != ref ||
		secrets[SecretChannelIntegrityKey] == nil || x["keyVaultSyncTime"] == nil {
		t.Fatalf("extended %v", x)
	}
	for _, s := range secrets {
		if _, ok := s.(map[string]any)["encryptedSecret"]; ok {
			t.Fatalf("a secret value is rendered: %v", secrets)
		}
	}
	upd(map[string]any{"syncStatus": SyncFailed, "keyVaultSyncError": "SecretSet: 503 ServiceUnavailable\n"}, 200)
	x = e.extended("edge1")
	if x["keyVaultSyncStatus"] != SyncFailed || x["keyVaultSyncError"] != "SecretSet: 503 ServiceUnavailable" {
		t.Fatalf("extended after failure %v", x)
	}
	if got := alertTypes(e.alerts("edge1")); len(got) != 1 || got[0] != AlertKeyVaultSyncFailed+":Warning" {
		t.Fatalf("alerts %v", got)
	}
	x = e.Must("POST", dev+"/syncDeviceSecrets"+v, nil, 200).JSON(t)["properties"].(map[string]any)
	reqID, _ := x["keyVaultSyncRequestId"].(string)
	if x["keyVaultSyncStatus"] != SyncPending || x["keyVaultSyncError"] != nil || reqID == "" {
		t.Fatalf("after sync-secrets %v", x)
	}
	if got := e.alerts("edge1"); len(got) != 0 {
		t.Fatalf("alerts after sync-secrets %v", got)
	}
	// A push that began before the request does not clear it; one that
	// saw it does.
	for _, tc := range []struct {
		echo string
		want string
	}{{"", SyncPending}, {"stale", SyncPending}, {reqID, SyncSynced}} {
		x = upd(map[string]any{"syncStatus": SyncSynced, "keyVaultSyncRequestId": tc.echo}, 200)["properties"].(map[string]any)
		if x["keyVaultSyncStatus"] != tc.want {
			t.Fatalf("report echoing %q: %v, want %s", tc.echo, x["keyVaultSyncStatus"], tc.want)
		}
	}
	if x["keyVaultSyncRequestId"] != nil {
		t.Fatalf("a request id outside pending: %v", x)
	}
	// The operator's sync needs write on the device.
	e.dec.Set(DeviceType+"/write", true)
	e.Must("POST", dev+"/syncDeviceSecrets"+v, nil, 403)
	e.dec.Set(DeviceType+"/write", false)
	// After a purge, references into the old vault are not shown.
	e.deleteVault("edge1-kv")
	e.Must("POST", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/locations/westeurope/deletedVaults/edge1-kv/purge"+kvV, nil, 202)
	e.Clock.Advance(time.Minute)
	x = e.recoverVault("edge1", map[string]any{"keyVaultName": "edge1-kv2"})
	if _, ok := x["deviceSecrets"].(map[string]any)[SecretBitLockerRecoveryKey]; ok {
		t.Fatalf("a reference into the purged vault is shown: %v", x)
	}
}
