package vault

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestChallenge(t *testing.T) {
	cases := []struct {
		name      string
		port      int
		authErr   string
		wantHdr   string
		wantMsg   string
		wantReads bool
	}{
		{name: "fail/no-token", port: 8443,
			wantHdr: `Bearer authorization="https://localhost:8443/` + tenant1 + `", resource="https://vault.localhost:8443"`,
			wantMsg: "AKV10000: Request is missing a Bearer or PoP token."},
		{name: "fail/refused-token", port: 8443, authErr: "AKV10013: Token has expired.",
			wantHdr: `Bearer authorization="https://localhost:8443/` + tenant1 + `", resource="https://vault.localhost:8443"`,
			wantMsg: "AKV10013: Token has expired."},
		{name: "fail/port-443-omitted", port: 443,
			wantHdr: `Bearer authorization="https://localhost:8443/` + tenant1 + `", resource="https://vault.localhost"`,
			wantMsg: "AKV10000: Request is missing a Bearer or PoP token."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Port = tc.port })
			r := httptest.NewRequest("PUT", "https://v1.vault.localhost:8443/secrets/s1?api-version="+apiNew, failReader{t})
			r = r.WithContext(principal.WithInfo(r.Context(), &principal.Info{AuthError: tc.authErr}))
			w := httptest.NewRecorder()
			e.svc.ServeVault(w, r, "v1", "https://v1.vault.localhost:8443")
			if w.Code != http.StatusUnauthorized {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tc.wantHdr {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, tc.wantHdr)
			}
			// The Go SDK splits on spaces and '=' and reads the tenant as
			// the 4th '/' segment of authorization.
			hdr := w.Header().Get("WWW-Authenticate")
			fields := strings.Fields(strings.TrimPrefix(hdr, "Bearer "))
			if len(fields) != 2 {
				t.Fatalf("header fields %q", fields)
			}
			for _, f := range fields {
				if strings.Count(f, "=") != 1 {
					t.Fatalf("value with '=' in %q", f)
				}
			}
			authority := strings.Trim(strings.SplitN(strings.TrimSuffix(fields[0], ","), "=", 2)[1], `"`)
			if seg := strings.Split(authority, "/"); len(seg) < 4 || seg[3] != tenant1 {
				t.Fatalf("tenant segment of %q", authority)
			}
			want := `{"error":{"code":"Unauthorized","message":"` + tc.wantMsg + `"}}`
			if w.Body.String() != want {
				t.Fatalf("body\n got %s\nwant %s", w.Body.String(), want)
			}
		})
	}
}

func TestAudienceAndTenant(t *testing.T) {
	cases := []struct {
		name   string
		aud    string
		tenant string
		want   int
		msg    string
	}{
		{name: "ok/aud-with-port", aud: "https://vault.localhost:8443", tenant: tenant1, want: 200},
		{name: "ok/aud-trailing-slash", aud: "https://vault.localhost:8443/", tenant: tenant1, want: 200},
		{name: "ok/aud-without-port", aud: "https://vault.localhost", tenant: tenant1, want: 200},
		{name: "ok/aud-default-suffix", aud: "https://vault.localhost:8443/.default", tenant: tenant1, want: 200},
		{name: "fail/arm-audience", aud: "https://localhost:8443", tenant: tenant1, want: 401, msg: "AKV10022"},
		{name: "fail/other-vault-domain", aud: "https://vault.azure.net", tenant: tenant1, want: 401, msg: "AKV10022"},
		{name: "fail/other-tenant", aud: aud, tenant: tenant2, want: 401, msg: "AKV10032: Invalid issuer."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := newPrincipal(tc.tenant, "oid-x")
			p.Audience = tc.aud
			w := e.serve(call{method: "GET", target: "/secrets", p: p})
			if w.Code != tc.want {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if tc.want == 401 {
				if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer authorization="https://localhost:8443/`+tenant1+`"`) {
					t.Fatalf("challenge missing: %q", w.Header().Get("WWW-Authenticate"))
				}
				code, _, msg := errCode(t, w)
				if code != "Unauthorized" || !strings.Contains(msg, tc.msg) {
					t.Fatalf("code %s msg %s", code, msg)
				}
			}
		})
	}
}

func TestRBAC(t *testing.T) {
	e := newEnv(t)
	set := e.mustSet("s1", `{"value":"v"}`)
	ver := versionOf(t, set)
	scopeVault := vaultRG + "v1"
	scopeSecret := scopeVault + "/secrets/s1"
	a := "Microsoft.KeyVault/vaults/secrets/"
	cases := []struct {
		name, method, target, body string
		action, scope, opName      string
	}{
		{"ok/set", "PUT", "/secrets/s1", `{"value":"x"}`, a + "setSecret/action", scopeSecret, "SecretSet"},
		{"ok/get", "GET", "/secrets/s1/" + ver, "", a + "getSecret/action", scopeSecret, "SecretGet"},
		{"ok/list", "GET", "/secrets", "", a + "readMetadata/action", scopeVault, "SecretList"},
		{"ok/versions", "GET", "/secrets/s1/versions", "", a + "readMetadata/action", scopeSecret, "SecretListVersions"},
		{"ok/update", "PATCH", "/secrets/s1/" + ver, `{}`, a + "update/action", scopeSecret, "SecretUpdate"},
		{"ok/backup", "POST", "/secrets/s1/backup", "", a + "backup/action", scopeSecret, "SecretBackup"},
		{"ok/delete", "DELETE", "/secrets/s1", "", a + "delete", scopeSecret, "SecretDelete"},
		{"ok/get-deleted", "GET", "/deletedsecrets/s1", "", a + "readMetadata/action", scopeSecret, "SecretGetDeleted"},
		{"ok/list-deleted", "GET", "/deletedsecrets", "", a + "readMetadata/action", scopeVault, "SecretListDeleted"},
		{"ok/recover", "POST", "/deletedsecrets/s1/recover", "", a + "recover/action", scopeSecret, "SecretRecover"},
		{"ok/restore", "POST", "/secrets/restore", `{"value":"eA"}`, a + "restore/action", scopeVault, "SecretRestore"},
		{"ok/delete-again", "DELETE", "/secrets/s1", "", a + "delete", scopeSecret, "SecretDelete"},
		{"ok/purge", "DELETE", "/deletedsecrets/s1", "", a + "purge/action", scopeSecret, "SecretPurge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Denied first: nothing happens and the refusal has Azure's shape.
			e.dec.allow = func(authz.Request) bool { return false }
			before := e.snapshot()
			info := &principal.Info{}
			w := e.serve(call{method: tc.method, target: tc.target, body: tc.body, info: info})
			if w.Code != 403 {
				t.Fatalf("denied: status %d %s", w.Code, w.Body)
			}
			code, inner, msg := errCode(t, w)
			if code != "Forbidden" || inner != "ForbiddenByRbac" ||
				!strings.HasPrefix(msg, "Caller is not authorized to perform action on resource.\r\n") ||
				!strings.Contains(msg, "Action: '"+tc.action+"'") ||
				!strings.Contains(msg, "Resource: '"+strings.ToLower(tc.scope)+"'") ||
				!strings.Contains(msg, "Caller: appid=app-oid-alice;oid=oid-alice;iss=https://localhost:8443/"+tenant1+"/v2.0") ||
				!strings.Contains(msg, "DecisionReason: 'DeniedWithNoValidRBAC'") ||
				!strings.Contains(msg, "Vault: v1;location=westeurope") {
				t.Fatalf("refusal: %s %s %q", code, inner, msg)
			}
			if info.IsRBACAuthorized || info.OperationName != tc.opName || info.ResultDescription == "" {
				t.Fatalf("audit info %+v", info)
			}
			if got := e.snapshot(); len(got) != len(before) {
				t.Fatalf("denied request changed the store")
			}
			r := e.dec.last()
			if r.Action != tc.action || r.Scope != tc.scope || !r.DataAction || r.Principal != e.alice {
				t.Fatalf("decider request %+v", r)
			}
			// Allowed: the operation runs (restore's fake blob is refused
			// after authorization, as bad input).
			e.dec.allow = nil
			info = &principal.Info{}
			w = e.serve(call{method: tc.method, target: tc.target, body: tc.body, info: info})
			if tc.name == "ok/restore" {
				if w.Code != 400 {
					t.Fatalf("restore with junk: %d", w.Code)
				}
			} else if w.Code/100 != 2 {
				t.Fatalf("allowed: status %d %s", w.Code, w.Body)
			}
			if !info.IsRBACAuthorized || info.IsAccessPolicy || info.OperationVersion != apiNew || info.ResourceID != vaultRG+"v1" {
				t.Fatalf("audit info %+v", info)
			}
		})
	}
}

func TestAccessPolicies(t *testing.T) {
	e := newEnv(t)
	v := newVault("ap", tenant1)
	v.EnableRBACAuthorization = false
	bob := newPrincipal(tenant1, "oid-bob")
	v.AccessPolicies = []authz.AccessPolicy{
		{TenantID: tenant1, ObjectID: "oid-alice", Permissions: authz.Permissions{Secrets: []string{"all"}}},
		{TenantID: tenant1, ObjectID: "oid-bob", Permissions: authz.Permissions{Secrets: []string{"Get", "List"}}},
	}
	e.dir.put(v)
	if w := e.serve(call{vault: "ap", method: "PUT", target: "/secrets/s1", body: `{"value":"x"}`}); w.Code != 200 {
		t.Fatalf("alice set: %d %s", w.Code, w.Body)
	}
	cases := []struct {
		name, method, target, body string
		want                       int
		perm                       string
	}{
		{"ok/get", "GET", "/secrets/s1", "", 200, ""},
		{"ok/list", "GET", "/secrets", "", 200, ""},
		{"fail/set", "PUT", "/secrets/s1", `{"value":"y"}`, 403, "set"},
		{"fail/delete", "DELETE", "/secrets/s1", "", 403, "delete"},
		{"fail/backup", "POST", "/secrets/s1/backup", "", 403, "backup"},
		{"fail/purge", "DELETE", "/deletedsecrets/s1", "", 403, "purge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			info := &principal.Info{}
			w := e.serve(call{vault: "ap", method: tc.method, target: tc.target, body: tc.body, p: bob, info: info})
			if w.Code != tc.want {
				t.Fatalf("status %d %s", w.Code, w.Body)
			}
			if !info.IsAccessPolicy || info.IsRBACAuthorized {
				t.Fatalf("audit info %+v", info)
			}
			if tc.want == 403 {
				code, inner, msg := errCode(t, w)
				want := "The user, group or application 'appid=app-oid-bob;oid=oid-bob;iss=https://localhost:8443/" + tenant1 +
					"/v2.0' does not have secrets " + tc.perm + " permission on key vault 'ap;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
				if code != "Forbidden" || inner != innerAccessPolicy || msg != want {
					t.Fatalf("refusal %s %s %q", code, inner, msg)
				}
			}
		})
	}
	if len(e.dec.reqs) != 0 {
		t.Fatalf("access-policy vault consulted the RBAC decider")
	}
}

func TestFirewall(t *testing.T) {
	platform := newPrincipal(tenant1, "oid-platform")
	platform.Platform = true
	cases := []struct {
		name   string
		public string
		acl    *NetworkACLs
		ip     string
		p      *principal.Principal
		want   int
		inner  string
	}{
		{name: "ok/no-acl", ip: "203.0.113.5", want: 200},
		{name: "ok/default-allow", acl: &NetworkACLs{DefaultAction: "Allow"}, ip: "203.0.113.5", want: 200},
		{name: "fail/deny-no-rule", acl: &NetworkACLs{DefaultAction: "Deny", Bypass: "None"}, ip: "203.0.113.5", want: 403, inner: "ForbiddenByFirewall"},
		{name: "ok/deny-address-rule", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "203.0.113.5"}}}, ip: "203.0.113.5", want: 200},
		{name: "ok/deny-cidr-rule", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "203.0.113.0/24"}}}, ip: "203.0.113.77", want: 200},
		{name: "ok/mapped-v4", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "203.0.113.0/24"}}}, ip: "::ffff:203.0.113.77", want: 200},
		{name: "fail/cidr-miss", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "203.0.113.0/24"}}}, ip: "198.51.100.1", want: 403, inner: "ForbiddenByFirewall"},
		{name: "ok/ipv6-cidr", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "2001:db8::/32"}}}, ip: "2001:db8:1::5", want: 200},
		{name: "fail/ipv6-miss", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "2001:db8::/32"}}}, ip: "2001:db9::5", want: 403, inner: "ForbiddenByFirewall"},
		{name: "fail/garbage-ip", acl: &NetworkACLs{DefaultAction: "Deny", IPRules: []IPRule{{Value: "0.0.0.0/0"}}}, ip: "not-an-ip", want: 403, inner: "ForbiddenByFirewall"},
		{name: "ok/bypass-trusted", acl: &NetworkACLs{DefaultAction: "Deny", Bypass: "AzureServices"}, ip: "203.0.113.5", p: platform, want: 200},
		{name: "fail/bypass-untrusted", acl: &NetworkACLs{DefaultAction: "Deny", Bypass: "AzureServices"}, ip: "203.0.113.5", want: 403, inner: "ForbiddenByFirewall"},
		{name: "fail/bypass-none-trusted", acl: &NetworkACLs{DefaultAction: "Deny", Bypass: "None"}, ip: "203.0.113.5", p: platform, want: 403, inner: "ForbiddenByFirewall"},
		{name: "fail/public-disabled", public: "Disabled", ip: "203.0.113.5", want: 403, inner: "ForbiddenByConnection"},
		{name: "ok/public-disabled-trusted", public: "Disabled", acl: &NetworkACLs{DefaultAction: "Deny", Bypass: "AzureServices"}, ip: "203.0.113.5", p: platform, want: 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVault("fw", tenant1)
			v.NetworkACLs = tc.acl
			if tc.public != "" {
				v.PublicNetworkAccess = tc.public
			}
			e.dir.put(v)
			w := e.serve(call{vault: "fw", method: "GET", target: "/secrets", ip: tc.ip, p: tc.p})
			if w.Code != tc.want {
				t.Fatalf("status %d %s", w.Code, w.Body)
			}
			if tc.want == 403 {
				code, inner, msg := errCode(t, w)
				if code != "Forbidden" || inner != tc.inner || !strings.Contains(msg, "\r\nVault: fw;location=westeurope") {
					t.Fatalf("%s %s %q", code, inner, msg)
				}
				if inner == "ForbiddenByFirewall" && !strings.HasPrefix(msg, "Client address is not authorized and caller is not a trusted service.\r\nClient address: "+tc.ip+"\r\nCaller: appid=") {
					t.Fatalf("message %q", msg)
				}
				// The firewall runs before authorization.
				if len(e.dec.reqs) != 0 {
					t.Fatalf("authorization consulted before firewall refusal")
				}
			}
		})
	}
}
