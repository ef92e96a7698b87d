package cli

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseResourceID(t *testing.T) {
	tests := []struct {
		name, id          string
		wantType, wantRG  string
		wantName, wantSub string
		wantErr           bool
	}{
		{name: "ok/vault", id: "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1",
			wantType: "Microsoft.KeyVault/vaults", wantRG: "rg1", wantName: "kv1", wantSub: "s1"},
		{name: "ok/case-insensitive-keywords", id: "/SUBSCRIPTIONS/s1/resourcegroups/rg1/PROVIDERS/Microsoft.KeyVault/vaults/kv1/",
			wantType: "Microsoft.KeyVault/vaults", wantRG: "rg1", wantName: "kv1", wantSub: "s1"},
		{name: "ok/group", id: "/subscriptions/s1/resourceGroups/rg1", wantType: "Microsoft.Resources/resourceGroups", wantRG: "rg1", wantName: "rg1", wantSub: "s1"},
		{name: "ok/subscription", id: "/subscriptions/s1", wantType: "Microsoft.Resources/subscriptions", wantName: "s1", wantSub: "s1"},
		{name: "ok/child", id: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/accessPolicies/add",
			wantType: "Microsoft.KeyVault/vaults/accessPolicies", wantRG: "rg", wantName: "add", wantSub: "s1"},
		{name: "ok/extension-lock", id: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/providers/Microsoft.Authorization/locks/l1",
			wantType: "Microsoft.Authorization/locks", wantRG: "rg", wantName: "l1", wantSub: "s1"},
		{name: "ok/subscription-provider", id: "/subscriptions/s1/providers/Microsoft.Authorization/roleAssignments/a1",
			wantType: "Microsoft.Authorization/roleAssignments", wantName: "a1", wantSub: "s1"},
		{name: "fail/empty", id: "", wantErr: true},
		{name: "fail/relative", id: "subscriptions/s1", wantErr: true},
		{name: "fail/not-subscription", id: "/tenants/t1", wantErr: true},
		{name: "fail/dotdot", id: "/subscriptions/s1/resourceGroups/../providers/X/y/z", wantErr: true},
		{name: "fail/empty-segment", id: "/subscriptions//resourceGroups/rg", wantErr: true},
		{name: "fail/group-without-name", id: "/subscriptions/s1/resourceGroups", wantErr: true},
		{name: "fail/type-without-name", id: "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults", wantErr: true},
		{name: "fail/query", id: "/subscriptions/s1/resourceGroups/rg?x=1", wantErr: true},
		{name: "fail/too-long", id: "/subscriptions/" + strings.Repeat("a", 3000), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseResourceID(tc.id)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if r.FullType() != tc.wantType || r.ResourceGroup != tc.wantRG || r.Name() != tc.wantName || r.Subscription != tc.wantSub {
				t.Fatalf("got type %q rg %q name %q sub %q", r.FullType(), r.ResourceGroup, r.Name(), r.Subscription)
			}
		})
	}
}

// armFake answers ARM requests from a table keyed by "METHOD path".
type armFake map[string]func(w http.ResponseWriter, r *http.Request, body []byte)

func (m armFake) handler(t *testing.T) func(http.ResponseWriter, *http.Request, []byte) {
	return func(w http.ResponseWriter, r *http.Request, body []byte) {
		if fn, ok := m[r.Method+" "+r.URL.Path]; ok {
			fn(w, r, body)
			return
		}
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "ResourceNotFound", "message": "The Resource was not found: " + r.URL.Path}})
	}
}

func TestLongRunningOperations(t *testing.T) {
	f := newFakeServer(t)
	rg := "/subscriptions/" + testSub + "/resourceGroups/rg1"
	vault := rg + "/providers/Microsoft.KeyVault/vaults/kv1"
	var polls atomic.Int32
	fake := armFake{
		// PUT answers 201 + Azure-AsyncOperation; the operation succeeds on the second poll.
		"PUT " + vault: func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Azure-AsyncOperation", f.base+"/subscriptions/"+testSub+"/providers/Microsoft.KeyVault/operations/op1?api-version=2023-07-01")
			w.Header().Set("retry-after-ms", "250")
			writeJSON(w, 201, map[string]any{"id": vault, "properties": map[string]any{"provisioningState": "Creating"}})
		},
		"GET /subscriptions/" + testSub + "/providers/Microsoft.KeyVault/operations/op1": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			if polls.Add(1) < 2 {
				w.Header().Set("Retry-After", "3")
				writeJSON(w, 200, map[string]any{"status": "InProgress"})
				return
			}
			writeJSON(w, 200, map[string]any{"status": "Succeeded"})
		},
		"GET " + vault: func(w http.ResponseWriter, r *http.Request, _ []byte) {
			writeJSON(w, 200, map[string]any{"id": vault, "name": "kv1", "properties": map[string]any{"provisioningState": "Succeeded"}})
		},
		"GET " + rg: func(w http.ResponseWriter, r *http.Request, _ []byte) {
			writeJSON(w, 200, map[string]any{"id": rg, "name": "rg1", "location": "local"})
		},
		// DELETE of the group answers 202 + Location; Location answers 202 once, then 200.
		"DELETE " + rg: func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Location", "/subscriptions/"+testSub+"/operationresults/del1?api-version=2022-09-01")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(202)
		},
		"GET /subscriptions/" + testSub + "/operationresults/del1": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			if polls.Add(1) < 2 {
				w.WriteHeader(202)
				return
			}
			w.WriteHeader(200)
		},
		"GET " + rg + "/providers/Microsoft.KeyVault/vaults/failing": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			writeJSON(w, 200, map[string]any{"status": "Failed", "error": map[string]any{"code": "VaultCreateFailed", "message": "quota exceeded"}})
		},
		"PUT " + rg + "/providers/Microsoft.KeyVault/vaults/failing": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Azure-AsyncOperation", rg+"/providers/Microsoft.KeyVault/vaults/failing")
			w.WriteHeader(201)
		},
		"PUT " + rg + "/providers/Microsoft.KeyVault/vaults/evil": func(w http.ResponseWriter, r *http.Request, _ []byte) {
			w.Header().Set("Azure-AsyncOperation", "https://evil.example.com/op")
			w.WriteHeader(201)
		},
	}
	f.handle = fake.handler(t)
	h := newHarness(t)
	h.login(f)

	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantOut   string
		wantErr   string
		wantPolls int32
		wantSleep []time.Duration
	}{
		{name: "ok/put-async-operation", args: []string{"keyvault", "create", "-n", "kv1", "-g", "rg1", "-l", "local", "--query", "name", "-o", "tsv"},
			wantOut: "kv1\n", wantPolls: 2, wantSleep: []time.Duration{250 * time.Millisecond, 3 * time.Second}},
		{name: "ok/no-wait", args: []string{"keyvault", "create", "-n", "kv1", "-g", "rg1", "-l", "local", "--no-wait"}, wantPolls: 0},
		{name: "ok/delete-location", args: []string{"group", "delete", "-n", "rg1", "--yes"}, wantPolls: 2,
			wantSleep: []time.Duration{time.Second, 2 * time.Second}},
		{name: "fail/operation-failed", args: []string{"keyvault", "create", "-n", "failing", "-g", "rg1", "-l", "local"}, wantCode: 1,
			wantErr: "ERROR: (VaultCreateFailed) quota exceeded\n"},
		{name: "fail/polling-url-other-host", args: []string{"keyvault", "create", "-n", "evil", "-g", "rg1", "-l", "local"}, wantCode: 1,
			wantErr: "another host"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			polls.Store(0)
			h.sleeps = nil
			out, errOut, code := h.run(tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if out != tc.wantOut {
				t.Fatalf("out %q want %q", out, tc.wantOut)
			}
			if tc.wantErr != "" && !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("stderr %q want %q", errOut, tc.wantErr)
			}
			if code == 0 && polls.Load() != tc.wantPolls {
				t.Fatalf("polls %d want %d", polls.Load(), tc.wantPolls)
			}
			if tc.wantSleep != nil && !reflect.DeepEqual(h.sleeps, tc.wantSleep) {
				t.Fatalf("sleeps %v want %v", h.sleeps, tc.wantSleep)
			}
		})
	}
}

func TestThrottlingRetry(t *testing.T) {
	f := newFakeServer(t)
	var calls atomic.Int32
	f.handle = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		n := calls.Add(1)
		if r.URL.Path == "/subscriptions/"+testSub+"/resourceGroups/always" || n < 3 {
			w.Header().Set("Retry-After", "2")
			writeJSON(w, 429, map[string]any{"error": map[string]any{"code": "TooManyRequests", "message": "slow down"}})
			return
		}
		writeJSON(w, 200, map[string]any{"name": "rg1"})
	}
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name      string
		group     string
		wantCode  int
		wantCalls int32
	}{
		{"ok/retried-then-succeeds", "rg1", 0, 3},
		{"fail/gives-up", "always", 1, 1 + max429Retries},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls.Store(0)
			h.sleeps = nil
			_, errOut, code := h.run("group", "show", "-n", tc.group)
			if code != tc.wantCode || calls.Load() != tc.wantCalls {
				t.Fatalf("exit %d calls %d; want %d, %d (%s)", code, calls.Load(), tc.wantCode, tc.wantCalls, errOut)
			}
			for _, s := range h.sleeps {
				if s != 2*time.Second {
					t.Fatalf("sleep %v, want Retry-After 2s", s)
				}
			}
			if code != 0 && errOut != "ERROR: (TooManyRequests) slow down\n" {
				t.Fatalf("stderr %q", errOut)
			}
		})
	}
}

func TestIDsFlag(t *testing.T) {
	f := newFakeServer(t)
	vault := func(n string) string {
		return "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/" + n
	}
	f.handle = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, map[string]any{"id": r.URL.Path, "name": r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]})
	}
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{"ok/one-id", []string{"keyvault", "show", "--ids", vault("kv1"), "--query", "name", "-o", "tsv"}, 0, "kv1\n"},
		{"ok/two-ids-space-separated", []string{"keyvault", "show", "--ids", vault("kv1"), vault("kv2"), "--query", "[].name", "-o", "tsv"}, 0, "kv1\nkv2\n"},
		{"ok/resource-show", []string{"resource", "show", "--ids", vault("kv3"), "--query", "name", "-o", "tsv"}, 0, "kv3\n"},
		{"fail/wrong-type", []string{"keyvault", "show", "--ids", "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i1"}, 2, ""},
		{"fail/ids-and-name", []string{"keyvault", "show", "--ids", vault("kv1"), "-n", "kv1"}, 2, ""},
		{"fail/garbage", []string{"keyvault", "show", "--ids", "not-an-id"}, 2, ""},
		{"fail/resource-unknown-type", []string{"resource", "show", "--ids", "/subscriptions/s/resourceGroups/r/providers/Foo.Bar/things/x"}, 2, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			out, errOut, code := h.run(tc.args...)
			if code != tc.wantCode || out != tc.wantOut {
				t.Fatalf("exit %d out %q (stderr %q); want %d %q", code, out, errOut, tc.wantCode, tc.wantOut)
			}
			for _, r := range f.requests(func(r recorded) bool { return strings.Contains(r.Path, "/vaults/") }) {
				if r.Query != "api-version=2023-07-01" {
					t.Fatalf("api-version query %q", r.Query)
				}
			}
		})
	}
}

func TestKeyVaultCreateBody(t *testing.T) {
	f := newFakeServer(t)
	var got map[string]any
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.Method == http.MethodPut {
			got = nil
			_ = json.Unmarshal(body, &got)
		}
		writeJSON(w, 200, map[string]any{"name": "kv1", "location": "local", "properties": map[string]any{"provisioningState": "Succeeded"}})
	}
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name      string
		args      []string
		wantProps map[string]any
	}{
		{"ok/rbac-default", []string{"-l", "local"}, map[string]any{
			"tenantId": testTenant, "sku": map[string]any{"family": "A", "name": "standard"}, "enableSoftDelete": true,
			"enableRbacAuthorization": true, "softDeleteRetentionInDays": 90.0, "accessPolicies": []any{}}},
		{"ok/access-policy-self-perms", []string{"-l", "local", "--enable-rbac-authorization", "false", "--retention-days", "7",
			"--enable-purge-protection", "--default-action", "deny", "--bypass", "None", "--public-network-access", "Disabled", "--sku", "premium"},
			map[string]any{
				"tenantId": testTenant, "sku": map[string]any{"family": "A", "name": "premium"}, "enableSoftDelete": true,
				"enableRbacAuthorization": false, "softDeleteRetentionInDays": 7.0, "enablePurgeProtection": true,
				"networkAcls":         map[string]any{"defaultAction": "Deny", "bypass": "None"},
				"publicNetworkAccess": "Disabled",
				"accessPolicies": []any{map[string]any{"tenantId": testTenant, "objectId": testOID, "permissions": map[string]any{
					"keys": toAnyList(selfKeyPerms), "secrets": toAnyList(selfSecretPerms), "certificates": toAnyList(selfCertPerms), "storage": toAnyList(selfStoragePerm)}}},
			}},
		{"ok/no-self-perms", []string{"-l", "local", "--enable-rbac-authorization", "false", "--no-self-perms"}, map[string]any{
			"tenantId": testTenant, "sku": map[string]any{"family": "A", "name": "standard"}, "enableSoftDelete": true,
			"enableRbacAuthorization": false, "softDeleteRetentionInDays": 90.0, "accessPolicies": []any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.mustRun(append([]string{"keyvault", "create", "-n", "kv1", "-g", "rg1", "--tags", "a=b"}, tc.args...)...)
			if !reflect.DeepEqual(got["properties"], tc.wantProps) {
				t.Fatalf("properties\n%v\nwant\n%v", got["properties"], tc.wantProps)
			}
			if !reflect.DeepEqual(got["tags"], map[string]any{"a": "b"}) || got["location"] != "local" {
				t.Fatalf("body %v", got)
			}
		})
	}
}

func toAnyList(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
