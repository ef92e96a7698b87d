package cli

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

const (
	userOID  = "44444444-4444-4444-4444-444444444444"
	spOID    = "55555555-5555-5555-5555-555555555555"
	appID    = "66666666-6666-6666-6666-666666666666"
	appOID   = "77777777-7777-7777-7777-777777777777"
	readerID = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
)

// directoryFake serves /v1.0 users and service principals, role
// definitions and role assignments, recording PUT bodies.
func directoryFake(t *testing.T, f *fakeServer, puts *[]map[string]any) {
	sub := "/subscriptions/" + testSub
	defs := map[string]any{"value": []any{
		map[string]any{"id": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerID, "name": readerID,
			"properties": map[string]any{"roleName": "Key Vault Secrets User", "type": "BuiltInRole"}},
		map[string]any{"id": sub + "/providers/Microsoft.Authorization/roleDefinitions/99999999-9999-9999-9999-999999999999", "name": "99999999-9999-9999-9999-999999999999",
			"properties": map[string]any{"roleName": "My Custom", "type": "CustomRole"}},
	}}
	assignments := map[string]any{"value": []any{
		map[string]any{"id": sub + "/providers/Microsoft.Authorization/roleAssignments/a1", "properties": map[string]any{
			"scope": sub, "principalId": userOID, "roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerID}},
		map[string]any{"id": sub + "/resourceGroups/rg1/providers/Microsoft.Authorization/roleAssignments/a2", "properties": map[string]any{
			"scope": sub + "/resourceGroups/rg1", "principalId": spOID, "roleDefinitionId": sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerID}},
		map[string]any{"id": "/providers/Microsoft.Authorization/roleAssignments/a0", "properties": map[string]any{
			"scope": "/", "principalId": userOID, "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/owner"}},
	}}
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		p := r.URL.Path
		switch {
		case p == "/v1.0/users/alice@keyhaven.local" || p == "/v1.0/users/"+userOID:
			writeJSON(w, 200, map[string]any{"id": userOID, "userPrincipalName": "alice@keyhaven.local"})
		case p == "/v1.0/servicePrincipals" && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": spOID, "appId": appID, "displayName": "my-app"}}})
		case p == "/v1.0/servicePrincipals" && r.Method == http.MethodPost:
			writeJSON(w, 201, map[string]any{"id": spOID, "appId": appID})
		case p == "/v1.0/applications" && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"value": []any{}})
		case p == "/v1.0/applications" && r.Method == http.MethodPost:
			writeJSON(w, 201, map[string]any{"id": appOID, "appId": appID, "displayName": "new-app"})
		case p == "/v1.0/applications/"+appOID+"/addPassword":
			writeJSON(w, 200, map[string]any{"secretText": "generated-secret", "keyId": "k1"})
		case strings.HasPrefix(p, "/v1.0/"):
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "Request_ResourceNotFound", "message": "not found"}})
		case strings.HasSuffix(p, "/providers/Microsoft.Authorization/roleDefinitions"):
			writeJSON(w, 200, defs)
		case strings.HasSuffix(p, "/providers/Microsoft.Authorization/roleAssignments") && r.Method == http.MethodGet:
			if r.URL.Query().Get("$filter") != "" {
				writeJSON(w, 400, map[string]any{"error": map[string]any{"code": "InvalidFilter", "message": "no filters"}})
				return
			}
			writeJSON(w, 200, assignments)
		case r.Method == http.MethodPut:
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["_path"] = p
			*puts = append(*puts, m)
			writeJSON(w, 201, map[string]any{"id": p, "properties": m["properties"]})
		case r.Method == http.MethodDelete:
			w.WriteHeader(200)
		default:
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "NotFound", "message": p}})
		}
	}
}

func TestRoleAssignmentCreate(t *testing.T) {
	f := newFakeServer(t)
	var puts []map[string]any
	directoryFake(t, f, &puts)
	h := newHarness(t)
	h.login(f)
	sub := "/subscriptions/" + testSub
	readerDef := sub + "/providers/Microsoft.Authorization/roleDefinitions/" + readerID
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantScope string
		wantProps map[string]any
	}{
		{"ok/upn-and-role-name", []string{"--assignee", "alice@keyhaven.local", "--role", "Key Vault Secrets User", "--scope", sub + "/resourceGroups/rg1"}, 0,
			sub + "/resourceGroups/rg1", map[string]any{"principalId": userOID, "principalType": "User", "roleDefinitionId": readerDef}},
		{"ok/appid-resolves-sp", []string{"--assignee", appID, "--role", readerID, "-g", "rg1"}, 0,
			sub + "/resourceGroups/rg1", map[string]any{"principalId": spOID, "principalType": "ServicePrincipal", "roleDefinitionId": readerDef}},
		{"ok/object-id-no-lookup", []string{"--assignee-object-id", spOID, "--assignee-principal-type", "serviceprincipal", "--role", "key vault secrets user"}, 0,
			sub, map[string]any{"principalId": spOID, "principalType": "ServicePrincipal", "roleDefinitionId": readerDef}},
		{"ok/root-scope", []string{"--assignee-object-id", spOID, "--role", readerID, "--scope", "/"}, 0,
			"", map[string]any{"principalId": spOID, "roleDefinitionId": readerDef}},
		{"fail/unknown-role", []string{"--assignee", "alice@keyhaven.local", "--role", "Nope"}, 1, "", nil},
		{"fail/unknown-assignee", []string{"--assignee", "nobody", "--role", readerID}, 1, "", nil},
		{"fail/bad-scope", []string{"--assignee-object-id", spOID, "--role", readerID, "--scope", "/subscriptions/../x"}, 2, "", nil},
		{"fail/no-assignee", []string{"--role", readerID}, 2, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			puts = nil
			_, errOut, code := h.run(append([]string{"role", "assignment", "create"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if code != 0 {
				if len(puts) != 0 {
					t.Fatalf("a failed create sent %v", puts)
				}
				return
			}
			if len(puts) != 1 {
				t.Fatalf("puts %v", puts)
			}
			path := puts[0]["_path"].(string)
			prefix := tc.wantScope + "/providers/Microsoft.Authorization/roleAssignments/"
			if !strings.HasPrefix(path, prefix) || !isGUID(strings.TrimPrefix(path, prefix)) {
				t.Fatalf("path %q, want %s{guid}", path, prefix)
			}
			if !reflect.DeepEqual(puts[0]["properties"], tc.wantProps) {
				t.Fatalf("properties %v want %v", puts[0]["properties"], tc.wantProps)
			}
		})
	}
}

func TestRoleAssignmentList(t *testing.T) {
	f := newFakeServer(t)
	var puts []map[string]any
	directoryFake(t, f, &puts)
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"ok/subscription-scope-only", nil, "a1\n"},
		{"ok/all", []string{"--all"}, "a1\na2\na0\n"},
		{"ok/inherited-at-group", []string{"-g", "rg1", "--include-inherited"}, "a1\na2\na0\n"},
		{"ok/assignee-filter", []string{"--all", "--assignee", appID}, "a2\n"},
		{"ok/role-filter", []string{"--all", "--role", "Key Vault Secrets User"}, "a1\na2\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := h.mustRun(append([]string{"role", "assignment", "list", "--query", "[].id", "-o", "tsv"}, tc.args...)...)
			var names []string
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				if l != "" {
					names = append(names, lastSegment(l))
				}
			}
			if got := strings.Join(names, "\n") + "\n"; got != tc.want {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
	out := h.mustRun("role", "assignment", "list", "--query", "[0].roleDefinitionName", "-o", "tsv")
	if out != "Key Vault Secrets User\n" {
		t.Fatalf("roleDefinitionName %q", out)
	}
}

func TestCreateForRBAC(t *testing.T) {
	f := newFakeServer(t)
	var puts []map[string]any
	directoryFake(t, f, &puts)
	h := newHarness(t)
	h.login(f)
	out, errOut, code := h.run("ad", "sp", "create-for-rbac", "-n", "new-app", "--role", "Key Vault Secrets User", "--scopes", "/subscriptions/"+testSub)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	got := decodeJSON(t, out).(map[string]any)
	want := map[string]any{"appId": appID, "displayName": "new-app", "password": "generated-secret", "tenant": testTenant}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v want %v", got, want)
	}
	if !strings.Contains(errOut, "WARNING: The output includes credentials") {
		t.Fatalf("missing credentials warning: %q", errOut)
	}
	if len(puts) != 1 || puts[0]["properties"].(map[string]any)["principalId"] != spOID ||
		puts[0]["properties"].(map[string]any)["principalType"] != "ServicePrincipal" {
		t.Fatalf("role assignment puts %v", puts)
	}
	// --only-show-errors drops the warning.
	_, errOut, _ = h.run("ad", "sp", "create-for-rbac", "-n", "new-app", "--only-show-errors")
	if strings.Contains(errOut, "WARNING") {
		t.Fatalf("warning with --only-show-errors: %q", errOut)
	}
}

func TestRoleDefinitionBody(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]any
		wantErr bool
	}{
		{"ok/az-shape", `{"Name":"Reader2","Description":"d","Actions":["a/read"],"DataActions":["x/getSecret/action"],"AssignableScopes":["/subscriptions/s"]}`,
			map[string]any{"properties": map[string]any{"roleName": "Reader2", "description": "d", "type": "CustomRole",
				"assignableScopes": []string{"/subscriptions/s"},
				"permissions":      []any{map[string]any{"actions": []string{"a/read"}, "notActions": []string{}, "dataActions": []string{"x/getSecret/action"}, "notDataActions": []string{}}}}}, false},
		{"ok/lowercase-keys", `{"name":"R","assignableScopes":["/"]}`,
			map[string]any{"properties": map[string]any{"roleName": "R", "description": "", "type": "CustomRole", "assignableScopes": []string{"/"},
				"permissions": []any{map[string]any{"actions": []string{}, "notActions": []string{}, "dataActions": []string{}, "notDataActions": []string{}}}}}, false},
		{"fail/no-name", `{"AssignableScopes":["/"]}`, nil, true},
		{"fail/no-scopes", `{"Name":"R"}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := readJSONArg("--role-definition", tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := roleDefinitionBody(m)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}
