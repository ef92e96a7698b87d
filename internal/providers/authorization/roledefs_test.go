package authorization

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func customRole(name string, scopes ...string) map[string]any {
	return map[string]any{"properties": map[string]any{
		"roleName": name, "description": "reads secrets", "type": "CustomRole",
		"permissions": []any{map[string]any{
			"actions":     []string{"Microsoft.KeyVault/vaults/read"},
			"dataActions": []string{authz.ActionSecretGet},
		}},
		"assignableScopes": scopes,
	}}
}

func TestRoleDefinitionsRead(t *testing.T) {
	e := newEnv(t)
	sub := "/subscriptions/" + sub1
	listPath := func(scope, filter string) string {
		p := under(scope, authzProviders+"/roleDefinitions") + rdV
		if filter != "" {
			p += "&$filter=" + url.QueryEscape(filter)
		}
		return p
	}
	cases := []struct {
		name, scope, filter string
		wantNames           []string
		wantID              string // id of the first item, when set
	}{
		{"ok/owner-at-subscription", sub, "roleName eq 'Owner'", []string{authz.RoleOwner},
			sub + authzProviders + "/roleDefinitions/" + authz.RoleOwner},
		{"ok/owner-at-root", "/", "roleName eq 'owner'", []string{authz.RoleOwner},
			authzProviders + "/roleDefinitions/" + authz.RoleOwner},
		{"ok/name-with-and", rgPath(sub1, "rg1"), "roleName eq 'Key Vault Secrets User' and type eq 'BuiltInRole'",
			[]string{authz.RoleKeyVaultSecretsUser}, sub + authzProviders + "/roleDefinitions/" + authz.RoleKeyVaultSecretsUser},
		{"ok/no-custom-yet", sub, "type eq 'CustomRole'", []string{}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			items := e.MustAs(readerOrOwner(tc.scope), "GET", listPath(tc.scope, tc.filter), nil, http.StatusOK).Values(t)
			got := names(items)
			if len(got) != len(tc.wantNames) {
				t.Fatalf("names = %v, want %v", got, tc.wantNames)
			}
			for i := range got {
				if got[i] != tc.wantNames[i] {
					t.Fatalf("names = %v, want %v", got, tc.wantNames)
				}
			}
			if tc.wantID != "" && items[0]["id"] != tc.wantID {
				t.Fatalf("id = %v, want %s", items[0]["id"], tc.wantID)
			}
		})
	}
	t.Run("ok/all-builtins-everywhere", func(t *testing.T) {
		for _, scope := range []string{"/", sub, rgPath(sub1, "rg1"), vaultPath(sub1, "rg1", "kva")} {
			items := e.MustAs(ownerP, "GET", listPath(scope, "type eq 'BuiltInRole'"), nil, http.StatusOK).Values(t)
			if len(items) < 10 || !contains(names(items), authz.RoleKeyVaultAdministrator) {
				t.Fatalf("%s: %d built-ins", scope, len(items))
			}
		}
	})
	t.Run("ok/get-builtin", func(t *testing.T) {
		for _, scope := range []string{"/", rgPath(sub1, "rg1")} {
			d := e.MustAs(ownerP, "GET", under(scope, authzProviders+"/roleDefinitions/"+authz.RoleContributor)+rdV, nil, http.StatusOK).JSON(t)
			props := d["properties"].(map[string]any)
			if props["roleName"] != "Contributor" || props["type"] != "BuiltInRole" || d["type"] != authz.TypeRoleDefinitions {
				t.Fatalf("definition = %v", d)
			}
			perms := props["permissions"].([]any)[0].(map[string]any)
			if !contains(toStrings(perms["notActions"]), "Microsoft.Authorization/*/Write") {
				t.Fatalf("Contributor notActions = %v", perms["notActions"])
			}
		}
	})
	for _, tc := range []struct {
		name, path string
		status     int
		code       string
	}{
		{"fail/unknown-id", sub + authzProviders + "/roleDefinitions/dddddddd-0000-0000-0000-000000000000" + rdV, 404, "RoleDefinitionDoesNotExist"},
		{"fail/not-guid", sub + authzProviders + "/roleDefinitions/Owner" + rdV, 400, "InvalidRoleDefinitionId"},
		{"fail/filter", listPath(sub, "description eq 'x'"), 400, "InvalidFilter"},
		{"fail/filter-type", listPath(sub, "type eq 'Other'"), 400, "InvalidFilter"},
	} {
		t.Run(tc.name, func(t *testing.T) { e.wantErr(e.DoAs(ownerP, "GET", tc.path, nil), tc.status, tc.code) })
	}
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

func TestCustomRoleLifecycle(t *testing.T) {
	e := newEnv(t)
	sub := "/subscriptions/" + sub1
	id := newGUID(t)
	defPath := sub + authzProviders + "/roleDefinitions/" + id + rdV

	created := e.MustAs(uaaP, "PUT", defPath, customRole("Secret Peeker", sub), http.StatusCreated).JSON(t)
	props := created["properties"].(map[string]any)
	if created["id"] != sub+authzProviders+"/roleDefinitions/"+id || created["name"] != id ||
		props["type"] != "CustomRole" || props["roleName"] != "Secret Peeker" || props["createdBy"] != uaaP.ObjectID {
		t.Fatalf("created = %v", created)
	}
	// Update: still 201, as Azure answers (the Go SDK accepts only 201).
	e.MustAs(uaaP, "PUT", defPath, customRole("Secret Peeker", sub, rgPath(sub1, "rg1")), http.StatusCreated)

	t.Run("ok/listed-by-name-and-type", func(t *testing.T) {
		for _, f := range []string{"roleName eq 'secret peeker'", "type eq 'CustomRole'"} {
			items := e.MustAs(readerP, "GET", sub+authzProviders+"/roleDefinitions"+rdV+"&$filter="+url.QueryEscape(f), nil, http.StatusOK).Values(t)
			if len(items) != 1 || items[0]["name"] != id {
				t.Fatalf("%s: %v", f, names(items))
			}
		}
	})
	t.Run("ok/visible-below-not-elsewhere", func(t *testing.T) {
		e.MustAs(ownerP, "GET", vaultPath(sub1, "rg1", "kva")+authzProviders+"/roleDefinitions/"+id+rdV, nil, http.StatusOK)
		e.wantErr(e.DoAs(ownerP, "GET", "/subscriptions/"+sub2+authzProviders+"/roleDefinitions/"+id+rdV, nil), 404, "RoleDefinitionDoesNotExist")
		root := names(e.MustAs(ownerP, "GET", authzProviders+"/roleDefinitions"+rdV+"&$filter="+url.QueryEscape("type eq 'CustomRole'"), nil, http.StatusOK).Values(t))
		if contains(root, id) {
			t.Fatalf("custom role listed at / without atScopeAndBelow(): %v", root)
		}
		below := names(e.MustAs(ownerP, "GET", authzProviders+"/roleDefinitions"+rdV+"&$filter="+url.QueryEscape("atScopeAndBelow() and type eq 'CustomRole'"), nil, http.StatusOK).Values(t))
		if !contains(below, id) {
			t.Fatalf("atScopeAndBelow() at / misses the custom role: %v", below)
		}
	})

	// Assign it, then deleting the role is refused.
	ra := rgPath(sub1, "rg1") + authzProviders + "/roleAssignments/" + newGUID(t) + raV
	e.MustAs(uaaP, "PUT", ra, raBody(id, pidA), http.StatusCreated)
	e.wantErr(e.DoAs(uaaP, "DELETE", defPath, nil), http.StatusConflict, "RoleDefinitionHasAssignments")

	cases := []struct {
		name   string
		caller *principal.Principal
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"fail/contributor-writes", contributorP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			customRole("C1", sub), 403, "AuthorizationFailed"},
		{"fail/assignable-elsewhere", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			customRole("C2", "/subscriptions/"+sub2), 403, "AuthorizationFailed"},
		{"fail/widen-foreign-role", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + id + rdV,
			customRole("Secret Peeker", "/subscriptions/"+sub2), 403, "AuthorizationFailed"},
		{"fail/builtin-name", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			customRole("Owner", sub), 409, "RoleDefinitionWithSameNameExists"},
		{"fail/same-name", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			customRole("secret peeker", sub), 409, "RoleDefinitionWithSameNameExists"},
		{"fail/no-scopes", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			customRole("C3"), 400, "InvalidAssignableScope"},
		{"fail/bad-scope", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			customRole("C4", "subscriptions"), 400, "InvalidAssignableScope"},
		{"fail/bad-action", uaaP, "PUT", sub + authzProviders + "/roleDefinitions/" + newGUID(t) + rdV,
			map[string]any{"properties": map[string]any{"roleName": "C5", "assignableScopes": []string{sub},
				"permissions": []any{map[string]any{"actions": []string{"no spaces allowed"}}}}}, 400, "InvalidActionOrNotAction"},
		{"fail/builtin-immutable", ownerP, "PUT", sub + authzProviders + "/roleDefinitions/" + authz.RoleReader + rdV,
			customRole("Reader2", sub), 403, "BuiltInRoleDefinitionImmutable"},
		{"fail/builtin-undeletable", ownerP, "DELETE", sub + authzProviders + "/roleDefinitions/" + authz.RoleReader + rdV,
			nil, 403, "BuiltInRoleDefinitionImmutable"},
		{"fail/contributor-deletes", contributorP, "DELETE", defPath, nil, 403, "AuthorizationFailed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.wantErr(e.DoAs(tc.caller, tc.method, tc.path, tc.body), tc.status, tc.code)
		})
	}

	t.Run("ok/delete-after-unassign", func(t *testing.T) {
		e.MustAs(uaaP, "DELETE", ra, nil, http.StatusOK)
		del := e.MustAs(uaaP, "DELETE", defPath, nil, http.StatusOK).JSON(t)
		if del["name"] != id {
			t.Fatalf("DELETE body = %v", del)
		}
		e.wantErr(e.DoAs(uaaP, "GET", defPath, nil), 404, "RoleDefinitionDoesNotExist")
		e.MustAs(uaaP, "DELETE", defPath, nil, http.StatusNoContent)
	})
}
