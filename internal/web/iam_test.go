package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

const (
	identityPath = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
	miOperator   = "f1a07417-d97a-45cb-824c-7a7467783830"
	platformOID  = "9a0c2f52-3c55-4a5f-9f1e-2f4f6c1f0001"
)

// TestAddRoleAssignment: the identity page's Add role assignment form names
// the member by display name, application id, user principal name or
// object id, and PUTs a role assignment at the resource with the user's
// token; a member the directory cannot name, a bad role or a refusal by the
// API is said on the page, and nothing is assigned.
func TestAddRoleAssignment(t *testing.T) {
	h := newHarness(t)
	fixtures(h)
	a := h.api
	a.json("GET", identityPath, 200, map[string]any{"id": identityPath, "name": "uai1", "location": "local",
		"properties": map[string]any{"principalId": "uai-oid", "clientId": "uai-client", "tenantId": "tenant-1"}})
	a.json("GET", identityPath+"/providers/Microsoft.Authorization/roleAssignments", 200, map[string]any{"value": []any{}})
	a.json("GET", identityPath+"/providers/Microsoft.Authorization/roleDefinitions", 200, map[string]any{"value": []any{
		map[string]any{"name": miOperator, "properties": map[string]any{"roleName": "Managed Identity Operator"}},
		map[string]any{"name": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "properties": map[string]any{"roleName": "Reader"}}}})
	a.json("GET", "/v1.0/servicePrincipals/"+platformOID, 200, map[string]any{"id": platformOID, "displayName": "keyhaven-platform"})
	sp := map[string]any{"id": platformOID, "displayName": "keyhaven-platform", "appId": "platform-app"}
	twin := map[string]any{"id": "other-oid", "displayName": "twin"}
	a.mu.Lock()
	a.routes["GET /v1.0/servicePrincipals"] = func(w http.ResponseWriter, r *http.Request) {
		var v []any
		switch r.URL.Query().Get("$filter") {
		case "displayName eq 'keyhaven-platform'", "appId eq 'platform-app'":
			v = []any{sp}
		case "displayName eq 'twin'":
			v = []any{twin, twin}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"value": v})
	}
	a.routes["GET /v1.0/users"] = func(w http.ResponseWriter, r *http.Request) {
		var v []any
		if r.URL.Query().Get("$filter") == "userPrincipalName eq 'ops@keyhaven.local'" {
			v = []any{map[string]any{"id": "user-oid", "userPrincipalName": testUser}}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"value": v})
	}
	var mu sync.Mutex
	var puts []map[string]map[string]string
	refuse := false
	a.prefixes = map[string]func(http.ResponseWriter, *http.Request){
		"PUT " + identityPath + "/providers/Microsoft.Authorization/roleAssignments/": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if refuse {
				w.WriteHeader(403)
				_, _ = io.WriteString(w, `{"error":{"code":"AuthorizationFailed","message":"no roleAssignments/write here"}}`)
				return
			}
			var b map[string]map[string]string
			_ = json.NewDecoder(r.Body).Decode(&b)
			mu.Lock()
			puts = append(puts, b)
			mu.Unlock()
			w.WriteHeader(201)
			_, _ = io.WriteString(w, `{}`)
		},
	}
	a.mu.Unlock()

	sc, _ := h.signIn()
	page := h.do("GET", "/portal/identities/"+testSub+"/rg1/uai1", nil, sc)
	body := page.Body.String()
	for _, want := range []string{"uai-oid", `id="add-role-assignment"`, `<option value="` + miOperator + `">Managed Identity Operator</option>`, "No role assignments."} {
		if page.Code != 200 || !strings.Contains(body, want) {
			t.Fatalf("identity page %d lacks %q:\n%s", page.Code, want, body)
		}
	}
	csrf := csrfOf(t, body)
	action := "/portal/identities/" + testSub + "/rg1/uai1/roleassignments"
	tests := []struct {
		name, role, member string
		refuse             bool
		status             int    // of the POST
		flash              string // on the page after the redirect
		oid, ptype         string // of the PUT; "" for none
	}{
		{"ok/display-name", miOperator, "keyhaven-platform", false, 303, "Role assignment added for keyhaven-platform.", platformOID, "ServicePrincipal"},
		{"ok/application-id", miOperator, "platform-app", false, 303, "Role assignment added for keyhaven-platform.", platformOID, "ServicePrincipal"},
		{"ok/object-id", miOperator, platformOID, false, 303, "Role assignment added for keyhaven-platform.", platformOID, "ServicePrincipal"},
		{"ok/user", "acdd72a7-3385-48ef-bd42-f606fba81ae7", testUser, false, 303, "Role assignment added for " + testUser + ".", "user-oid", "User"},
		{"fail/unknown-member", miOperator, "nobody", false, 303, "no service principal, managed identity or user nobody in the directory", "", ""},
		{"fail/ambiguous-member", miOperator, "twin", false, 303, "several service principals are named twin", "", ""},
		{"fail/quote-in-member", miOperator, "x' or '1", false, 303, "name the member by object ID", "", ""},
		{"fail/refused", miOperator, "keyhaven-platform", true, 303, "Add role assignment was refused: no roleAssignments/write here", "", ""},
		{"fail/no-role", "", "keyhaven-platform", false, 400, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			puts, refuse = nil, tc.refuse
			mu.Unlock()
			w := h.do("POST", action, url.Values{"csrf": {csrf}, "role": {tc.role}, "member": {tc.member}}, sc)
			if w.Code != tc.status {
				t.Fatalf("POST: %d, want %d\n%s", w.Code, tc.status, w.Body)
			}
			mu.Lock()
			got := puts
			mu.Unlock()
			if tc.oid == "" {
				if len(got) != 0 {
					t.Fatalf("assigned %v", got)
				}
			} else {
				want := "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + tc.role
				if len(got) != 1 || got[0]["properties"]["principalId"] != tc.oid || got[0]["properties"]["principalType"] != tc.ptype ||
					got[0]["properties"]["roleDefinitionId"] != want {
					t.Fatalf("PUT bodies %v, want principal %s (%s) role %s", got, tc.oid, tc.ptype, want)
				}
			}
			if tc.status != 303 {
				return
			}
			if loc := w.Header().Get("Location"); loc != "/portal/identities/"+testSub+"/rg1/uai1#access-control" {
				t.Fatalf("redirect to %q", loc)
			}
			if after := h.do("GET", "/portal/identities/"+testSub+"/rg1/uai1", nil, sc).Body.String(); !strings.Contains(after, tc.flash) {
				t.Fatalf("page after the form lacks %q", tc.flash)
			}
		})
	}
	// Without the form's token nothing is sent.
	mu.Lock()
	puts = nil
	mu.Unlock()
	if w := h.do("POST", action, url.Values{"role": {miOperator}, "member": {"keyhaven-platform"}}, sc); w.Code != 403 || len(puts) != 0 {
		t.Fatalf("POST without CSRF: %d, %d assignments", w.Code, len(puts))
	}
}
