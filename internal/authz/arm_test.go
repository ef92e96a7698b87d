package authz

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestScopeValidation(t *testing.T) {
	cases := []struct {
		name  string
		scope string
		ok    bool
	}{
		{"ok/root", "/", true},
		{"ok/subscription", "/subscriptions/" + testSub, true},
		{"ok/resource-group", testRG, true},
		{"ok/vault", testVault, true},
		{"ok/secret", testVault + "/secrets/db-password", true},
		{"ok/subscription-level-resource", "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/locks/l1", true},
		{"ok/extension-resource", testVault + "/providers/Microsoft.Authorization/locks/l1", true},
		{"ok/management-group", "/providers/Microsoft.Management/managementGroups/mg1", true},
		{"ok/mixed-case", "/SUBSCRIPTIONS/" + testSub + "/RESOURCEGROUPS/rg", true},
		{"fail/empty-segment", "/subscriptions//x", false},
		{"fail/trailing-slash-unnormalized", "/subscriptions/x/", false},
		{"fail/no-leading-slash", "subscriptions/x", false},
		{"fail/unknown-root", "/tenants/x", false},
		{"fail/subscriptions-alone", "/subscriptions", false},
		{"fail/rg-without-name", "/subscriptions/x/resourceGroups", false},
		{"fail/providers-without-namespace", "/subscriptions/x/providers", false},
		{"fail/type-without-name", testRG + "/providers/Microsoft.KeyVault/vaults", false},
		{"fail/odd-child", testVault + "/secrets", false},
		{"fail/space", testRG + " x", false},
		{"fail/pipe", testRG + "|x", false},
		{"fail/percent", testRG + "%2F", false},
		{"fail/query", testRG + "?x", false},
		{"fail/non-ascii", "/subscriptions/ü", false},
		{"fail/too-long", "/subscriptions/" + strings.Repeat("a", MaxScopeLen), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateScope(c.scope)
			if c.ok && err != nil {
				t.Fatalf("unexpected: %v", err)
			}
			if !c.ok {
				wantCode(t, err, 400, "InvalidScope")
			}
		})
	}
}

func TestScopeCovers(t *testing.T) {
	cases := []struct {
		name          string
		parent, child string
		want          bool
	}{
		{"ok/root-covers-all", "/", testVault, true},
		{"ok/equal", testVault, testVault, true},
		{"ok/child", testRG, testVault + "/secrets/x", true},
		{"ok/case", strings.ToUpper(testRG), testVault, true},
		{"ok/unnormalized", "subscriptions/a/", "/subscriptions/a/resourceGroups/b", true},
		{"fail/segment-prefix", "/subscriptions/a", "/subscriptions/ab", false},
		{"fail/parent-below-child", testVault, testRG, false},
		{"fail/sibling", testVault + "/secrets/a", testVault + "/secrets/ab", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ScopeCovers(c.parent, c.child); got != c.want {
				t.Fatalf("ScopeCovers(%q, %q) = %v", c.parent, c.child, got)
			}
		})
	}
}

func TestParseIDs(t *testing.T) {
	const g = "0b5fe924-9a61-425c-96af-cfe6e287ca2d"
	roleCases := []struct {
		name string
		in   string
		want string
	}{
		{"ok/bare", strings.ToUpper(g), g},
		{"ok/root", "/providers/Microsoft.Authorization/roleDefinitions/" + g, g},
		{"ok/subscription", "/subscriptions/" + testSub + "/providers/microsoft.authorization/roledefinitions/" + g, g},
		{"ok/resource-group", testRG + "/providers/Microsoft.Authorization/roleDefinitions/" + g, g},
		{"fail/name", "Owner", ""},
		{"fail/not-guid", "/providers/Microsoft.Authorization/roleDefinitions/owner", ""},
		{"fail/bad-scope", "/tenants/x/providers/Microsoft.Authorization/roleDefinitions/" + g, ""},
		{"fail/empty", "", ""},
	}
	for _, c := range roleCases {
		t.Run("role/"+c.name, func(t *testing.T) {
			got, err := ParseRoleDefinitionID(c.in)
			if c.want == "" {
				wantCode(t, err, 400, "InvalidRoleDefinitionId")
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
	asgCases := []struct {
		name                string
		in                  string
		wantScope, wantName string
	}{
		{"ok/root", "/providers/Microsoft.Authorization/roleAssignments/" + g, "/", g},
		{"ok/vault", testVault + "/providers/Microsoft.Authorization/roleAssignments/" + strings.ToUpper(g), testVault, g},
		{"ok/no-leading-slash", "subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleAssignments/" + g, "/subscriptions/" + testSub, g},
		{"fail/not-guid", testVault + "/providers/Microsoft.Authorization/roleAssignments/abc", "", ""},
		{"fail/wrong-type", testVault + "/providers/Microsoft.Authorization/roleDefinitions/" + g, "", ""},
		{"fail/bad-scope", "/x/providers/Microsoft.Authorization/roleAssignments/" + g, "", ""},
	}
	for _, c := range asgCases {
		t.Run("assignment/"+c.name, func(t *testing.T) {
			scope, name, err := ParseAssignmentID(c.in)
			if c.wantName == "" {
				if err == nil {
					t.Fatalf("accepted %q", c.in)
				}
				return
			}
			if err != nil || scope != c.wantScope || name != c.wantName {
				t.Fatalf("got %q %q %v", scope, name, err)
			}
			if back := AssignmentResourceID(scope, name); !strings.EqualFold(back, "/"+strings.TrimPrefix(c.in, "/")) {
				t.Fatalf("round trip: %s", back)
			}
		})
	}
}

func TestARMRendering(t *testing.T) {
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := Assignment{
		Name: "05c5a614-a7d6-4502-b150-c2fb455033ff", Scope: testVault,
		RoleDefinitionID: RoleKeyVaultSecretsUser, PrincipalID: "ce2ce14e-85d7-4629-bdbc-454d0519d987",
		PrincipalType: PrincipalServicePrincipal, CreatedOn: when, UpdatedOn: when, CreatedBy: "admin-oid", UpdatedBy: "admin-oid",
	}
	b, err := json.Marshal(AssignmentARM(a))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	props := got["properties"].(map[string]any)
	checks := []struct{ name, got, want string }{
		{"ok/id", got["id"].(string), testVault + "/providers/Microsoft.Authorization/roleAssignments/" + a.Name},
		{"ok/name", got["name"].(string), a.Name},
		{"ok/type", got["type"].(string), "Microsoft.Authorization/roleAssignments"},
		{"ok/roleDefinitionId", props["roleDefinitionId"].(string), "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + RoleKeyVaultSecretsUser},
		{"ok/principalId", props["principalId"].(string), a.PrincipalID},
		{"ok/principalType", props["principalType"].(string), "ServicePrincipal"},
		{"ok/scope", props["scope"].(string), testVault},
		{"ok/createdOn", props["createdOn"].(string), "2026-01-02T03:04:05Z"},
		{"ok/createdBy", props["createdBy"].(string), "admin-oid"},
	}
	for _, c := range checks {
		t.Run("assignment/"+c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Fatalf("got %q, want %q", c.got, c.want)
			}
		})
	}
	t.Run("assignment/ok/root-scope", func(t *testing.T) {
		r := AssignmentARM(Assignment{Name: a.Name, Scope: "/", RoleDefinitionID: RoleOwner})
		if r.ID != "/providers/Microsoft.Authorization/roleAssignments/"+a.Name ||
			r.Properties.RoleDefinitionID != "/providers/Microsoft.Authorization/roleDefinitions/"+RoleOwner {
			t.Fatalf("root rendering: %+v", r)
		}
	})

	t.Run("definition/ok/builtin-at-subscription", func(t *testing.T) {
		d, _ := BuiltinRole(RoleKeyVaultSecretsUser)
		b, err := json.Marshal(RoleDefinitionARM(d, "/subscriptions/"+testSub))
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			ID, Name, Type string
			Properties     struct {
				RoleName, Type, Description string
				AssignableScopes            []string
				Permissions                 []map[string][]string
				CreatedBy                   *string
			}
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.ID != "/subscriptions/"+testSub+"/providers/Microsoft.Authorization/roleDefinitions/"+RoleKeyVaultSecretsUser ||
			m.Name != RoleKeyVaultSecretsUser || m.Type != "Microsoft.Authorization/roleDefinitions" ||
			m.Properties.RoleName != "Key Vault Secrets User" || m.Properties.Type != "BuiltInRole" ||
			len(m.Properties.AssignableScopes) != 1 || m.Properties.CreatedBy != nil {
			t.Fatalf("rendered %s", b)
		}
		// Empty lists render as [], never null.
		if !strings.Contains(string(b), `"actions":[]`) || !strings.Contains(string(b), `"notDataActions":[]`) {
			t.Fatalf("empty lists not rendered as []: %s", b)
		}
		if got := m.Properties.Permissions[0]["dataActions"]; len(got) != 2 {
			t.Fatalf("dataActions = %v", got)
		}
	})
	t.Run("definition/ok/root", func(t *testing.T) {
		d, _ := BuiltinRole(RoleOwner)
		if got := RoleDefinitionARM(d, "/").ID; got != "/providers/Microsoft.Authorization/roleDefinitions/"+RoleOwner {
			t.Fatalf("id = %s", got)
		}
	})
}
