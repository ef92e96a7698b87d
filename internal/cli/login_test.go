package cli

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogin(t *testing.T) {
	f := newFakeServer(t)
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		wantErr  string
		wantKind string
		wantUser string
	}{
		{name: "ok/user-password-flag", args: []string{"-u", "admin@keyhaven.local", "-p", "hunter2-secret"}, wantKind: loginUser, wantUser: "user"},
		{name: "ok/user-password-env", args: []string{"-u", "admin@keyhaven.local"}, env: map[string]string{"KEYHAVEN_PASSWORD": "hunter2-secret"}, wantKind: loginUser, wantUser: "user"},
		{name: "ok/service-principal", args: []string{"--service-principal", "-u", "app-id", "-p", "sp-secret", "--tenant", testTenant}, wantKind: loginServicePrincipal, wantUser: "servicePrincipal"},
		{name: "fail/wrong-password", args: []string{"-u", "admin@keyhaven.local", "-p", "nope"}, wantCode: 1, wantErr: "ERROR: (invalid_grant) AADSTS50126"},
		{name: "fail/no-password-no-tty", args: []string{"-u", "admin@keyhaven.local"}, wantCode: 1, wantErr: "ERROR: no terminal in tests"},
		{name: "fail/no-username", args: []string{}, wantCode: 2, wantErr: "ERROR: the following arguments are required: --username/-u"},
		{name: "fail/http-server", args: []string{"-u", "x", "-p", "y", "--server", "http://localhost:1"}, wantCode: 2, wantErr: "requires https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			h := newHarness(t)
			for k, v := range tc.env {
				h.env[k] = v
			}
			args := append([]string{"login", "--server", f.base, "--ca-file", f.caFile}, tc.args...)
			out, errOut, code := h.run(args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.wantCode, errOut)
			}
			if tc.wantCode != 0 {
				if !strings.HasPrefix(errOut, tc.wantErr) && !strings.Contains(errOut, tc.wantErr) {
					t.Fatalf("stderr %q, want %q", errOut, tc.wantErr)
				}
				if strings.Contains(errOut, "hunter2") || strings.Contains(errOut, "nope") {
					t.Fatalf("password leaked to stderr: %q", errOut)
				}
				return
			}
			// az login prints the accounts.
			accts, _ := decodeJSON(t, out).([]any)
			if len(accts) != 1 {
				t.Fatalf("want one account, got %s", out)
			}
			acct := accts[0].(map[string]any)
			if acct["id"] != testSub || acct["isDefault"] != true || acct["tenantId"] != testTenant ||
				acct["user"].(map[string]any)["type"] != tc.wantUser {
				t.Fatalf("account: %v", acct)
			}
			tok := f.requests(func(r recorded) bool { return strings.HasSuffix(r.Path, "/oauth2/v2.0/token") })
			if len(tok) != 1 || tok[0].Path != "/"+testTenant+"/oauth2/v2.0/token" {
				t.Fatalf("token requests: %+v", tok)
			}
			form := tok[0].Form
			if tc.wantKind == loginUser {
				if form.Get("grant_type") != "password" || form.Get("client_id") != azCLIClientID ||
					form.Get("scope") != f.base+"/.default offline_access" || form.Get("username") != "admin@keyhaven.local" {
					t.Fatalf("password grant form: %v", form)
				}
			} else if form.Get("grant_type") != "client_credentials" || form.Get("client_id") != "app-id" || form.Get("scope") != f.base+"/.default" {
				t.Fatalf("client credentials form: %v", form)
			}
			subs := f.requests(func(r recorded) bool { return r.Path == "/subscriptions" })
			if len(subs) != 1 || subs[0].Query != "api-version=2022-12-01" || !strings.HasPrefix(subs[0].Auth, "Bearer ") {
				t.Fatalf("subscription list: %+v", subs)
			}
			cfg := h.config()
			if cfg.LoginKind != tc.wantKind || cfg.TenantID != testTenant || cfg.DefaultSubscription != testSub ||
				cfg.Endpoint.VaultDomain != "vault.localhost" || cfg.Endpoint.VaultPort != f.port ||
				cfg.Endpoint.VaultAudience != f.vaultAudience() || cfg.Endpoint.ARMAudience != f.base ||
				cfg.ObjectID != testOID || cfg.CAPEM != f.caPEM {
				t.Fatalf("config: %+v", cfg)
			}
			st, err := os.Stat(filepath.Join(h.dir, configFileName))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("config mode: %v %v", st, err)
			}
		})
	}
}

func TestLoginNoSubscriptions(t *testing.T) {
	f := newFakeServer(t)
	f.noSubs = true
	tests := []struct {
		name     string
		extra    []string
		wantCode int
	}{
		{"fail/no-subscriptions", nil, 1},
		{"ok/allow-no-subscriptions", []string{"--allow-no-subscriptions"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			args := append([]string{"login", "--server", f.base, "--ca-file", f.caFile, "-u", "admin@keyhaven.local", "-p", "hunter2-secret"}, tc.extra...)
			out, errOut, code := h.run(args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if code != 0 {
				if !strings.Contains(errOut, "No subscriptions found for admin@keyhaven.local") {
					t.Fatalf("stderr %q", errOut)
				}
				if h.config().LoginKind != "" {
					t.Fatalf("a failed login must not be saved")
				}
				return
			}
			accts := decodeJSON(t, out).([]any)
			if len(accts) != 1 || accts[0].(map[string]any)["id"] != testTenant || accts[0].(map[string]any)["name"] != "N/A(tenant level account)" {
				t.Fatalf("accounts %v", accts)
			}
		})
	}
}

func TestTokenRefresh(t *testing.T) {
	f := newFakeServer(t)
	f.handle = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, map[string]any{"id": r.URL.Path, "name": "rg1", "location": "local"})
	}
	h := newHarness(t)
	h.login(f)
	rtBefore := h.config().RefreshToken

	tests := []struct {
		name        string
		advance     time.Duration
		wantRefresh int
	}{
		{"ok/cached-token-reused", 10 * time.Minute, 0},
		{"ok/expired-token-refreshed", 2 * time.Hour, 1},
		{"ok/refreshed-token-cached", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			f.mu.Lock()
			f.refreshN = 0
			f.mu.Unlock()
			h.now = h.now.Add(tc.advance)
			h.mustRun("group", "show", "-n", "rg1")
			f.mu.Lock()
			got := f.refreshN
			f.mu.Unlock()
			if got != tc.wantRefresh {
				t.Fatalf("refresh grants %d, want %d", got, tc.wantRefresh)
			}
			arm := f.requests(func(r recorded) bool { return strings.HasPrefix(r.Path, "/subscriptions/") })
			if len(arm) != 1 || arm[0].Path != "/subscriptions/"+testSub+"/resourceGroups/rg1" || arm[0].Query != "api-version=2022-09-01" {
				t.Fatalf("arm requests %+v", arm)
			}
			if claims := jwtClaims(strings.TrimPrefix(arm[0].Auth, "Bearer ")); claims["aud"] != f.base {
				t.Fatalf("ARM token audience %v", claims["aud"])
			}
			if tc.wantRefresh > 0 {
				tok := f.requests(func(r recorded) bool { return strings.HasSuffix(r.Path, "/token") })
				if tok[0].Form.Get("refresh_token") != rtBefore || tok[0].Form.Get("grant_type") != "refresh_token" {
					t.Fatalf("refresh form %v", tok[0].Form)
				}
				if h.config().RefreshToken == rtBefore {
					t.Fatalf("rotated refresh token not saved")
				}
			}
		})
	}
}

func TestLogout(t *testing.T) {
	f := newFakeServer(t)
	h := newHarness(t)
	h.login(f)
	h.mustRun("logout")
	cfg := h.config()
	if cfg.RefreshToken != "" || len(cfg.Tokens) != 0 || cfg.LoginKind != "" || cfg.Server != f.base {
		t.Fatalf("after logout: %+v", cfg)
	}
	_, errOut, code := h.run("group", "list")
	if code != 1 || !strings.Contains(errOut, "ERROR: Please run 'keyhaven login'") {
		t.Fatalf("code %d stderr %q", code, errOut)
	}
}

func TestGetAccessToken(t *testing.T) {
	f := newFakeServer(t)
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name    string
		args    []string
		wantAud string
	}{
		{"ok/default-arm", nil, f.base},
		{"ok/resource-vault", []string{"--resource", f.vaultAudience()}, f.vaultAudience()},
		{"ok/scope-vault", []string{"--scope", f.vaultAudience() + "/.default"}, f.vaultAudience()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := h.mustRun(append([]string{"account", "get-access-token"}, tc.args...)...)
			m := decodeJSON(t, out).(map[string]any)
			for _, k := range []string{"accessToken", "expiresOn", "expires_on", "subscription", "tenant", "tokenType"} {
				if _, ok := m[k]; !ok {
					t.Fatalf("missing %s in %v", k, m)
				}
			}
			if aud := jwtClaims(m["accessToken"].(string))["aud"]; aud != tc.wantAud {
				t.Fatalf("aud %v want %v", aud, tc.wantAud)
			}
			if m["tenant"] != testTenant || m["subscription"] != testSub || m["tokenType"] != "Bearer" {
				t.Fatalf("token output %v", m)
			}
		})
	}
}
