package authz

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestCreateAssignmentValidation(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t)
	p := newPrincipal()
	existing := mustAssign(t, e, p, RoleKeyVaultSecretsUser, testVault)
	subOnly := uuid.NewString()
	if _, _, err := e.PutRoleDefinition(ctx, RoleDefinition{ID: subOnly, RoleName: "sub only",
		AssignableScopes: []string{"/subscriptions/" + testSub},
		Permissions:      []Permission{{DataActions: []string{getSecret}}}}, "test"); err != nil {
		t.Fatal(err)
	}
	base := func(mod func(a *Assignment)) Assignment {
		a := Assignment{Name: uuid.NewString(), Scope: testVault, RoleDefinitionID: RoleKeyVaultReader,
			PrincipalID: p.ObjectID, PrincipalType: PrincipalServicePrincipal}
		mod(&a)
		return a
	}
	cases := []struct {
		name   string
		a      Assignment
		status int
		code   string
	}{
		{"fail/name-not-guid", base(func(a *Assignment) { a.Name = "my-assignment" }), 400, "InvalidRoleAssignmentId"},
		{"fail/name-braced-guid", base(func(a *Assignment) { a.Name = "{" + uuid.NewString() + "}" }), 400, "InvalidRoleAssignmentId"},
		{"fail/scope-garbage", base(func(a *Assignment) { a.Scope = "/foo/bar" }), 400, "InvalidScope"},
		{"fail/scope-missing-rg-name", base(func(a *Assignment) { a.Scope = "/subscriptions/" + testSub + "/resourceGroups" }), 400, "InvalidScope"},
		{"fail/scope-type-without-name", base(func(a *Assignment) { a.Scope = testRG + "/providers/Microsoft.KeyVault/vaults" }), 400, "InvalidScope"},
		{"fail/scope-bad-chars", base(func(a *Assignment) { a.Scope = testVault + "/secrets/a b" }), 400, "InvalidScope"},
		{"fail/scope-double-slash", base(func(a *Assignment) { a.Scope = "/subscriptions//resourceGroups/x" }), 400, "InvalidScope"},
		{"fail/role-unknown", base(func(a *Assignment) { a.RoleDefinitionID = uuid.NewString() }), 400, "RoleDefinitionDoesNotExist"},
		{"fail/role-id-garbage", base(func(a *Assignment) { a.RoleDefinitionID = "Owner" }), 400, "InvalidRoleDefinitionId"},
		{"fail/role-not-assignable-here", base(func(a *Assignment) { a.RoleDefinitionID = subOnly; a.Scope = "/subscriptions/" + uuid.NewString() }), 400, "RoleDefinitionDoesNotExist"},
		{"fail/principal-not-guid", base(func(a *Assignment) { a.PrincipalID = "admin@keyhaven.local" }), 400, "InvalidPrincipalId"},
		{"fail/principal-type", base(func(a *Assignment) { a.PrincipalType = "ManagedIdentity" }), 400, "InvalidPrincipalType"},
		{"fail/description-too-long", base(func(a *Assignment) { a.Description = strings.Repeat("d", MaxDescriptionLen+1) }), 400, "BadParameter"},
		{"fail/duplicate-principal-role-scope", base(func(a *Assignment) {
			a.RoleDefinitionID = RoleKeyVaultSecretsUser
			a.Scope = strings.ToUpper(testVault)
		}), 409, "RoleAssignmentExists"},
		{"fail/same-name-different-scope", base(func(a *Assignment) {
			a.Name = existing.Name
			a.RoleDefinitionID = RoleKeyVaultSecretsUser
			a.Scope = testRG
		}), 409, "RoleAssignmentUpdateNotPermitted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := e.CreateAssignment(ctx, c.a)
			wantCode(t, err, c.status, c.code)
		})
	}

	t.Run("ok/role-definition-resource-id", func(t *testing.T) {
		a, created, err := e.CreateAssignment(ctx, base(func(a *Assignment) {
			a.RoleDefinitionID = "/subscriptions/" + testSub + "/providers/Microsoft.Authorization/roleDefinitions/" + strings.ToUpper(RoleKeyVaultReader)
			a.PrincipalType = ""
		}))
		if err != nil || !created {
			t.Fatalf("create: %v %v", created, err)
		}
		if a.RoleDefinitionID != RoleKeyVaultReader || a.PrincipalType != PrincipalUser {
			t.Fatalf("stored %+v", a)
		}
	})
	t.Run("ok/custom-role-in-assignable-scope", func(t *testing.T) {
		if _, _, err := e.CreateAssignment(ctx, base(func(a *Assignment) { a.RoleDefinitionID = subOnly })); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ok/same-name-same-target-updates-description", func(t *testing.T) {
		u, created, err := e.CreateAssignment(ctx, Assignment{Name: strings.ToUpper(existing.Name), Scope: testVault + "/",
			RoleDefinitionID: RoleKeyVaultSecretsUser, PrincipalID: p.ObjectID, PrincipalType: PrincipalServicePrincipal,
			Description: "rotation reader", CreatedBy: "someone-else"})
		if err != nil || created {
			t.Fatalf("update: created=%v err=%v", created, err)
		}
		if u.Description != "rotation reader" || u.CreatedBy != existing.CreatedBy || u.UpdatedBy != "someone-else" || !u.CreatedOn.Equal(existing.CreatedOn) {
			t.Fatalf("updated = %+v", u)
		}
	})
}

func TestAssignmentGetListDelete(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newTestEngine(t)
	alice, bob := newPrincipal(), newPrincipal()
	sub := "/subscriptions/" + testSub
	secret := testVault + "/secrets/s1"
	root := mustAssign(t, e, alice, RoleOwner, "/")
	clk.Advance(time.Minute)
	atSub := mustAssign(t, e, alice, RoleReader, sub)
	atRG := mustAssign(t, e, bob, RoleKeyVaultReader, testRG)
	atVault := mustAssign(t, e, bob, RoleKeyVaultSecretsUser, testVault)
	atSecret := mustAssign(t, e, alice, RoleKeyVaultSecretsOfficer, secret)
	atOther := mustAssign(t, e, bob, RoleKeyVaultAdministrator, otherVault)
	nearMiss := mustAssign(t, e, bob, RoleReader, "/subscriptions/"+testSub+"x")

	if !atSub.CreatedOn.Equal(testStart.Add(time.Minute)) || atSub.CreatedBy != "test" || atSub.PrincipalType != PrincipalServicePrincipal {
		t.Fatalf("timestamps/createdBy/type: %+v", atSub)
	}

	names := func(as []Assignment) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name)
		}
		slices.Sort(out)
		return out
	}
	set := func(as ...Assignment) []string { return names(as) }

	cases := []struct {
		name string
		f    AssignmentFilter
		want []string
	}{
		{"ok/everything", AssignmentFilter{}, set(root, atSub, atRG, atVault, atSecret, atOther, nearMiss)},
		{"ok/at-scope-vault", AssignmentFilter{Scope: testVault, AtScope: true}, set(root, atSub, atRG, atVault)},
		{"ok/at-scope-case-insensitive", AssignmentFilter{Scope: strings.ToUpper(testVault), AtScope: true}, set(root, atSub, atRG, atVault)},
		{"ok/vault-above-and-below", AssignmentFilter{Scope: testVault}, set(root, atSub, atRG, atVault, atSecret)},
		{"ok/rg-above-and-below", AssignmentFilter{Scope: testRG}, set(root, atSub, atRG, atVault, atSecret, atOther)},
		{"ok/sub-excludes-near-miss", AssignmentFilter{Scope: sub}, set(root, atSub, atRG, atVault, atSecret, atOther)},
		{"ok/root-at-scope", AssignmentFilter{Scope: "/", AtScope: true}, set(root)},
		{"ok/principal", AssignmentFilter{PrincipalID: strings.ToUpper(alice.ObjectID)}, set(root, atSub, atSecret)},
		{"ok/principal-at-vault", AssignmentFilter{PrincipalID: bob.ObjectID, Scope: testVault}, set(atRG, atVault)},
		{"ok/role", AssignmentFilter{RoleDefinitionID: RoleReader}, set(atSub, nearMiss)},
		{"ok/nothing", AssignmentFilter{PrincipalID: uuid.NewString()}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := e.ListAssignments(ctx, c.f)
			if err != nil {
				t.Fatal(err)
			}
			if g := names(got); !slices.Equal(g, c.want) {
				t.Fatalf("got %v\nwant %v", g, c.want)
			}
		})
	}
	t.Run("fail/list-bad-scope", func(t *testing.T) {
		_, err := e.ListAssignments(ctx, AssignmentFilter{Scope: "/nope"})
		wantCode(t, err, 400, "InvalidScope")
	})

	t.Run("ok/get", func(t *testing.T) {
		got, err := e.GetAssignment(ctx, strings.ToUpper(testVault), strings.ToUpper(atVault.Name))
		if err != nil || got.Name != atVault.Name || got.Scope != testVault {
			t.Fatalf("get: %+v %v", got, err)
		}
		if got, err := e.GetAssignment(ctx, "", atVault.Name); err != nil || got.Name != atVault.Name {
			t.Fatalf("get without scope: %v", err)
		}
	})
	for _, c := range []struct{ name, scope, id string }{
		{"fail/get-wrong-scope", testRG, atVault.Name},
		{"fail/get-unknown", "", uuid.NewString()},
		{"fail/get-not-guid", "", "x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.GetAssignment(ctx, c.scope, c.id)
			wantCode(t, err, 404, "RoleAssignmentNotFound")
		})
	}

	t.Run("fail/delete-wrong-scope", func(t *testing.T) {
		_, err := e.DeleteAssignment(ctx, testRG, atVault.Name)
		wantCode(t, err, 404, "RoleAssignmentNotFound")
	})
	t.Run("ok/delete", func(t *testing.T) {
		del, err := e.DeleteAssignment(ctx, testVault, atVault.Name)
		if err != nil || del.Name != atVault.Name {
			t.Fatalf("delete: %+v %v", del, err)
		}
		_, err = e.DeleteAssignment(ctx, testVault, atVault.Name)
		wantCode(t, err, 404, "RoleAssignmentNotFound")
		got, err := e.ListAssignments(ctx, AssignmentFilter{Scope: testVault})
		if err != nil || slices.Contains(names(got), atVault.Name) {
			t.Fatalf("deleted assignment still listed: %v", err)
		}
		// The principal's other assignments are untouched.
		if got, _ := e.ListAssignments(ctx, AssignmentFilter{PrincipalID: bob.ObjectID}); len(got) != 3 {
			t.Fatalf("bob has %d assignments, want 3", len(got))
		}
	})
}

func TestPrincipalTypeFor(t *testing.T) {
	cases := []struct {
		kind principal.Kind
		want string
	}{
		{principal.User, PrincipalUser},
		{principal.ServicePrincipal, PrincipalServicePrincipal},
		{principal.ManagedIdentity, PrincipalServicePrincipal},
	}
	for _, c := range cases {
		t.Run("ok/"+string(c.kind), func(t *testing.T) {
			if got := PrincipalTypeFor(c.kind); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
}
