package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// Identity and authorization through the CLI and the real binary: a service
// principal made with create-for-rbac, the Operator Nexus writer role that may
// set but not read, the access-policy model with Get+Set only, and revocation
// that takes effect on the very next request.
func TestCLIIdentityAndAuthorization(t *testing.T) {
	s := khtest.Start(t, khtest.Options{})
	kh := cliSession(t, s)
	kh("group", "create", "-n", "rg1", "-l", "local", "-o", "none")
	vaultID := strings.TrimSpace(kh("keyvault", "create", "-n", "rbacvault", "-g", "rg1", "-l", "local", "--query", "id", "-o", "tsv"))
	kh("keyvault", "secret", "set", "--vault-name", "rbacvault", "-n", "existing", "--value", "v0", "-o", "none")

	var sp struct {
		AppID    string `json:"appId"`
		Password string `json:"password"`
		Tenant   string `json:"tenant"`
	}
	mustJSON(t, kh("ad", "sp", "create-for-rbac", "-n", "writer-app"), &sp)
	if sp.AppID == "" || sp.Password == "" || sp.Tenant != s.Admin.TenantID {
		t.Fatalf("create-for-rbac: %+v", sp)
	}
	spObject := strings.TrimSpace(kh("ad", "sp", "show", "--id", sp.AppID, "--query", "id", "-o", "tsv"))

	// The Nexus guide's command, verbatim but for the binary's name.
	kh("role", "assignment", "create", "--assignee", spObject, "--role", "44f0a1a8-6fea-4b35-980a-8ff50c487c97", "--scope", vaultID, "-o", "none")
	list := kh("role", "assignment", "list", "--scope", vaultID, "--query", "[].roleDefinitionName", "-o", "tsv")
	if !strings.Contains(list, "Operator Nexus Key Vault Writer Service Role") {
		t.Fatalf("assignment list:\n%s", list)
	}
	// Flat, as az prints it, so az's --query idioms work.
	if got := strings.TrimSpace(kh("role", "assignment", "list", "--scope", vaultID, "--query", "[?principalId=='"+spObject+"'].scope | [0]", "-o", "tsv")); !strings.EqualFold(got, vaultID) {
		t.Fatalf("role assignment list, flat scope = %q", got)
	}

	tok := s.ClientSecretToken(t, sp.AppID, sp.Password, s.VaultAudience())
	vurl := s.VaultURL("rbacvault")
	code, body := s.Do(t, "PUT", vurl+"secrets/rotated?api-version=7.5", tok, map[string]any{"value": "new"})
	mustStatus(t, 200, code, body)
	if code, body = s.Do(t, "GET", vurl+"secrets/rotated?api-version=7.5", tok, nil); code != 403 || !contains(body, "ForbiddenByRbac") {
		t.Fatalf("writer role read its secret back: %d %s", code, body)
	}
	if code, _ = s.Do(t, "GET", vurl+"secrets?api-version=7.5", tok, nil); code != 403 {
		t.Fatalf("writer role listed secrets: %d", code)
	}

	// Revocation: the very next request is refused.
	kh("role", "assignment", "delete", "--assignee", spObject, "--role", "44f0a1a8-6fea-4b35-980a-8ff50c487c97", "--scope", vaultID)
	if code, body = s.Do(t, "PUT", vurl+"secrets/rotated?api-version=7.5", tok, map[string]any{"value": "newer"}); code != 403 {
		t.Fatalf("write after revocation: %d %s", code, body)
	}

	// Secrets User at the secret's own scope grants that secret only.
	kh("role", "assignment", "create", "--assignee", sp.AppID, "--role", "Key Vault Secrets User", "--scope", vaultID+"/secrets/existing", "-o", "none")
	if code, body = s.Do(t, "GET", vurl+"secrets/existing?api-version=7.5", tok, nil); code != 200 {
		t.Fatalf("secret-scope read: %d %s", code, body)
	}
	if code, _ = s.Do(t, "GET", vurl+"secrets/rotated?api-version=7.5", tok, nil); code != 403 {
		t.Fatalf("secret-scope assignment granted a sibling: %d", code)
	}

	// Access-policy model: Get and Set only, as the Stack Edge guide's device.
	kh("keyvault", "create", "-n", "apvault", "-g", "rg1", "-l", "local", "--enable-rbac-authorization", "false", "-o", "none")
	kh("keyvault", "set-policy", "-n", "apvault", "--object-id", spObject, "--secret-permissions", "get", "set", "-o", "none")
	apurl := s.VaultURL("apvault")
	cases := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"ok/set", "PUT", "secrets/dev?api-version=7.5", map[string]any{"value": "x"}, 200},
		{"ok/get", "GET", "secrets/dev?api-version=7.5", nil, 200},
		{"fail/list", "GET", "secrets?api-version=7.5", nil, 403},
		{"fail/delete", "DELETE", "secrets/dev?api-version=7.5", nil, 403},
	}
	for _, c := range cases {
		t.Run("policy/"+c.name, func(t *testing.T) {
			code, body := s.Do(t, c.method, apurl+c.path, tok, c.body)
			if code != c.want {
				t.Fatalf("%s %s: %d %s", c.method, c.path, code, body)
			}
			if code == 403 && !contains(body, "AccessDenied") {
				t.Fatalf("policy refusal lacks innererror: %s", body)
			}
		})
	}
	kh("keyvault", "delete-policy", "-n", "apvault", "--object-id", spObject, "-o", "none")
	if code, _ = s.Do(t, "GET", apurl+"secrets/dev?api-version=7.5", tok, nil); code != 403 {
		t.Fatalf("get after delete-policy: %d", code)
	}

	// A user-assigned identity, created and listed through the CLI.
	var uai map[string]any
	mustJSON(t, kh("identity", "create", "-n", "myUAI", "-g", "rg1", "-l", "local"), &uai)
	// Flat, as az prints it: principalId and clientId beside id.
	if uai["principalId"] == nil || uai["clientId"] == nil || uai["tenantId"] == nil || uai["resourceGroup"] != "rg1" {
		t.Fatalf("identity create: %v", uai)
	}
	if got := strings.TrimSpace(kh("identity", "show", "-n", "myUAI", "-g", "rg1", "--query", "principalId", "-o", "tsv")); got != uai["principalId"] {
		t.Fatalf("identity show --query principalId = %q, want %v", got, uai["principalId"])
	}
	if !strings.Contains(kh("identity", "list", "-g", "rg1", "-o", "tsv"), "myUAI") {
		t.Fatal("identity list lacks myUAI")
	}
	kh("identity", "delete", "-n", "myUAI", "-g", "rg1")
}

// Forged and wrong tokens are refused with 401 by both planes.
func TestForgedTokensRefused(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	s := w.srv
	good := w.kvToken
	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + parts[1][:len(parts[1])-2] + "AA." + parts[2]
	cases := []struct{ name, token string }{
		{"fail/garbage", "not-a-jwt"},
		{"fail/alg-none", "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + "."},
		{"fail/tampered-payload", tamperedPayload},
		{"fail/no-signature", parts[0] + "." + parts[1] + "."},
		{"fail/arm-token-on-vault", w.armToken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", w.secretURL("x"), nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := s.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource="`+s.VaultAudience()+`"`) {
				t.Fatalf("no challenge: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("fail/vault-token-on-arm", func(t *testing.T) {
		code, body := s.Do(t, "GET", s.BaseURL+"/subscriptions?api-version=2022-12-01", good, nil)
		if code != 401 {
			t.Fatalf("status %d %s", code, body)
		}
		var e map[string]any
		_ = json.Unmarshal(body, &e)
	})
}
