package identity

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestOIDCDiscovery(t *testing.T) {
	e := newEnv(t)
	h := e.svc.Handler()
	tid := e.boot.TenantID
	cases := []struct {
		name, tenant, wantIssuer, wantSeg string
		status                            int
	}{
		{"ok/tenant-guid", tid, testBase + "/" + tid + "/v2.0", tid, 200},
		{"ok/tenant-domain", "keyhaven.local", testBase + "/" + tid + "/v2.0", tid, 200},
		{"ok/organizations", "organizations", testBase + "/{tenantid}/v2.0", "organizations", 200},
		{"ok/common", "common", testBase + "/{tenantid}/v2.0", "common", 200},
		{"fail/unknown-tenant", "nope.example", "", "", 400},
		{"fail/unknown-guid", newGUID(), "", "", 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := do(t, h, httptest.NewRequest("GET", "/"+tc.tenant+"/v2.0/.well-known/openid-configuration", nil))
			if code != tc.status {
				t.Fatalf("status %d: %v", code, m)
			}
			if tc.status != 200 {
				if m["error"] != "invalid_tenant" || oauthCode(m) != 90002 {
					t.Fatalf("error body = %v", m)
				}
				return
			}
			want := map[string]string{
				"issuer":                 tc.wantIssuer,
				"token_endpoint":         testBase + "/" + tc.wantSeg + "/oauth2/v2.0/token",
				"jwks_uri":               testBase + "/" + tc.wantSeg + "/discovery/v2.0/keys",
				"authorization_endpoint": testBase + "/" + tc.wantSeg + "/oauth2/v2.0/authorize",
			}
			for k, v := range want {
				if m[k] != v {
					t.Errorf("%s = %v, want %s", k, m[k], v)
				}
			}
			algs, _ := m["id_token_signing_alg_values_supported"].([]any)
			if len(algs) != 1 || algs[0] != "RS256" {
				t.Errorf("algs = %v", algs)
			}
			if _, ok := m["grant_types_supported"].([]any); !ok {
				t.Error("grant_types_supported missing")
			}
		})
	}
}

func TestJWKSContent(t *testing.T) {
	e := newEnv(t)
	tok, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	code, m := do(t, e.svc.Handler(), httptest.NewRequest("GET", "/"+e.boot.TenantID+"/discovery/v2.0/keys", nil))
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	keys, _ := m["keys"].([]any)
	if len(keys) != 1 {
		t.Fatalf("keys = %v", m)
	}
	k := keys[0].(map[string]any)
	if k["kty"] != "RSA" || k["use"] != "sig" || k["alg"] != "RS256" || k["kid"] != headerOf(t, tok)["kid"] || k["n"] == nil || k["e"] != "AQAB" {
		t.Errorf("key = %v", k)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := k[private]; ok {
			t.Fatalf("JWKS exposes private member %q", private)
		}
	}
	n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
	if len(n)*8 != 2048 {
		t.Errorf("modulus is %d bits", len(n)*8)
	}
}

// tokenOK asserts an Entra-shaped success and returns the verified principal.
func tokenOK(t *testing.T, e *env, code int, m map[string]any) *principal.Principal {
	t.Helper()
	if code != 200 {
		t.Fatalf("status %d: %v", code, m)
	}
	if m["token_type"] != "Bearer" || m["expires_in"] != float64(3600) || m["ext_expires_in"] != float64(3600) {
		t.Fatalf("response = %v", m)
	}
	tok, _ := m["access_token"].(string)
	return e.mustVerify(tok)
}

// oauthFail asserts an Entra-shaped OAuth error.
func oauthFail(t *testing.T, code int, m map[string]any, status int, errCode string, aadsts int) {
	t.Helper()
	if code != status || m["error"] != errCode || oauthCode(m) != aadsts {
		t.Fatalf("got %d %v %d, want %d %s %d: %v", code, m["error"], oauthCode(m), status, errCode, aadsts, m["error_description"])
	}
	desc, _ := m["error_description"].(string)
	if !strings.HasPrefix(desc, "AADSTS") || !strings.Contains(desc, "Trace ID:") {
		t.Errorf("error_description = %q", desc)
	}
	for _, f := range []string{"timestamp", "trace_id", "correlation_id"} {
		if s, _ := m[f].(string); s == "" {
			t.Errorf("%s missing", f)
		}
	}
	if _, ok := m["access_token"]; ok {
		t.Error("error response carries a token")
	}
}

func TestClientCredentialsSecret(t *testing.T) {
	e := newEnv(t)
	h := e.svc.Handler()
	app, sp := e.app("ci-app")
	cred, err := e.svc.AddPassword(e.ctx, app.AppID, "ci", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cred.SecretText) != 40 || cred.Hint != cred.SecretText[:3] {
		t.Fatalf("secret shape: len %d hint %q", len(cred.SecretText), cred.Hint)
	}
	short, err := e.svc.AddPassword(e.ctx, app.AppID, "short", testStart.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	disabledApp, disabledSP := e.app("disabled-app")
	dcred, _ := e.svc.AddPassword(e.ctx, disabledApp.AppID, "", time.Time{})
	if err := e.svc.SetPrincipalEnabled(e.ctx, disabledSP.ObjectID, false); err != nil {
		t.Fatal(err)
	}
	other, _ := e.svc.CreateTenant(e.ctx, "other.example", "other")
	const scope = "https://vault.localhost:8443/.default"
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"client_credentials"}, "client_id": {app.AppID}, "client_secret": {cred.SecretText}, "scope": {scope}}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == "-" {
				v.Del(kv[i])
			} else {
				v.Set(kv[i], kv[i+1])
			}
		}
		return v
	}
	okCases := []struct {
		name, tenant string
		f            url.Values
		aud          string
	}{
		{"ok/secret-post", e.boot.TenantID, form(), "https://vault.localhost:8443"},
		{"ok/tenant-domain", "keyhaven.local", form(), "https://vault.localhost:8443"},
		{"ok/organizations", "organizations", form(), "https://vault.localhost:8443"},
		{"ok/azidentity-scope", e.boot.TenantID, form("scope", testBase+"/.default openid offline_access profile"), testBase},
		{"ok/trailing-slash-resource", e.boot.TenantID, form("scope", "https://management.core.windows.net//.default"), "https://management.core.windows.net/"},
		{"ok/short-lived-secret", e.boot.TenantID, form("client_secret", short.SecretText), "https://vault.localhost:8443"},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := postToken(t, h, tc.tenant, tc.f)
			p := tokenOK(t, e, code, m)
			if p.ObjectID != sp.ObjectID || p.AppID != app.AppID || p.Kind != principal.ServicePrincipal || p.Audience != tc.aud {
				t.Fatalf("principal = %+v", p)
			}
			if _, ok := m["refresh_token"]; ok {
				t.Error("client credentials must not get a refresh token")
			}
			if c := claimsOf(t, m["access_token"].(string)); c["azpacr"] != "1" || c["idtyp"] != "app" {
				t.Errorf("claims = %v", c)
			}
		})
	}
	t.Run("ok/secret-basic", func(t *testing.T) {
		f := form("client_secret", "-", "client_id", "-")
		req := httptest.NewRequest("POST", "/"+e.boot.TenantID+"/oauth2/v2.0/token", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(url.QueryEscape(app.AppID), url.QueryEscape(cred.SecretText))
		code, m := do(t, h, req)
		tokenOK(t, e, code, m)
	})
	failCases := []struct {
		name, tenant string
		f            url.Values
		status       int
		err          string
		aadsts       int
	}{
		{"fail/wrong-secret", e.boot.TenantID, form("client_secret", cred.SecretText[:39]+"x"), 401, "invalid_client", 7000215},
		{"fail/secret-id-instead-of-value", e.boot.TenantID, form("client_secret", cred.KeyID), 401, "invalid_client", 7000215},
		{"fail/other-apps-secret", e.boot.TenantID, form("client_secret", dcred.SecretText), 401, "invalid_client", 7000215},
		{"fail/no-credential", e.boot.TenantID, form("client_secret", "-"), 401, "invalid_client", 7000218},
		{"fail/empty-secret", e.boot.TenantID, form("client_secret", ""), 401, "invalid_client", 7000215},
		{"fail/unknown-client", e.boot.TenantID, form("client_id", newGUID()), 400, "unauthorized_client", 700016},
		{"fail/missing-client-id", e.boot.TenantID, form("client_id", "-"), 400, "invalid_request", 900144},
		{"fail/app-in-other-tenant", other.ID, form(), 400, "unauthorized_client", 700016},
		{"fail/unknown-tenant", "nope.example", form(), 400, "invalid_tenant", 90002},
		{"fail/disabled-app", e.boot.TenantID, form("client_id", disabledApp.AppID, "client_secret", dcred.SecretText), 400, "unauthorized_client", 7000112},
		{"fail/scope-without-default", e.boot.TenantID, form("scope", "https://vault.localhost:8443/user_impersonation"), 400, "invalid_scope", 1002012},
		{"fail/missing-scope", e.boot.TenantID, form("scope", "-"), 400, "invalid_request", 900144},
		{"fail/two-resources", e.boot.TenantID, form("scope", "https://a/.default https://b/.default"), 400, "invalid_scope", 28000},
		{"fail/missing-grant-type", e.boot.TenantID, form("grant_type", "-"), 400, "invalid_request", 900144},
		{"fail/unsupported-grant", e.boot.TenantID, form("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), 400, "unsupported_grant_type", 70003},
		{"fail/oversized-field", e.boot.TenantID, form("scope", strings.Repeat("x", maxFieldLen+1)), 400, "invalid_request", 900144},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := postToken(t, h, tc.tenant, tc.f)
			oauthFail(t, code, m, tc.status, tc.err, tc.aadsts)
		})
	}
	t.Run("fail/get-method", func(t *testing.T) {
		code, m := do(t, h, httptest.NewRequest("GET", "/"+e.boot.TenantID+"/oauth2/v2.0/token?"+form().Encode(), nil))
		oauthFail(t, code, m, 400, "invalid_request", 900561)
	})
	t.Run("fail/json-body", func(t *testing.T) {
		req := httptest.NewRequest("POST", "/"+e.boot.TenantID+"/oauth2/v2.0/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		code, m := do(t, h, req)
		oauthFail(t, code, m, 400, "invalid_request", 900144)
	})
	t.Run("fail/body-too-large", func(t *testing.T) {
		body := form().Encode() + "&pad=" + strings.Repeat("a", maxTokenBody)
		req := httptest.NewRequest("POST", "/"+e.boot.TenantID+"/oauth2/v2.0/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		code, m := do(t, h, req)
		oauthFail(t, code, m, 400, "invalid_request", 900144)
	})
	t.Run("fail/duplicate-secret", func(t *testing.T) {
		f := form()
		f.Add("client_secret", "other")
		code, m := postToken(t, h, e.boot.TenantID, f)
		oauthFail(t, code, m, 400, "invalid_request", 900144)
	})
	t.Run("fail/expired-secret", func(t *testing.T) {
		e.clk.Advance(2 * time.Hour)
		defer e.clk.Set(testStart)
		code, m := postToken(t, h, e.boot.TenantID, form("client_secret", short.SecretText))
		oauthFail(t, code, m, 401, "invalid_client", 7000222)
	})
	t.Run("ok/removed-secret-refused", func(t *testing.T) {
		if err := e.svc.RemovePassword(e.ctx, app.AppID, short.KeyID); err != nil {
			t.Fatal(err)
		}
		code, m := postToken(t, h, e.boot.TenantID, form("client_secret", short.SecretText))
		oauthFail(t, code, m, 401, "invalid_client", 7000215)
	})
	t.Run("ok/secret-stored-hashed", func(t *testing.T) {
		recs, err := e.st.List(e.ctx, "identity/", storeListAll)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if strings.Contains(string(r.Value), cred.SecretText) {
				t.Fatalf("secret stored in the clear under %s", r.Key)
			}
		}
	})
}

func TestClientCredentialsCertificate(t *testing.T) {
	e := newEnv(t)
	h := e.svc.Handler()
	app, sp := e.app("cert-app")
	cert := newTestCert(t, testStart.Add(30*24*time.Hour))
	kc, err := e.svc.AddCertificate(e.ctx, app.AppID, cert.pem, "")
	if err != nil {
		t.Fatal(err)
	}
	if kc.Thumbprint != cert.x5t || kc.DisplayName != "test-client" {
		t.Fatalf("key credential = %+v", kc)
	}
	unregistered := newTestCert(t, testStart.Add(30*24*time.Hour))
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	tid := e.boot.TenantID
	aud := testBase + "/" + tid + "/oauth2/v2.0/token"
	now := testStart
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {app.AppID}, "scope": {"https://vault.localhost:8443/.default"},
			"client_assertion_type": {assertionTypeJWT}, "client_assertion": {a}}
	}
	sum := sha1.Sum(cert.der)
	okCases := []struct {
		name, tenant, assertion string
	}{
		{"ok/x5t", tid, assertion(t, cert.key, cert.x5t, app.AppID, aud, now, 10*time.Minute)},
		{"ok/x5t-standard-base64", tid, assertion(t, cert.key, base64.StdEncoding.EncodeToString(sum[:]), app.AppID, aud, now, 10*time.Minute)},
		{"ok/no-x5t", tid, assertion(t, cert.key, "", app.AppID, aud, now, 10*time.Minute)},
		{"ok/domain-audience", "keyhaven.local", assertion(t, cert.key, cert.x5t, app.AppID, testBase+"/keyhaven.local/oauth2/v2.0/token", now, 10*time.Minute)},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := postToken(t, h, tc.tenant, form(tc.assertion))
			p := tokenOK(t, e, code, m)
			if p.ObjectID != sp.ObjectID {
				t.Fatalf("principal = %+v", p)
			}
			if c := claimsOf(t, m["access_token"].(string)); c["azpacr"] != "2" {
				t.Errorf("azpacr = %v", c["azpacr"])
			}
		})
	}
	failCases := []struct {
		name, assertion string
		status          int
		err             string
		aadsts          int
	}{
		{"fail/wrong-key-with-registered-x5t", assertion(t, otherKey, cert.x5t, app.AppID, aud, now, 10*time.Minute), 401, "invalid_client", 700027},
		{"fail/unregistered-certificate", assertion(t, unregistered.key, unregistered.x5t, app.AppID, aud, now, 10*time.Minute), 401, "invalid_client", 700027},
		{"fail/expired-assertion", assertion(t, cert.key, cert.x5t, app.AppID, aud, now.Add(-time.Hour), 10*time.Minute), 401, "invalid_client", 700024},
		{"fail/future-assertion", assertion(t, cert.key, cert.x5t, app.AppID, aud, now.Add(time.Hour), 10*time.Minute), 401, "invalid_client", 700024},
		{"fail/wrong-audience", assertion(t, cert.key, cert.x5t, app.AppID, "https://login.microsoftonline.com/"+tid+"/oauth2/v2.0/token", now, 10*time.Minute), 401, "invalid_client", 700027},
		{"fail/issuer-not-client", assertion(t, cert.key, cert.x5t, newGUID(), aud, now, 10*time.Minute), 401, "invalid_client", 700021},
		{"fail/malformed", "eyJhbGciOiJub25lIn0.e30.", 401, "invalid_client", 50027},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := postToken(t, h, tid, form(tc.assertion))
			oauthFail(t, code, m, tc.status, tc.err, tc.aadsts)
		})
	}
	t.Run("fail/wrong-assertion-type", func(t *testing.T) {
		f := form(assertion(t, cert.key, cert.x5t, app.AppID, aud, now, 10*time.Minute))
		f.Set("client_assertion_type", "urn:other")
		code, m := postToken(t, h, tid, f)
		oauthFail(t, code, m, 400, "invalid_request", 900144)
	})
	t.Run("fail/expired-certificate", func(t *testing.T) {
		e.clk.Advance(31 * 24 * time.Hour)
		defer e.clk.Set(testStart)
		a := assertion(t, cert.key, cert.x5t, app.AppID, aud, e.clk.Now(), 10*time.Minute)
		code, m := postToken(t, h, tid, form(a))
		oauthFail(t, code, m, 401, "invalid_client", 700027)
	})
	t.Run("fail/add-invalid-certificates", func(t *testing.T) {
		for name, pemBytes := range map[string][]byte{
			"garbage": []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
			"empty":   nil,
			"twice":   append(append([]byte{}, cert.pem...), cert.pem...),
			"huge":    make([]byte, maxCertPEM+1),
		} {
			if _, err := e.svc.AddCertificate(e.ctx, app.AppID, pemBytes, ""); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		if _, err := e.svc.AddCertificate(e.ctx, app.AppID, cert.pem, ""); err == nil {
			t.Error("duplicate certificate accepted")
		}
	})
}

func TestPasswordAndRefreshGrants(t *testing.T) {
	e := newEnv(t)
	h := e.svc.Handler()
	const azCLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	u := e.user("frank@keyhaven.local", "correct horse battery")
	other, _ := e.svc.CreateTenant(e.ctx, "other.example", "other")
	scope := testBase + "/.default offline_access openid profile"
	pw := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"password"}, "client_id": {azCLI}, "username": {"frank@keyhaven.local"},
			"password": {"correct horse battery"}, "scope": {scope}, "client_info": {"1"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	var rt string
	t.Run("ok/password", func(t *testing.T) {
		code, m := postToken(t, h, "organizations", pw())
		p := tokenOK(t, e, code, m)
		if p.ObjectID != u.ObjectID || p.Kind != principal.User || p.UPN != u.UserPrincipalName || p.AppID != azCLI || p.Audience != testBase || p.Platform {
			t.Fatalf("principal = %+v", p)
		}
		rt, _ = m["refresh_token"].(string)
		if rt == "" {
			t.Fatal("no refresh token despite offline_access")
		}
		idt, _ := m["id_token"].(string)
		ic := claimsOf(t, idt)
		if ic["aud"] != azCLI || ic["oid"] != u.ObjectID || ic["preferred_username"] != u.UserPrincipalName || ic["iss"] != e.svc.Issuer(e.boot.TenantID) {
			t.Errorf("id token claims = %v", ic)
		}
		ci, _ := base64.RawURLEncoding.DecodeString(m["client_info"].(string))
		var info map[string]string
		if json.Unmarshal(ci, &info) != nil || info["uid"] != u.ObjectID || info["utid"] != e.boot.TenantID {
			t.Errorf("client_info = %s", ci)
		}
		if c := claimsOf(t, m["access_token"].(string)); c["scp"] != "user_impersonation" || c["azpacr"] != "0" {
			t.Errorf("claims = %v", c)
		}
	})
	t.Run("ok/password-uppercase-upn-tenant-path", func(t *testing.T) {
		code, m := postToken(t, h, e.boot.TenantID, pw("username", "FRANK@keyhaven.local", "scope", "https://vault.localhost:8443/.default"))
		tokenOK(t, e, code, m)
		if _, ok := m["refresh_token"]; ok {
			t.Error("refresh token without offline_access")
		}
	})
	failPW := []struct {
		name, tenant string
		f            url.Values
		status       int
		err          string
		aadsts       int
	}{
		{"fail/wrong-password", "organizations", pw("password", "wrong horse battery"), 400, "invalid_grant", 50126},
		{"fail/unknown-user", "organizations", pw("username", "nobody@keyhaven.local"), 400, "invalid_grant", 50126},
		{"fail/user-of-other-tenant-path", other.ID, pw(), 400, "invalid_grant", 50126},
		{"fail/missing-password", "organizations", pw("password", ""), 400, "invalid_request", 900144},
		{"fail/missing-client-id", "organizations", pw("client_id", ""), 400, "invalid_request", 900144},
	}
	for _, tc := range failPW {
		t.Run(tc.name, func(t *testing.T) {
			code, m := postToken(t, h, tc.tenant, tc.f)
			oauthFail(t, code, m, tc.status, tc.err, tc.aadsts)
		})
	}
	refresh := func(tok, client string) (int, map[string]any) {
		return postToken(t, h, "organizations", url.Values{"grant_type": {"refresh_token"}, "client_id": {client},
			"refresh_token": {tok}, "scope": {"https://vault.localhost:8443/.default offline_access"}})
	}
	t.Run("ok/refresh-rotates", func(t *testing.T) {
		code, m := refresh(rt, azCLI)
		p := tokenOK(t, e, code, m)
		if p.ObjectID != u.ObjectID || p.Audience != "https://vault.localhost:8443" {
			t.Fatalf("principal = %+v", p)
		}
		next, _ := m["refresh_token"].(string)
		if next == "" || next == rt {
			t.Fatal("refresh token not rotated")
		}
		code, m = refresh(rt, azCLI)
		oauthFail(t, code, m, 400, "invalid_grant", 70000) // the old one is spent
		rt = next
	})
	t.Run("fail/refresh-other-client", func(t *testing.T) {
		code, m := refresh(rt, newGUID())
		oauthFail(t, code, m, 400, "invalid_grant", 70000)
	})
	t.Run("fail/refresh-garbage", func(t *testing.T) {
		code, m := refresh("garbage", azCLI)
		oauthFail(t, code, m, 400, "invalid_grant", 70000)
	})
	t.Run("fail/refresh-expired", func(t *testing.T) {
		code, m := postToken(t, h, "organizations", pw())
		tokenOK(t, e, code, m)
		old := m["refresh_token"].(string)
		e.clk.Advance(15 * 24 * time.Hour)
		defer e.clk.Set(testStart)
		code, m = refresh(old, azCLI)
		oauthFail(t, code, m, 400, "invalid_grant", 700082)
		if err := e.svc.Sweep(e.ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/disabled-user", func(t *testing.T) {
		code, m := postToken(t, h, "organizations", pw())
		tokenOK(t, e, code, m)
		if err := e.svc.SetPrincipalEnabled(e.ctx, u.ObjectID, false); err != nil {
			t.Fatal(err)
		}
		defer e.svc.SetPrincipalEnabled(e.ctx, u.ObjectID, true)
		code2, m2 := refresh(m["refresh_token"].(string), azCLI)
		oauthFail(t, code2, m2, 400, "invalid_grant", 50057)
		code3, m3 := postToken(t, h, "organizations", pw())
		oauthFail(t, code3, m3, 400, "invalid_grant", 50057)
	})
	t.Run("fail/deleted-user-refresh", func(t *testing.T) {
		g := e.user("gina@keyhaven.local", "correct horse battery")
		code, m := postToken(t, h, "organizations", pw("username", g.UserPrincipalName))
		tokenOK(t, e, code, m)
		if err := e.svc.DeleteUser(e.ctx, g.ObjectID); err != nil {
			t.Fatal(err)
		}
		code, m = refresh(m["refresh_token"].(string), azCLI)
		oauthFail(t, code, m, 400, "invalid_grant", 70000)
	})
}

func TestPasswordGrantBusyIs429(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxConcurrentPasswordChecks = 1 })
	e.svc.pwSem <- struct{}{} // occupy the only slot
	defer func() { <-e.svc.pwSem }()
	code, m := postToken(t, e.svc.Handler(), "organizations", url.Values{"grant_type": {"password"}, "client_id": {newGUID()},
		"username": {"admin@keyhaven.local"}, "password": {"whatever-password"}, "scope": {testBase + "/.default"}})
	oauthFail(t, code, m, http.StatusTooManyRequests, "temporarily_unavailable", 90033)
}

func TestMSALHelpers(t *testing.T) {
	e := newEnv(t)
	h := e.svc.Handler()
	code, m := do(t, h, httptest.NewRequest("GET", "/common/UserRealm/admin@keyhaven.local?api-version=1.0", nil))
	if code != 200 || m["account_type"] != "Managed" || m["domain_name"] != "keyhaven.local" || m["cloud_audience_urn"] == "" {
		t.Fatalf("userrealm = %d %v", code, m)
	}
	code, m = do(t, h, httptest.NewRequest("GET", "/common/discovery/instance?api-version=1.1&authorization_endpoint="+
		url.QueryEscape(testBase+"/organizations/oauth2/v2.0/authorize"), nil))
	if code != 200 || m["tenant_discovery_endpoint"] != testBase+"/organizations/v2.0/.well-known/openid-configuration" {
		t.Fatalf("instance discovery = %d %v", code, m)
	}
	code, m = do(t, h, httptest.NewRequest("GET", "/organizations/oauth2/v2.0/authorize", nil))
	if code != 400 || m["error"] != "unsupported_response_type" {
		t.Fatalf("authorize = %d %v", code, m)
	}
}

func TestUnknownPathIsJSON404(t *testing.T) {
	e := newEnv(t)
	code, m := do(t, e.svc.Handler(), httptest.NewRequest("GET", "/nothing/here", nil))
	if inner, _ := m["error"].(map[string]any); code != 404 || inner["code"] != "NotFound" {
		t.Fatalf("%d %v", code, m)
	}
}
