package authz

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func customRole(mod func(d *RoleDefinition)) RoleDefinition {
	d := RoleDefinition{
		ID:               uuid.NewString(),
		RoleName:         "Secret Setter " + uuid.NewString()[:8],
		Description:      "sets secrets",
		AssignableScopes: []string{"/subscriptions/" + testSub},
		Permissions: []Permission{{
			Actions:        []string{"Microsoft.KeyVault/vaults/read"},
			DataActions:    []string{"Microsoft.KeyVault/vaults/secrets/*"},
			NotDataActions: []string{getSecret},
		}},
	}
	if mod != nil {
		mod(&d)
	}
	return d
}

func TestCustomRoleLifecycle(t *testing.T) {
	ctx := context.Background()
	e, clk, _ := newTestEngine(t)
	p := newPrincipal()
	def := customRole(nil)

	created, isNew, err := e.PutRoleDefinition(ctx, def, "admin")
	if err != nil || !isNew {
		t.Fatalf("create: %v %v", isNew, err)
	}
	if created.RoleType != CustomRole || created.CreatedBy != "admin" || !created.CreatedOn.Equal(testStart) {
		t.Fatalf("created = %+v", created)
	}

	got, err := e.GetRoleDefinition(ctx, "/subscriptions/"+testSub+"/providers/Microsoft.Authorization/roleDefinitions/"+strings.ToUpper(def.ID))
	if err != nil || got.RoleName != def.RoleName {
		t.Fatalf("get: %+v %v", got, err)
	}
	list, err := e.ListRoleDefinitions(ctx, RoleDefinitionFilter{RoleName: strings.ToUpper(def.RoleName)})
	if err != nil || len(list) != 1 || list[0].ID != def.ID {
		t.Fatalf("list by name: %v %v", list, err)
	}
	if list, _ := e.ListRoleDefinitions(ctx, RoleDefinitionFilter{Type: CustomRole}); len(list) != 1 {
		t.Fatalf("list custom: %d roles", len(list))
	}
	if list, _ := e.ListRoleDefinitions(ctx, RoleDefinitionFilter{Type: BuiltInRole}); len(list) != len(builtinRoles) {
		t.Fatalf("list built-in: %d roles", len(list))
	}
	if list, _ := e.ListRoleDefinitions(ctx, RoleDefinitionFilter{Scope: "/subscriptions/" + uuid.NewString(), Type: CustomRole}); len(list) != 0 {
		t.Fatalf("custom role visible in another subscription: %v", list)
	}
	if list, _ := e.ListRoleDefinitions(ctx, RoleDefinitionFilter{Scope: testVault, Type: CustomRole}); len(list) != 1 {
		t.Fatalf("custom role not visible below its assignable scope")
	}

	// Assigned, it grants exactly what its blocks say.
	asg := mustAssign(t, e, p, def.ID, testVault)
	if d := decide(t, e, p, setSecret, true, testVault+"/secrets/x"); !d.Allowed || !strings.Contains(d.Reason, def.RoleName) {
		t.Fatalf("set not granted: %s", d.Reason)
	}
	if d := decide(t, e, p, getSecret, true, testVault+"/secrets/x"); d.Allowed {
		t.Fatal("notDataActions ignored")
	}

	// Update: permissions change applies at once; createdOn stays.
	clk.Advance(time.Hour)
	def.Permissions = []Permission{{DataActions: []string{getSecret}}}
	def.RoleName = def.RoleName + " v2"
	upd, isNew, err := e.PutRoleDefinition(ctx, def, "admin2")
	if err != nil || isNew {
		t.Fatalf("update: %v %v", isNew, err)
	}
	if !upd.CreatedOn.Equal(testStart) || upd.CreatedBy != "admin" || !upd.UpdatedOn.Equal(testStart.Add(time.Hour)) || upd.UpdatedBy != "admin2" {
		t.Fatalf("updated metadata = %+v", upd)
	}
	if d := decide(t, e, p, getSecret, true, testVault+"/secrets/x"); !d.Allowed {
		t.Fatalf("updated role not applied: %s", d.Reason)
	}
	if d := decide(t, e, p, setSecret, true, testVault+"/secrets/x"); d.Allowed {
		t.Fatal("old role permissions still applied")
	}

	// Narrowing assignable scopes away from an assignment is refused.
	narrowed := def
	narrowed.AssignableScopes = []string{otherVault}
	_, _, err = e.PutRoleDefinition(ctx, narrowed, "admin")
	wantCode(t, err, 409, "RoleDefinitionHasAssignments")

	// Delete is refused while assigned.
	_, err = e.DeleteRoleDefinition(ctx, def.ID)
	wantCode(t, err, 409, "RoleDefinitionHasAssignments")
	if _, err := e.DeleteAssignment(ctx, "", asg.Name); err != nil {
		t.Fatal(err)
	}
	del, err := e.DeleteRoleDefinition(ctx, def.ID)
	if err != nil || del.ID != def.ID {
		t.Fatalf("delete: %+v %v", del, err)
	}
	_, err = e.GetRoleDefinition(ctx, def.ID)
	wantCode(t, err, 404, "RoleDefinitionDoesNotExist")
	_, err = e.DeleteRoleDefinition(ctx, def.ID)
	wantCode(t, err, 404, "RoleDefinitionDoesNotExist")
	_, _, err = e.CreateAssignment(ctx, Assignment{Name: uuid.NewString(), Scope: testVault, RoleDefinitionID: def.ID, PrincipalID: p.ObjectID})
	wantCode(t, err, 400, "RoleDefinitionDoesNotExist")
}

func TestCustomRoleValidation(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t)
	taken := customRole(nil)
	if _, _, err := e.PutRoleDefinition(ctx, taken, "admin"); err != nil {
		t.Fatal(err)
	}
	many := make([]string, MaxActionsPerList+1)
	for i := range many {
		many[i] = "Microsoft.KeyVault/vaults/read"
	}
	cases := []struct {
		name   string
		d      RoleDefinition
		status int
		code   string
	}{
		{"fail/id-not-guid", customRole(func(d *RoleDefinition) { d.ID = "secret-setter" }), 400, "InvalidRoleDefinitionId"},
		{"fail/builtin-id", customRole(func(d *RoleDefinition) { d.ID = RoleOwner }), 403, "BuiltInRoleDefinitionImmutable"},
		{"fail/builtin-id-upper", customRole(func(d *RoleDefinition) { d.ID = strings.ToUpper(RoleKeyVaultReader) }), 403, "BuiltInRoleDefinitionImmutable"},
		{"fail/builtin-name", customRole(func(d *RoleDefinition) { d.RoleName = "key vault secrets user" }), 409, "RoleDefinitionWithSameNameExists"},
		{"fail/custom-name-taken", customRole(func(d *RoleDefinition) { d.RoleName = strings.ToUpper(taken.RoleName) }), 409, "RoleDefinitionWithSameNameExists"},
		{"fail/name-empty", customRole(func(d *RoleDefinition) { d.RoleName = "  " }), 400, "InvalidRoleDefinition"},
		{"fail/name-too-long", customRole(func(d *RoleDefinition) { d.RoleName = strings.Repeat("n", MaxRoleNameLen+1) }), 400, "InvalidRoleDefinition"},
		{"fail/name-control-char", customRole(func(d *RoleDefinition) { d.RoleName = "a\nb" }), 400, "InvalidRoleDefinition"},
		{"fail/description-too-long", customRole(func(d *RoleDefinition) { d.Description = strings.Repeat("d", MaxDescriptionLen+1) }), 400, "InvalidRoleDefinition"},
		{"fail/no-permissions", customRole(func(d *RoleDefinition) { d.Permissions = nil }), 400, "InvalidRoleDefinition"},
		{"fail/only-not-actions", customRole(func(d *RoleDefinition) { d.Permissions = []Permission{{NotActions: []string{"*"}}} }), 400, "InvalidRoleDefinition"},
		{"fail/too-many-blocks", customRole(func(d *RoleDefinition) {
			d.Permissions = make([]Permission, MaxPermissionBlocks+1)
			for i := range d.Permissions {
				d.Permissions[i] = Permission{Actions: []string{"*/read"}}
			}
		}), 400, "InvalidRoleDefinition"},
		{"fail/too-many-actions", customRole(func(d *RoleDefinition) { d.Permissions[0].Actions = many }), 400, "InvalidRoleDefinition"},
		{"fail/empty-action", customRole(func(d *RoleDefinition) { d.Permissions[0].Actions = []string{""} }), 400, "InvalidActionOrNotAction"},
		{"fail/action-with-space", customRole(func(d *RoleDefinition) {
			d.Permissions[0].DataActions = []string{"Microsoft.KeyVault/vaults/secrets/get Secret"}
		}), 400, "InvalidActionOrNotAction"},
		{"fail/action-without-slash", customRole(func(d *RoleDefinition) { d.Permissions[0].NotActions = []string{"read"} }), 400, "InvalidActionOrNotAction"},
		{"fail/action-too-long", customRole(func(d *RoleDefinition) {
			d.Permissions[0].Actions = []string{"Microsoft.X/" + strings.Repeat("a", MaxActionLen)}
		}), 400, "InvalidActionOrNotAction"},
		{"fail/action-too-many-stars", customRole(func(d *RoleDefinition) { d.Permissions[0].Actions = []string{"a/*/*/*/*/*/*/*"} }), 400, "InvalidActionOrNotAction"},
		{"fail/action-non-ascii", customRole(func(d *RoleDefinition) { d.Permissions[0].Actions = []string{"Microsoft.KeyVault/vaults/réad"} }), 400, "InvalidActionOrNotAction"},
		{"fail/no-assignable-scopes", customRole(func(d *RoleDefinition) { d.AssignableScopes = nil }), 400, "InvalidAssignableScope"},
		{"fail/bad-assignable-scope", customRole(func(d *RoleDefinition) { d.AssignableScopes = []string{"/tenants/x"} }), 400, "InvalidAssignableScope"},
		{"fail/too-many-assignable-scopes", customRole(func(d *RoleDefinition) {
			d.AssignableScopes = nil
			for range MaxAssignableScopes + 1 {
				d.AssignableScopes = append(d.AssignableScopes, "/subscriptions/"+uuid.NewString())
			}
		}), 400, "InvalidAssignableScope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := e.PutRoleDefinition(ctx, c.d, "admin")
			wantCode(t, err, c.status, c.code)
		})
	}
	t.Run("fail/delete-builtin", func(t *testing.T) {
		_, err := e.DeleteRoleDefinition(ctx, RoleKeyVaultSecretsUser)
		wantCode(t, err, 403, "BuiltInRoleDefinitionImmutable")
	})
	t.Run("ok/normalizes-scopes-and-actions", func(t *testing.T) {
		d := customRole(func(d *RoleDefinition) {
			d.AssignableScopes = []string{"subscriptions/" + testSub + "/", "/SUBSCRIPTIONS/" + testSub}
			d.Permissions[0].Actions = []string{" Microsoft.KeyVault/vaults/read "}
		})
		out, _, err := e.PutRoleDefinition(ctx, d, "admin")
		if err != nil {
			t.Fatal(err)
		}
		if len(out.AssignableScopes) != 1 || out.AssignableScopes[0] != "/subscriptions/"+testSub || out.Permissions[0].Actions[0] != "Microsoft.KeyVault/vaults/read" {
			t.Fatalf("normalized = %+v", out)
		}
	})
	t.Run("ok/builtin-via-get", func(t *testing.T) {
		d, err := e.GetRoleDefinition(ctx, "/providers/Microsoft.Authorization/roleDefinitions/"+RoleOperatorNexusKeyVaultWriter)
		if err != nil || d.RoleName != "Operator Nexus Key Vault Writer Service Role (Preview)" {
			t.Fatalf("%+v %v", d, err)
		}
	})
}
