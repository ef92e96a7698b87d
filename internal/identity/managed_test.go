package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

const (
	clusterID = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.NetworkCloud/clusters/c1"
	uai1ID    = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
	uai2ID    = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai2"
)

func TestSetResourceIdentityTransitions(t *testing.T) {
	e := newEnv(t)
	u1, err := e.svc.CreateUserAssigned(e.ctx, "", uai1ID)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := e.svc.CreateUserAssigned(e.ctx, "", uai2ID)
	if err != nil {
		t.Fatal(err)
	}
	tid := e.boot.TenantID
	var sysPID string
	steps := []struct {
		name string
		spec IdentitySpec
		// want renders the expected JSON given the system principal id.
		want func(sys string) string
	}{
		{"ok/none", IdentitySpec{Type: "None"}, func(string) string { return `{"type":"None"}` }},
		{"ok/system", IdentitySpec{Type: "systemassigned"}, func(sys string) string {
			return `{"type":"SystemAssigned","principalId":"` + sys + `","tenantId":"` + tid + `"}`
		}},
		{"ok/system-and-user", IdentitySpec{Type: "SystemAssigned,UserAssigned", UserAssigned: []string{strings.ToLower(uai1ID)}}, func(sys string) string {
			return `{"type":"SystemAssigned, UserAssigned","principalId":"` + sys + `","tenantId":"` + tid +
				`","userAssignedIdentities":{"` + uai1ID + `":{"clientId":"` + u1.ClientID + `","principalId":"` + u1.PrincipalID + `"}}}`
		}},
		{"ok/user-only", IdentitySpec{Type: "UserAssigned", UserAssigned: []string{uai1ID, uai2ID, uai1ID}}, func(string) string {
			return `{"type":"UserAssigned","userAssignedIdentities":{"` + uai1ID + `":{"clientId":"` + u1.ClientID + `","principalId":"` + u1.PrincipalID +
				`"},"` + uai2ID + `":{"clientId":"` + u2.ClientID + `","principalId":"` + u2.PrincipalID + `"}}}`
		}},
		{"ok/back-to-none", IdentitySpec{Type: ""}, func(string) string { return `{"type":"None"}` }},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			b, err := e.svc.SetResourceIdentity(e.ctx, tid, clusterID, st.spec)
			if err != nil {
				t.Fatal(err)
			}
			if b.PrincipalID != "" {
				if sysPID != "" && b.PrincipalID != sysPID {
					t.Error("system-assigned identity was recreated while kept")
				}
				sysPID = b.PrincipalID
			} else {
				sysPID = ""
			}
			got, _ := json.Marshal(b)
			if want := st.want(sysPID); string(got) != want {
				t.Fatalf("block = %s\nwant    %s", got, want)
			}
			// GetResourceIdentity renders the same, case-insensitively.
			again, err := e.svc.GetResourceIdentity(e.ctx, strings.ToUpper(clusterID))
			if err != nil {
				t.Fatal(err)
			}
			if g2, _ := json.Marshal(again); string(g2) != string(got) {
				t.Fatalf("GetResourceIdentity = %s, want %s", g2, got)
			}
		})
	}
	t.Run("ok/system-identity-deleted-with-none", func(t *testing.T) {
		b, _ := e.svc.SetResourceIdentity(e.ctx, tid, clusterID, IdentitySpec{Type: "SystemAssigned"})
		if _, err := e.svc.LookupPrincipal(e.ctx, b.PrincipalID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.SetResourceIdentity(e.ctx, tid, clusterID, IdentitySpec{Type: "None"}); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.LookupPrincipal(e.ctx, b.PrincipalID)
		wantAzErr(t, err, 404, "Request_ResourceNotFound")
	})
	missing := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ghost"
	fails := []struct {
		name string
		spec IdentitySpec
		code string
	}{
		{"fail/missing-uai", IdentitySpec{Type: "UserAssigned", UserAssigned: []string{uai1ID, missing}}, "InvalidUserAssignedIdentity"},
		{"fail/not-a-uai-id", IdentitySpec{Type: "UserAssigned", UserAssigned: []string{clusterID}}, "InvalidResourceId"},
		{"fail/bad-type", IdentitySpec{Type: "Magic"}, "InvalidIdentityType"},
		{"fail/user-list-without-type", IdentitySpec{Type: "SystemAssigned", UserAssigned: []string{uai1ID}}, "InvalidIdentityType"},
		{"fail/user-type-without-list", IdentitySpec{Type: "UserAssigned"}, "InvalidIdentityType"},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.SetResourceIdentity(e.ctx, tid, clusterID, tc.spec)
			wantAzErr(t, err, 400, tc.code)
			if tc.name == "fail/missing-uai" && !strings.Contains(err.Error(), "ghost") {
				t.Errorf("error does not name the missing identity: %v", err)
			}
		})
	}
	t.Run("fail/uai-of-other-tenant", func(t *testing.T) {
		other, _ := e.svc.CreateTenant(e.ctx, "other.example", "other")
		id := "/subscriptions/s2/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/foreign"
		if _, err := e.svc.CreateUserAssigned(e.ctx, other.ID, id); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.SetResourceIdentity(e.ctx, tid, clusterID, IdentitySpec{Type: "UserAssigned", UserAssigned: []string{id}})
		wantAzErr(t, err, 400, "InvalidUserAssignedIdentity")
	})
	t.Run("ok/remove-resource", func(t *testing.T) {
		b, _ := e.svc.SetResourceIdentity(e.ctx, tid, clusterID, IdentitySpec{Type: "SystemAssigned, UserAssigned", UserAssigned: []string{uai1ID}})
		if err := e.svc.RemoveResource(e.ctx, clusterID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.LookupPrincipal(e.ctx, b.PrincipalID); err == nil {
			t.Error("system identity survived its resource")
		}
		if _, err := e.svc.GetUserAssigned(e.ctx, uai1ID); err != nil {
			t.Errorf("user-assigned identity must survive: %v", err)
		}
		got, _ := e.svc.GetResourceIdentity(e.ctx, clusterID)
		if got.Type != IdentityNone {
			t.Errorf("after RemoveResource: %+v", got)
		}
	})
}

func TestUserAssignedLifecycle(t *testing.T) {
	e := newEnv(t)
	a, err := e.svc.CreateUserAssigned(e.ctx, "", uai1ID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.CreateUserAssigned(e.ctx, "", strings.ToUpper(uai1ID))
	if err != nil || again.PrincipalID != a.PrincipalID {
		t.Fatalf("PUT is not idempotent: %v %+v", err, again)
	}
	if a.Name != "uai1" || a.TenantID != e.boot.TenantID || a.SystemAssigned || a.ResourceID != uai1ID {
		t.Fatalf("identity = %+v", a)
	}
	rg10 := "/subscriptions/s1/resourceGroups/rg10/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x"
	if _, err := e.svc.CreateUserAssigned(e.ctx, "", rg10); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		scope string
		n     int
	}{{"", 2}, {"/subscriptions/s1", 2}, {"/subscriptions/S1/resourceGroups/RG1", 1}, {"/subscriptions/s1/resourceGroups/rg10", 1}, {"/subscriptions/s2", 0}} {
		got, err := e.svc.ListUserAssigned(e.ctx, tc.scope)
		if err != nil || len(got) != tc.n {
			t.Errorf("ListUserAssigned(%q) = %d, %v; want %d", tc.scope, len(got), err, tc.n)
		}
	}
	sp, err := e.svc.GetServicePrincipal(e.ctx, a.ClientID)
	if err != nil || sp.Kind != principal.ManagedIdentity || sp.ObjectID != a.PrincipalID {
		t.Fatalf("GetServicePrincipal(clientId) = %+v, %v", sp, err)
	}
	tok, _, err := e.svc.IssueToken(e.ctx, a.PrincipalID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteUserAssigned(e.ctx, uai1ID); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Verify(e.ctx, tok)
	wantAzErr(t, err, 401, CodeInvalidToken)
	_, err = e.svc.GetUserAssigned(e.ctx, uai1ID)
	wantAzErr(t, err, 404, "ResourceNotFound")
	err = e.svc.DeleteUserAssigned(e.ctx, uai1ID)
	wantAzErr(t, err, 404, "ResourceNotFound")
	_, err = e.svc.CreateUserAssigned(e.ctx, "", clusterID)
	wantAzErr(t, err, 400, "InvalidResourceId")
}

func TestManagedIdentityEndpoint(t *testing.T) {
	e := newEnv(t)
	u1, _ := e.svc.CreateUserAssigned(e.ctx, "", uai1ID)
	u2, _ := e.svc.CreateUserAssigned(e.ctx, "", uai2ID) // exists but is NOT attached
	block, err := e.svc.SetResourceIdentity(e.ctx, "", clusterID, IdentitySpec{Type: "SystemAssigned, UserAssigned", UserAssigned: []string{uai1ID}})
	if err != nil {
		t.Fatal(err)
	}
	sys, err := e.svc.LookupPrincipal(e.ctx, block.PrincipalID)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := e.svc.IssueWorkloadSecret(e.ctx, clusterID)
	if err != nil {
		t.Fatal(err)
	}
	// A second resource with only user-assigned identities.
	otherRes := "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.NetworkCloud/clusters/c2"
	if _, err := e.svc.SetResourceIdentity(e.ctx, "", otherRes, IdentitySpec{Type: "UserAssigned", UserAssigned: []string{uai2ID}}); err != nil {
		t.Fatal(err)
	}
	otherSecret, _ := e.svc.IssueWorkloadSecret(e.ctx, otherRes)
	h := e.svc.ManagedIdentityHandler()
	get := func(secret string, q url.Values) (int, map[string]any) {
		req := httptest.NewRequest("GET", "/msi/token?"+q.Encode(), nil)
		if secret != "" {
			req.Header.Set("X-IDENTITY-HEADER", secret)
		}
		return do(t, h, req)
	}
	const resource = "https://vault.localhost:8443"
	q := func(kv ...string) url.Values {
		v := url.Values{"api-version": {"2019-08-01"}, "resource": {resource}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	okCases := []struct {
		name, secret string
		q            url.Values
		oid, client  string
		mirid        string
	}{
		{"ok/system-default", secret, q(), sys.ObjectID, sys.AppID, clusterID},
		{"ok/system-by-client-id", secret, q("client_id", sys.AppID), sys.ObjectID, sys.AppID, clusterID},
		{"ok/uai-by-client-id", secret, q("client_id", u1.ClientID), u1.PrincipalID, u1.ClientID, uai1ID},
		{"ok/uai-by-mi-res-id", secret, q("mi_res_id", strings.ToLower(uai1ID)), u1.PrincipalID, u1.ClientID, uai1ID},
		{"ok/uai-by-object-id", secret, q("object_id", u1.PrincipalID), u1.PrincipalID, u1.ClientID, uai1ID},
		{"ok/uai-by-principal-id", secret, q("principal_id", u1.PrincipalID), u1.PrincipalID, u1.ClientID, uai1ID},
		{"ok/other-resource-own-uai", otherSecret, q("client_id", u2.ClientID), u2.PrincipalID, u2.ClientID, uai2ID},
	}
	for _, tc := range okCases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := get(tc.secret, tc.q)
			if code != 200 {
				t.Fatalf("status %d: %v", code, m)
			}
			if len(m) != 5 || m["token_type"] != "Bearer" || m["resource"] != resource || m["client_id"] != tc.client {
				t.Fatalf("body = %v", m)
			}
			exp, err := strconv.ParseInt(m["expires_on"].(string), 10, 64)
			if err != nil || exp != testStart.Add(time.Hour).Unix() {
				t.Fatalf("expires_on = %v", m["expires_on"])
			}
			p := e.mustVerify(m["access_token"].(string))
			if p.ObjectID != tc.oid || p.Kind != principal.ManagedIdentity || p.MIResourceID != tc.mirid || p.AppID != tc.client || p.Audience != resource {
				t.Fatalf("principal = %+v", p)
			}
		})
	}
	failCases := []struct {
		name, secret string
		q            url.Values
		status       int
	}{
		{"fail/unattached-uai-by-client-id", secret, q("client_id", u2.ClientID), 403},
		{"fail/unattached-uai-by-res-id", secret, q("mi_res_id", uai2ID), 403},
		{"fail/other-resources-system-identity", otherSecret, q("object_id", sys.ObjectID), 403},
		{"fail/no-system-identity-default", otherSecret, q(), 400},
		{"fail/wrong-secret", secret[:len(secret)-2] + "xx", q(), 401},
		{"fail/no-secret", "", q(), 401},
		{"fail/two-selectors", secret, q("client_id", u1.ClientID, "object_id", u1.PrincipalID), 400},
		{"fail/no-resource", secret, url.Values{"api-version": {"2019-08-01"}}, 400},
		{"fail/no-api-version", secret, url.Values{"resource": {resource}}, 400},
	}
	for _, tc := range failCases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := get(tc.secret, tc.q)
			if code != tc.status {
				t.Fatalf("status %d, want %d: %v", code, tc.status, m)
			}
			if _, ok := m["access_token"]; ok {
				t.Fatal("token issued")
			}
		})
	}
	t.Run("fail/revoked-secret", func(t *testing.T) {
		if err := e.svc.RevokeWorkloadSecret(e.ctx, clusterID); err != nil {
			t.Fatal(err)
		}
		code, _ := get(secret, q())
		if code != http.StatusUnauthorized {
			t.Fatalf("status %d", code)
		}
	})
	t.Run("fail/reissued-secret-replaces-old", func(t *testing.T) {
		s1, _ := e.svc.IssueWorkloadSecret(e.ctx, clusterID)
		s2, _ := e.svc.IssueWorkloadSecret(e.ctx, clusterID)
		if code, _ := get(s1, q()); code != 401 {
			t.Errorf("old secret status %d", code)
		}
		if code, _ := get(s2, q()); code != 200 {
			t.Errorf("new secret status %d", code)
		}
	})
}
