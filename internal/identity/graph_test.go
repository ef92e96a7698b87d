package identity

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestGraphAPI(t *testing.T) {
	e := newEnv(t)
	h := e.svc.GraphHandler(allowObjects{e.boot.AdminObjectID: true})
	as := func(oid, aud string) *principal.Principal {
		tok, _, err := e.svc.IssueToken(e.ctx, oid, aud)
		if err != nil {
			t.Fatal(err)
		}
		return e.mustVerify(tok)
	}
	admin := as(e.boot.AdminObjectID, testBase)
	call := func(p *principal.Principal, method, path, body string) (int, map[string]any) {
		t.Helper()
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req := httptest.NewRequest(method, path, r)
		req = req.WithContext(principal.WithInfo(req.Context(), &principal.Info{Principal: p}))
		return do(t, h, req)
	}
	graphErr := func(t *testing.T, code int, m map[string]any, status int, errCode string) {
		t.Helper()
		inner, _ := m["error"].(map[string]any)
		if code != status || inner["code"] != errCode || inner["message"] == "" {
			t.Fatalf("got %d %v, want %d %s", code, m, status, errCode)
		}
	}

	var userID string
	t.Run("ok/create-user", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/users", `{"accountEnabled":true,"displayName":"Hank","mailNickname":"hank",
			"userPrincipalName":"hank@keyhaven.local","passwordProfile":{"forceChangePasswordNextSignIn":false,"password":"correct horse battery"}}`)
		if code != 201 || m["userPrincipalName"] != "hank@keyhaven.local" || m["displayName"] != "Hank" || m["accountEnabled"] != true {
			t.Fatalf("%d %v", code, m)
		}
		userID = m["id"].(string)
		if _, ok := m["passwordProfile"]; ok {
			t.Fatal("password echoed")
		}
	})
	t.Run("ok/list-and-get-user", func(t *testing.T) {
		code, m := call(admin, "GET", "/v1.0/users?$filter="+url.QueryEscape("userPrincipalName eq 'hank@keyhaven.local'"), "")
		vals, _ := m["value"].([]any)
		if code != 200 || len(vals) != 1 || m["@odata.context"] == nil {
			t.Fatalf("%d %v", code, m)
		}
		code, m = call(admin, "GET", "/v1.0/users/hank@keyhaven.local", "")
		if code != 200 || m["id"] != userID {
			t.Fatalf("%d %v", code, m)
		}
		code, m = call(admin, "GET", "/v1.0/users", "")
		if vals, _ := m["value"].([]any); code != 200 || len(vals) != 2 {
			t.Fatalf("list all users: %d %v", code, m)
		}
	})
	t.Run("fail/duplicate-user", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/users", `{"displayName":"Hank","userPrincipalName":"HANK@keyhaven.local","passwordProfile":{"password":"correct horse battery"}}`)
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("fail/user-bad-domain", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/users", `{"displayName":"X","userPrincipalName":"x@elsewhere.example","passwordProfile":{"password":"correct horse battery"}}`)
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("fail/user-short-password", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/users", `{"displayName":"X","userPrincipalName":"x@keyhaven.local","passwordProfile":{"password":"short"}}`)
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("fail/non-admin-forbidden", func(t *testing.T) {
		hank := as(userID, testBase)
		code, m := call(hank, "GET", "/v1.0/users", "")
		graphErr(t, code, m, 403, "Authorization_RequestDenied")
	})
	t.Run("fail/unauthenticated", func(t *testing.T) {
		code, m := call(nil, "GET", "/v1.0/users", "")
		graphErr(t, code, m, 401, "InvalidAuthenticationToken")
	})
	t.Run("fail/wrong-audience", func(t *testing.T) {
		code, m := call(as(e.boot.AdminObjectID, "https://vault.localhost:8443"), "GET", "/v1.0/users", "")
		graphErr(t, code, m, 401, "InvalidAuthenticationToken")
	})

	var appObjID, appID, secret string
	t.Run("ok/create-application", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/applications", `{"displayName":"rotator"}`)
		if code != 201 || m["displayName"] != "rotator" || m["appId"] == "" || m["id"] == m["appId"] {
			t.Fatalf("%d %v", code, m)
		}
		appObjID, appID = m["id"].(string), m["appId"].(string)
		if pc, _ := m["passwordCredentials"].([]any); pc == nil || len(pc) != 0 {
			t.Errorf("passwordCredentials = %v", m["passwordCredentials"])
		}
	})
	t.Run("ok/add-password", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/applications/"+appObjID+"/addPassword", `{"passwordCredential":{"displayName":"ci","endDateTime":"2027-11-25T00:00:00Z"}}`)
		if code != 200 || m["keyId"] == "" || m["displayName"] != "ci" || m["endDateTime"] != "2027-11-25T00:00:00Z" {
			t.Fatalf("%d %v", code, m)
		}
		secret, _ = m["secretText"].(string)
		if secret == "" || m["hint"] != secret[:3] {
			t.Fatalf("secretText/hint = %v", m)
		}
		// Shown once: reading the application never returns it.
		code, m = call(admin, "GET", "/v1.0/applications/"+appObjID, "")
		pcs, _ := m["passwordCredentials"].([]any)
		if code != 200 || len(pcs) != 1 || pcs[0].(map[string]any)["secretText"] != nil {
			t.Fatalf("%d %v", code, m)
		}
	})
	t.Run("ok/secret-works-at-token-endpoint", func(t *testing.T) {
		code, m := postToken(t, e.svc.Handler(), e.boot.TenantID, url.Values{"grant_type": {"client_credentials"}, "client_id": {appID},
			"client_secret": {secret}, "scope": {testBase + "/.default"}})
		tokenOK(t, e, code, m)
	})
	t.Run("ok/service-principals", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/servicePrincipals", `{"appId":"`+appID+`"}`)
		if code != 201 || m["appId"] != appID || m["servicePrincipalType"] != "Application" {
			t.Fatalf("%d %v", code, m)
		}
		spID := m["id"].(string)
		code, m = call(admin, "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("appId eq '"+appID+"'"), "")
		vals, _ := m["value"].([]any)
		if code != 200 || len(vals) != 1 || vals[0].(map[string]any)["id"] != spID {
			t.Fatalf("%d %v", code, m)
		}
		code, m = call(admin, "GET", "/v1.0/servicePrincipals/"+appID, "")
		if code != 200 || m["id"] != spID {
			t.Fatalf("by appId: %d %v", code, m)
		}
		code, m = call(admin, "GET", "/v1.0/applications?$filter="+url.QueryEscape("appId eq '"+appID+"'"), "")
		if vals, _ := m["value"].([]any); code != 200 || len(vals) != 1 {
			t.Fatalf("applications filter: %d %v", code, m)
		}
	})
	t.Run("fail/sp-for-unknown-app", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/servicePrincipals", `{"appId":"`+newGUID()+`"}`)
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("fail/unsupported-filter", func(t *testing.T) {
		code, m := call(admin, "GET", "/v1.0/servicePrincipals?$filter="+url.QueryEscape("startswith(displayName,'a')"), "")
		graphErr(t, code, m, 400, "Request_UnsupportedQuery")
	})
	t.Run("fail/bad-json", func(t *testing.T) {
		code, m := call(admin, "POST", "/v1.0/applications", `{"displayName":`)
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("ok/delete-application-and-user", func(t *testing.T) {
		if code, m := call(admin, "DELETE", "/v1.0/applications/"+appObjID, ""); code != http.StatusNoContent {
			t.Fatalf("%d %v", code, m)
		}
		code, m := call(admin, "GET", "/v1.0/applications/"+appObjID, "")
		graphErr(t, code, m, 404, "Request_ResourceNotFound")
		if code, m := call(admin, "DELETE", "/v1.0/users/"+userID, ""); code != http.StatusNoContent {
			t.Fatalf("%d %v", code, m)
		}
		code, m = call(admin, "GET", "/v1.0/users/"+userID, "")
		graphErr(t, code, m, 404, "Request_ResourceNotFound")
	})
	t.Run("fail/delete-self", func(t *testing.T) {
		code, m := call(admin, "DELETE", "/v1.0/users/"+e.boot.AdminObjectID, "")
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("fail/delete-platform-app", func(t *testing.T) {
		code, m := call(admin, "DELETE", "/v1.0/applications/"+e.boot.PlatformAppID, "")
		graphErr(t, code, m, 400, "Request_BadRequest")
	})
	t.Run("fail/other-tenant-objects-hidden", func(t *testing.T) {
		other, _ := e.svc.CreateTenant(e.ctx, "other.example", "other")
		a, _, err := e.svc.CreateApplication(e.ctx, other.ID, "foreign")
		if err != nil {
			t.Fatal(err)
		}
		code, m := call(admin, "GET", "/v1.0/applications/"+a.ObjectID, "")
		graphErr(t, code, m, 404, "Request_ResourceNotFound")
		code, m = call(admin, "POST", "/v1.0/applications/"+a.ObjectID+"/addPassword", `{}`)
		graphErr(t, code, m, 404, "Request_ResourceNotFound")
	})
}
