package authorization

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestRoleAssignmentLifecycle(t *testing.T) {
	e := newEnv(t)
	kva := vaultPath(sub1, "rg1", "kva")
	cases := []struct {
		name, scope string
	}{
		{"ok/root", "/"},
		{"ok/subscription", "/subscriptions/" + sub1},
		{"ok/resource-group", rgPath(sub1, "rg1")},
		{"ok/resource", kva},
		{"ok/secret", kva + "/secrets/db-password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := newGUID(t)
			path := under(tc.scope, authzProviders+"/roleAssignments/"+name) + raV
			body := raBody(authz.RoleKeyVaultSecretsUser, pidA)
			body["properties"].(map[string]any)["description"] = "reads secrets"

			created := e.MustAs(uaaOrOwner(tc.scope), "PUT", path, body, http.StatusCreated).JSON(t)
			wantID := under(tc.scope, authzProviders+"/roleAssignments/"+name)
			props := created["properties"].(map[string]any)
			if created["id"] != wantID || created["name"] != name || created["type"] != authz.TypeRoleAssignments {
				t.Fatalf("envelope = %v", created)
			}
			if props["scope"] != tc.scope || props["principalId"] != pidA || props["principalType"] != "User" ||
				props["description"] != "reads secrets" || props["createdBy"] != uaaOrOwner(tc.scope).ObjectID {
				t.Fatalf("properties = %v", props)
			}
			wantRole := "/providers/Microsoft.Authorization/roleDefinitions/" + authz.RoleKeyVaultSecretsUser
			if tc.scope != "/" {
				wantRole = "/subscriptions/" + sub1 + wantRole
			}
			if props["roleDefinitionId"] != wantRole {
				t.Fatalf("roleDefinitionId = %v, want %s", props["roleDefinitionId"], wantRole)
			}

			// PUT again with the same content: an update, 200.
			e.MustAs(uaaOrOwner(tc.scope), "PUT", path, body, http.StatusOK)
			// GET by scope and name, and by the full ID as the path (GetByID).
			got := e.MustAs(readerOrOwner(tc.scope), "GET", path, nil, http.StatusOK).JSON(t)
			if got["id"] != wantID {
				t.Fatalf("GET id = %v", got["id"])
			}
			e.MustAs(readerOrOwner(tc.scope), "GET", created["id"].(string)+raV, nil, http.StatusOK)
			// Listed at its scope with atScope().
			list := e.MustAs(readerOrOwner(tc.scope), "GET", under(tc.scope, authzProviders+"/roleAssignments")+raV+"&$filter="+url.QueryEscape("atScope()"), nil, http.StatusOK)
			if !contains(names(list.Values(t)), name) {
				t.Fatalf("atScope list misses %s: %s", name, list.Body.String())
			}
			// The assignment works: the engine grants the data action there.
			d, err := e.engine.Decide(t.Context(), authz.Request{Principal: user(pidA), DataAction: true,
				Action: authz.ActionSecretGet, Scope: kva + "/secrets/db-password"})
			if err != nil || !d.Allowed {
				t.Fatalf("Decide after assignment = %v, %v", d, err)
			}

			del := e.MustAs(uaaOrOwner(tc.scope), "DELETE", path, nil, http.StatusOK).JSON(t)
			if del["name"] != name {
				t.Fatalf("DELETE body = %v", del)
			}
			e.wantErr(e.DoAs(ownerP, "GET", path, nil), http.StatusNotFound, "RoleAssignmentNotFound")
			// Idempotent: a second DELETE is 204 with no body.
			r := e.MustAs(uaaOrOwner(tc.scope), "DELETE", path, nil, http.StatusNoContent)
			if r.Body.Len() != 0 {
				t.Fatalf("204 with body %q", r.Body.String())
			}
		})
	}
}

// uaaOrOwner is the least privileged test principal allowed to manage role
// assignments at scope.
func uaaOrOwner(scope string) *principal.Principal {
	if strings.HasPrefix(scope, "/subscriptions/"+sub1) {
		return uaaP
	}
	return ownerP
}

func readerOrOwner(scope string) *principal.Principal {
	if strings.HasPrefix(scope, "/subscriptions/"+sub1) {
		return readerP
	}
	return ownerP
}

func TestRoleAssignmentErrors(t *testing.T) {
	e := newEnv(t)
	rg := rgPath(sub1, "rg1")
	dup := newGUID(t)
	e.MustAs(uaaP, "PUT", rg+authzProviders+"/roleAssignments/"+dup+raV, raBody(authz.RoleReader, pidB), http.StatusCreated)

	cases := []struct {
		name   string
		caller *principal.Principal
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"fail/duplicate", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidB), 409, "RoleAssignmentExists"},
		{"fail/same-name-other-principal", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + dup + raV,
			raBody(authz.RoleReader, pidA), 409, "RoleAssignmentUpdateNotPermitted"},
		{"fail/name-not-guid", uaaP, "PUT", rg + authzProviders + "/roleAssignments/not-a-guid" + raV,
			raBody(authz.RoleReader, pidA), 400, "InvalidRoleAssignmentId"},
		{"fail/unknown-role", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody("dddddddd-0000-0000-0000-000000000000", pidA), 400, "RoleDefinitionDoesNotExist"},
		{"fail/missing-role", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			map[string]any{"properties": map[string]any{"principalId": pidA}}, 400, "InvalidRoleDefinitionId"},
		{"fail/unknown-principal", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, "eeeeeeee-0000-0000-0000-000000000000"), 400, "PrincipalNotFound"},
		{"fail/bad-principal-type", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			map[string]any{"properties": map[string]any{"roleDefinitionId": authz.RoleReader, "principalId": pidA, "principalType": "Robot"}},
			400, "InvalidPrincipalType"},
		{"fail/condition", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			map[string]any{"properties": map[string]any{"roleDefinitionId": authz.RoleReader, "principalId": pidA,
				"condition": "@Resource[x] StringEquals 'y'", "conditionVersion": "2.0"}}, 400, "RoleAssignmentConditionNotSupported"},
		{"fail/body-not-json", uaaP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			"{", 400, "InvalidRequestContent"},
		{"fail/missing-vault", uaaP, "PUT", vaultPath(sub1, "rg1", "nosuchvault") + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 404, "ResourceNotFound"},
		{"fail/missing-vault-secret", uaaP, "PUT", vaultPath(sub1, "rg1", "nosuchvault") + "/secrets/s" + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 404, "ResourceNotFound"},
		{"fail/missing-group", uaaP, "PUT", rgPath(sub1, "nosuchrg") + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 404, "ResourceGroupNotFound"},
		{"fail/missing-subscription", ownerP, "PUT", "/subscriptions/" + subNone + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 404, "SubscriptionNotFound"},
		{"fail/contributor-cannot-assign", contributorP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 403, "AuthorizationFailed"},
		{"fail/contributor-cannot-delete", contributorP, "DELETE", rg + authzProviders + "/roleAssignments/" + dup + raV,
			nil, 403, "AuthorizationFailed"},
		{"fail/uaa-other-subscription", uaaP, "PUT", rgPath(sub2, "rg1") + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 403, "AuthorizationFailed"},
		{"fail/uaa-root", uaaP, "PUT", authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 403, "AuthorizationFailed"},
		{"fail/reader-cannot-assign", readerP, "PUT", rg + authzProviders + "/roleAssignments/" + newGUID(t) + raV,
			raBody(authz.RoleReader, pidA), 403, "AuthorizationFailed"},
		{"fail/stranger-cannot-read", strangerP, "GET", rg + authzProviders + "/roleAssignments/" + dup + raV,
			nil, 403, "AuthorizationFailed"},
		{"fail/api-version", uaaP, "GET", rg + authzProviders + "/roleAssignments/" + dup + "?api-version=2014-01-01",
			nil, 400, "NoRegisteredProviderFound"},
		{"fail/patch", uaaP, "PATCH", rg + authzProviders + "/roleAssignments/" + dup + raV,
			raBody(authz.RoleReader, pidB), 405, "MethodNotAllowed"},
		{"fail/get-wrong-scope", ownerP, "GET", rgPath(sub1, "rg2") + authzProviders + "/roleAssignments/" + dup + raV,
			nil, 404, "RoleAssignmentNotFound"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.wantErr(e.DoAs(tc.caller, tc.method, tc.path, tc.body), tc.status, tc.code)
		})
	}
	t.Run("ok/authorization-failed-names-the-action", func(t *testing.T) {
		r := e.DoAs(contributorP, "PUT", rg+authzProviders+"/roleAssignments/"+newGUID(t)+raV, raBody(authz.RoleReader, pidA))
		if !strings.Contains(r.ErrMessage(t), "'"+authz.ActionRoleAssignmentWrite+"'") {
			t.Fatalf("message = %q", r.ErrMessage(t))
		}
		r = e.DoAs(contributorP, "DELETE", rg+authzProviders+"/roleAssignments/"+dup+raV, nil)
		if !strings.Contains(r.ErrMessage(t), "'"+authz.ActionRoleAssignmentDelete+"'") {
			t.Fatalf("message = %q", r.ErrMessage(t))
		}
	})
	t.Run("ok/wrong-scope-delete-leaves-it", func(t *testing.T) {
		e.MustAs(ownerP, "DELETE", rgPath(sub1, "rg2")+authzProviders+"/roleAssignments/"+dup+raV, nil, http.StatusNoContent)
		e.MustAs(ownerP, "GET", rg+authzProviders+"/roleAssignments/"+dup+raV, nil, http.StatusOK)
	})
}

func TestRoleAssignmentListFilters(t *testing.T) {
	e := newEnv(t)
	sub := "/subscriptions/" + sub1
	rg := rgPath(sub1, "rg1")
	kva := vaultPath(sub1, "rg1", "kva")
	put := func(scope, pid, role string) string {
		n := newGUID(t)
		e.MustAs(uaaP, "PUT", scope+authzProviders+"/roleAssignments/"+n+raV, raBody(role, pid), http.StatusCreated)
		return n
	}
	atSub := put(sub, pidA, authz.RoleReader)
	atRG := put(rg, pidA, authz.RoleKeyVaultReader)
	atVault := put(kva, pidB, authz.RoleKeyVaultSecretsUser)
	atOtherRG := put(rgPath(sub1, "rg2"), pidB, authz.RoleReader)

	list := func(scope, filter string) []string {
		t.Helper()
		path := scope + authzProviders + "/roleAssignments" + raV
		if filter != "" {
			path += "&$filter=" + url.QueryEscape(filter)
		}
		return names(e.MustAs(ownerP, "GET", path, nil, http.StatusOK).Values(t))
	}
	cases := []struct {
		name, scope, filter string
		want, notWant       []string
	}{
		{"ok/group-all", rg, "", []string{atSub, atRG, atVault}, []string{atOtherRG}},
		{"ok/group-atScope", rg, "atScope()", []string{atSub, atRG}, []string{atVault, atOtherRG}},
		{"ok/group-principal", rg, "principalId eq '" + pidA + "'", []string{atSub, atRG}, []string{atVault, atOtherRG}},
		{"ok/group-assignedTo", rg, "assignedTo('" + pidB + "')", []string{atVault}, []string{atSub, atRG, atOtherRG}},
		{"ok/group-atScope-and-assignedTo", rg, "atScope() and assignedTo('" + pidB + "')", nil, []string{atSub, atRG, atVault, atOtherRG}},
		{"ok/subscription-all", sub, "", []string{atSub, atRG, atVault, atOtherRG}, nil},
		{"ok/subscription-principal", sub, "principalId eq '" + strings.ToUpper(pidB) + "'", []string{atVault, atOtherRG}, []string{atSub, atRG}},
		{"ok/vault-all", kva, "", []string{atSub, atRG, atVault}, []string{atOtherRG}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := list(tc.scope, tc.filter)
			for _, w := range tc.want {
				if !contains(got, w) {
					t.Errorf("missing %s in %v", w, got)
				}
			}
			for _, w := range tc.notWant {
				if contains(got, w) {
					t.Errorf("unexpected %s in %v", w, got)
				}
			}
		})
	}
	for _, f := range []string{"roleName eq 'x'", "principalId eq 'not-a-guid'", "atScope(", "principalId eq " + pidA} {
		t.Run("fail/filter-"+f, func(t *testing.T) {
			r := e.DoAs(ownerP, "GET", rg+authzProviders+"/roleAssignments"+raV+"&$filter="+url.QueryEscape(f), nil)
			e.wantErr(r, http.StatusBadRequest, "UnsupportedQuery")
			if !strings.Contains(r.ErrMessage(t), "Supported filters are either 'atScope()'") {
				t.Fatalf("message = %q", r.ErrMessage(t))
			}
		})
	}
	t.Run("ok/paging", func(t *testing.T) {
		seen := map[string]bool{}
		next := base + "/subscriptions/" + sub1 + authzProviders + "/roleAssignments" + raV + "&$top=2"
		for pages := 0; next != ""; pages++ {
			if pages > 20 {
				t.Fatal("too many pages")
			}
			r := e.MustAs(ownerP, "GET", next, nil, http.StatusOK)
			items := r.Values(t)
			if len(items) > 2 {
				t.Fatalf("page of %d", len(items))
			}
			for _, n := range names(items) {
				if seen[n] {
					t.Fatalf("%s served twice", n)
				}
				seen[n] = true
			}
			next, _ = r.JSON(t)["nextLink"].(string)
		}
		for _, n := range []string{atSub, atRG, atVault, atOtherRG} {
			if !seen[n] {
				t.Errorf("paging missed %s", n)
			}
		}
	})
	t.Run("ok/reader-lists", func(t *testing.T) {
		e.MustAs(readerP, "GET", sub+authzProviders+"/roleAssignments"+raV, nil, http.StatusOK)
	})
	t.Run("fail/stranger-lists", func(t *testing.T) {
		e.wantErr(e.DoAs(strangerP, "GET", sub+authzProviders+"/roleAssignments"+raV, nil), http.StatusForbidden, "AuthorizationFailed")
	})
}
