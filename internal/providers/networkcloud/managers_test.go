package networkcloud

import (
	"net/http"
	"strings"
	"testing"
)

func TestClusterManagerIdentity(t *testing.T) {
	e := newEnv(t)
	u1, u2 := e.uai("uai1"), e.uai("uai2")
	tests := []struct {
		name  string
		ident any
		check func(t *testing.T, id map[string]any)
	}{
		{"ok/none", nil, func(t *testing.T, id map[string]any) {
			if id != nil {
				t.Fatalf("identity %v, want none", id)
			}
		}},
		{"ok/system-assigned", map[string]any{"type": "SystemAssigned"}, func(t *testing.T, id map[string]any) {
			if id["type"] != "SystemAssigned" || !isGUIDish(id["principalId"]) || id["tenantId"] != e.Caller.TenantID || id["userAssignedIdentities"] != nil {
				t.Fatalf("identity %v", id)
			}
		}},
		{"ok/user-assigned", map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}}},
			func(t *testing.T, id map[string]any) {
				jsonEqual(t, id, `{"type":"UserAssigned","userAssignedIdentities":{"`+uaiID("uai1")+`":{"clientId":"`+u1.ClientID+`","principalId":"`+u1.PrincipalID+`"}}}`)
			}},
		{"ok/both", map[string]any{"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai2"): map[string]any{}}},
			func(t *testing.T, id map[string]any) {
				if id["type"] != "SystemAssigned,UserAssigned" || !isGUIDish(id["principalId"]) {
					t.Fatalf("identity %v", id)
				}
				uais := id["userAssignedIdentities"].(map[string]any)
				if ref := uais[uaiID("uai2")].(map[string]any); ref["principalId"] != u2.PrincipalID || len(uais) != 1 {
					t.Fatalf("uais %v", uais)
				}
			}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "cm" + string(rune('a'+i))
			m := e.manager(name, tc.ident)
			id, _ := m["identity"].(map[string]any)
			tc.check(t, id)
			got := e.Must("GET", cmPath(name)+v, nil, 200).JSON(t)
			id, _ = got["identity"].(map[string]any)
			tc.check(t, id)
			p := props(got)
			if p["provisioningState"] != "Succeeded" || p["detailedStatus"] != "Available" || p["fabricControllerId"] == "" {
				t.Fatalf("properties %v", p)
			}
			if el := p["managerExtendedLocation"].(map[string]any); el["type"] != "CustomLocation" || !strings.Contains(el["name"].(string), "/customLocations/") {
				t.Fatalf("managerExtendedLocation %v", el)
			}
		})
	}
}

func isGUIDish(v any) bool { s, _ := v.(string); return len(s) == 36 }

// TestClusterManagerPatchReplacesIdentity follows the guide's "add
// identity" updates: a PATCH identity is the whole new set.
func TestClusterManagerPatchReplacesIdentity(t *testing.T) {
	e := newEnv(t)
	e.uai("uai1")
	e.manager("cm1", map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}}})
	steps := []struct {
		name     string
		body     any
		wantType string
		wantUAIs int
		wantSys  bool
	}{
		{"ok/system-replaces-user", map[string]any{"identity": map[string]any{"type": "SystemAssigned"}}, "SystemAssigned", 0, true},
		{"ok/tags-keep-identity", map[string]any{"tags": map[string]any{"k": "v"}}, "SystemAssigned", 0, true},
		{"ok/user-replaces-system", map[string]any{"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): nil}}}, "UserAssigned", 1, false},
		{"ok/both", map[string]any{"identity": map[string]any{"type": "SystemAssigned, UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}}}}, "SystemAssigned,UserAssigned", 1, true},
		{"ok/none", map[string]any{"identity": map[string]any{"type": "None"}}, "", 0, false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			got := e.Must("PATCH", cmPath("cm1")+v, s.body, 200).JSON(t)
			id, _ := got["identity"].(map[string]any)
			if s.wantType == "" {
				if id != nil {
					t.Fatalf("identity %v, want none", id)
				}
				return
			}
			uais, _ := id["userAssignedIdentities"].(map[string]any)
			if id["type"] != s.wantType || len(uais) != s.wantUAIs || (id["principalId"] != nil) != s.wantSys {
				t.Fatalf("identity %v", id)
			}
		})
	}
	if tags := e.Must("GET", cmPath("cm1")+v, nil, 200).JSON(t)["tags"].(map[string]any); tags["k"] != "v" {
		t.Fatalf("tags %v", tags)
	}
}

func TestClusterManagerValidation(t *testing.T) {
	e := newEnv(t)
	fc := "/subscriptions/" + sub1 + "/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/fc1"
	tests := []struct {
		name       string
		path       string
		body       any
		code       string
		target     string
		wantStatus int
	}{
		{"fail/name", cmPath("-bad"), map[string]any{"location": "westeurope", "properties": map[string]any{"fabricControllerId": fc}}, "InvalidResourceName", "name", 400},
		{"fail/name-too-long", cmPath(strings.Repeat("a", 31)), map[string]any{"location": "westeurope", "properties": map[string]any{"fabricControllerId": fc}}, "InvalidResourceName", "name", 400},
		{"fail/no-fabric-controller", cmPath("cm1"), map[string]any{"location": "westeurope", "properties": map[string]any{}}, "InvalidParameter", "properties.fabricControllerId", 400},
		{"fail/fabric-controller-not-id", cmPath("cm1"), map[string]any{"location": "westeurope", "properties": map[string]any{"fabricControllerId": "fc1"}}, "InvalidParameter", "properties.fabricControllerId", 400},
		{"fail/no-location", cmPath("cm1"), map[string]any{"properties": map[string]any{"fabricControllerId": fc}}, "LocationRequired", "location", 400},
		{"fail/workspace-type", cmPath("cm1"), map[string]any{"location": "westeurope", "properties": map[string]any{"fabricControllerId": fc, "analyticsWorkspaceId": fc}}, "InvalidParameter", "properties.analyticsWorkspaceId", 400},
		{"fail/unknown-uai", cmPath("cm1"), map[string]any{"location": "westeurope", "properties": map[string]any{"fabricControllerId": fc},
			"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("nope"): map[string]any{}}}}, "InvalidUserAssignedIdentity", "identity", 400},
		{"fail/identity-type", cmPath("cm1"), map[string]any{"location": "westeurope", "properties": map[string]any{"fabricControllerId": fc},
			"identity": map[string]any{"type": "Mystery"}}, "InvalidIdentityType", "identity", 400},
		{"fail/get-missing", cmPath("nope"), nil, "ResourceNotFound", "", 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodPut
			if tc.body == nil {
				method = http.MethodGet
			}
			r := e.Do(method, tc.path+v, tc.body)
			if r.Code != tc.wantStatus || r.ErrField(t, "code") != tc.code || r.ErrField(t, "target") != tc.target {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	// A failed create leaves nothing behind.
	e.Must("GET", cmPath("cm1")+v, nil, 404)
}

func TestClusterManagerListAndDelete(t *testing.T) {
	e := newEnv(t)
	e.manager("cm1", map[string]any{"type": "SystemAssigned"})
	e.manager("cm2", nil)
	list := e.Must("GET", rgPath("rg1")+"/providers/Microsoft.NetworkCloud/clusterManagers"+v, nil, 200).JSON(t)
	if n := len(list["value"].([]any)); n != 2 {
		t.Fatalf("rg list has %d", n)
	}
	list = e.Must("GET", "/subscriptions/"+sub1+"/providers/Microsoft.NetworkCloud/clusterManagers"+v, nil, 200).JSON(t)
	if n := len(list["value"].([]any)); n != 2 {
		t.Fatalf("sub list has %d", n)
	}
	if n := len(e.Must("GET", rgPath("rg2")+"/providers/Microsoft.NetworkCloud/clusterManagers"+v, nil, 200).JSON(t)["value"].([]any)); n != 0 {
		t.Fatalf("rg2 list has %d", n)
	}
	e.vault("kv1")
	e.Must("PUT", clPath("c1")+v, newClusterBody("cm1"), 201)
	if r := e.Do("DELETE", cmPath("cm1")+v, nil); r.Code != 409 || r.ErrField(t, "code") != "ClusterManagerInUse" {
		t.Fatalf("delete in use: %d %s", r.Code, r.Body.String())
	}
	e.Must("DELETE", clPath("c1")+v, nil, 202)
	blk, _ := e.ids.GetResourceIdentity(e.Ctx, cmPath("cm1"))
	if blk.PrincipalID == "" {
		t.Fatal("manager identity gone before delete")
	}
	e.Must("DELETE", cmPath("cm1")+v, nil, 202)
	e.Must("GET", cmPath("cm1")+v, nil, 404)
	if blk, _ := e.ids.GetResourceIdentity(e.Ctx, cmPath("cm1")); blk.PrincipalID != "" {
		t.Fatal("system identity survived the delete")
	}
	e.Must("DELETE", cmPath("cm1")+v, nil, 204)
}
