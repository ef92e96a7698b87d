package cli

import (
	"net/http"
	"strings"
	"testing"
)

// TestCommandRoutes checks that each control-plane command sends the
// method, path and api-version of Azure's REST API.
func TestCommandRoutes(t *testing.T) {
	f := newFakeServer(t)
	sub := "/subscriptions/" + testSub
	rg := sub + "/resourceGroups/rg1"
	kv := rg + "/providers/Microsoft.KeyVault/vaults/kv1"
	f.handle = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		switch {
		case r.URL.Path == rg+"/resourcegroups" || strings.HasSuffix(r.URL.Path, "/vaults") && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": kv, "name": "kv1", "location": "local"}}})
		case strings.HasSuffix(r.URL.Path, "/deletedVaults") && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"name": "kv1", "properties": map[string]any{"location": "local", "vaultId": kv}}}})
		case r.URL.Path == rg+"/missing" || r.URL.Path == sub+"/resourceGroups/nope":
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "ResourceGroupNotFound", "message": "nope"}})
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/locks"):
			writeJSON(w, 200, map[string]any{"value": []any{}})
		case r.Method == http.MethodDelete || r.Method == http.MethodHead:
			w.WriteHeader(200)
		default:
			writeJSON(w, 200, map[string]any{"id": kv, "name": "kv1", "location": "local", "properties": map[string]any{"tenantId": testTenant}})
		}
	}
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name   string
		args   []string
		want   []string // "METHOD path?query" of the requests, in order
		stdout string
	}{
		{"ok/group-create", []string{"group", "create", "-n", "rg1", "-l", "local"}, []string{"PUT " + rg + "?api-version=2022-09-01"}, ""},
		{"ok/group-list", []string{"group", "list", "-o", "none"}, []string{"GET " + sub + "/resourcegroups?api-version=2022-09-01"}, ""},
		{"ok/group-exists-true", []string{"group", "exists", "-n", "rg1"}, []string{"HEAD " + rg + "?api-version=2022-09-01"}, "true\n"},
		{"ok/group-exists-false", []string{"group", "exists", "-n", "nope"}, []string{"HEAD " + sub + "/resourceGroups/nope?api-version=2022-09-01"}, "false\n"},
		{"ok/group-delete", []string{"group", "delete", "-n", "rg1", "-y"}, []string{"DELETE " + rg + "?api-version=2022-09-01"}, ""},
		{"ok/subscription-create", []string{"account", "subscription", "create", "-n", "Dev", "--subscription-id", "88888888-8888-8888-8888-888888888888", "-o", "none"},
			[]string{"PUT /subscriptions/88888888-8888-8888-8888-888888888888?api-version=2022-12-01"}, ""},
		{"ok/keyvault-show-by-name-only", []string{"keyvault", "show", "-n", "kv1", "-o", "none"},
			[]string{"GET " + sub + "/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01", "GET " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/keyvault-list-rg", []string{"keyvault", "list", "-g", "rg1", "-o", "none"}, []string{"GET " + rg + "/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01"}, ""},
		{"ok/keyvault-update", []string{"keyvault", "update", "-n", "kv1", "-g", "rg1", "--retention-days", "30", "-o", "none"},
			[]string{"GET " + kv + "?api-version=2023-07-01", "PUT " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/keyvault-delete", []string{"keyvault", "delete", "-n", "kv1", "-g", "rg1"}, []string{"DELETE " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/keyvault-list-deleted", []string{"keyvault", "list-deleted", "-o", "none"}, []string{"GET " + sub + "/providers/Microsoft.KeyVault/deletedVaults?api-version=2023-07-01"}, ""},
		{"ok/keyvault-show-deleted", []string{"keyvault", "show-deleted", "-n", "kv1", "-l", "local", "-o", "none"},
			[]string{"GET " + sub + "/providers/Microsoft.KeyVault/locations/local/deletedVaults/kv1?api-version=2023-07-01"}, ""},
		{"ok/keyvault-purge", []string{"keyvault", "purge", "-n", "kv1", "-l", "local"},
			[]string{"POST " + sub + "/providers/Microsoft.KeyVault/locations/local/deletedVaults/kv1/purge?api-version=2023-07-01"}, ""},
		{"ok/keyvault-recover", []string{"keyvault", "recover", "-n", "kv1", "-o", "none"},
			[]string{"GET " + sub + "/providers/Microsoft.KeyVault/deletedVaults?api-version=2023-07-01", "PUT " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/set-policy", []string{"keyvault", "set-policy", "-n", "kv1", "-g", "rg1", "--object-id", testOID, "--secret-permissions", "get", "list", "-o", "none"},
			[]string{"GET " + kv + "?api-version=2023-07-01", "PUT " + kv + "/accessPolicies/add?api-version=2023-07-01", "GET " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/delete-policy", []string{"keyvault", "delete-policy", "-n", "kv1", "-g", "rg1", "--object-id", testOID, "-o", "none"},
			[]string{"GET " + kv + "?api-version=2023-07-01", "PUT " + kv + "/accessPolicies/remove?api-version=2023-07-01", "GET " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/network-rule-add", []string{"keyvault", "network-rule", "add", "-n", "kv1", "-g", "rg1", "--ip-address", "10.0.0.1", "-o", "none"},
			[]string{"GET " + kv + "?api-version=2023-07-01", "PUT " + kv + "?api-version=2023-07-01"}, ""},
		{"ok/identity-create", []string{"identity", "create", "-n", "id1", "-g", "rg1", "-l", "local", "-o", "none"},
			[]string{"PUT " + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version=2023-01-31"}, ""},
		{"ok/identity-show", []string{"identity", "show", "-n", "id1", "-g", "rg1", "-o", "none"},
			[]string{"GET " + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version=2023-01-31"}, ""},
		{"ok/role-definition-list", []string{"role", "definition", "list", "-o", "none"},
			[]string{"GET " + sub + "/providers/Microsoft.Authorization/roleDefinitions?api-version=2022-04-01"}, ""},
		// A role name becomes an OData $filter, so the server does the matching.
		{"ok/role-definition-list-name", []string{"role", "definition", "list", "-n", "Key Vault Secrets User", "-o", "none"},
			[]string{"GET " + sub + "/providers/Microsoft.Authorization/roleDefinitions?%24filter=roleName+eq+%27Key+Vault+Secrets+User%27&api-version=2022-04-01"}, ""},
		// An "id" in the JSON names the definition; without one a fresh GUID is used.
		{"ok/role-definition-create", []string{"role", "definition", "create", "-o", "none", "--role-definition",
			`{"id": "44444444-4444-4444-4444-444444444444", "Name": "Secret Reader", "DataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"], "AssignableScopes": ["` + sub + `"]}`},
			[]string{"PUT " + sub + "/providers/Microsoft.Authorization/roleDefinitions/44444444-4444-4444-4444-444444444444?api-version=2022-04-01"}, ""},
		{"ok/ad-user-create", []string{"ad", "user", "create", "--display-name", "Ann", "--user-principal-name", "ann@contoso.com", "--password", "Pa55w.rd-long", "-o", "none"},
			[]string{"POST /v1.0/users?"}, ""},
		{"ok/identity-list", []string{"identity", "list", "-o", "none"},
			[]string{"GET " + sub + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities?api-version=2023-01-31"}, ""},
		{"ok/identity-delete", []string{"identity", "delete", "-n", "id1", "-g", "rg1"},
			[]string{"DELETE " + rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version=2023-01-31"}, ""},
		{"ok/lock-create-rg", []string{"lock", "create", "-n", "l1", "-t", "CanNotDelete", "-g", "rg1", "-o", "none"},
			[]string{"PUT " + rg + "/providers/Microsoft.Authorization/locks/l1?api-version=2020-05-01"}, ""},
		{"ok/lock-create-resource", []string{"lock", "create", "-n", "l1", "-t", "readonly", "-g", "rg1", "--resource", "kv1", "--resource-type", "Microsoft.KeyVault/vaults", "-o", "none"},
			[]string{"PUT " + kv + "/providers/Microsoft.Authorization/locks/l1?api-version=2020-05-01"}, ""},
		{"ok/lock-list", []string{"lock", "list", "-o", "none"}, []string{"GET " + sub + "/providers/Microsoft.Authorization/locks?api-version=2020-05-01"}, ""},
		{"ok/lock-delete-ids", []string{"lock", "delete", "--ids", kv + "/providers/Microsoft.Authorization/locks/l1"},
			[]string{"DELETE " + kv + "/providers/Microsoft.Authorization/locks/l1?api-version=2020-05-01"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			out, errOut, code := h.run(tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if tc.stdout != "" && out != tc.stdout {
				t.Fatalf("stdout %q want %q", out, tc.stdout)
			}
			var got []string
			for _, r := range f.requests(func(r recorded) bool { return !strings.HasSuffix(r.Path, "/token") }) {
				got = append(got, r.Method+" "+r.Path+"?"+r.Query)
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestChallengeAudience: a data-plane 401 naming another resource makes the
// CLI fetch a token for that audience and retry once.
func TestChallengeAudience(t *testing.T) {
	f := newFakeServer(t)
	want := "https://vault.other:443"
	f.handle = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if aud := jwtClaims(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))["aud"]; aud != want {
			w.Header().Set("WWW-Authenticate", `Bearer authorization="`+f.base+"/"+testTenant+`", resource="`+want+`"`)
			writeJSON(w, 401, map[string]any{"error": map[string]any{"code": "Unauthorized", "message": "wrong audience"}})
			return
		}
		writeJSON(w, 200, secretBundle(f, "s1", "v1", "x"))
	}
	h := newHarness(t)
	h.login(f)
	out, errOut, code := h.run("keyvault", "secret", "show", "--vault-name", "myvault", "-n", "s1", "--query", "value", "-o", "tsv")
	if code != 0 || out != "x\n" {
		t.Fatalf("exit %d out %q: %s", code, out, errOut)
	}
	if n := len(f.requests(func(r recorded) bool { return strings.HasPrefix(r.Host, "myvault.") })); n != 2 {
		t.Fatalf("data-plane requests %d, want 2", n)
	}
}
