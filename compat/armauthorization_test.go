package compat_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/google/uuid"
)

// TestARMAuthorization drives armauthorization/v2: built-in role
// definitions, and role assignments at a vault's scope.
func TestARMAuthorization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	defs, err := armauthorization.NewRoleDefinitionsClient(e.admin, e.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	assignments, err := armauthorization.NewRoleAssignmentsClient(e.sub, e.admin, e.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	subScope := "/subscriptions/" + e.sub
	const secretsUserName = "Key Vault Secrets User"
	var secretsUserID string

	t.Run("ok/list-built-in-definitions", func(t *testing.T) {
		var names []string
		pager := defs.NewListPager(subScope, nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page.Value {
				if d.Properties == nil || d.Properties.RoleName == nil {
					t.Fatalf("definition without properties: %v", deref(d.ID))
				}
				names = append(names, *d.Properties.RoleName)
				if *d.Properties.RoleName == secretsUserName {
					secretsUserID = *d.ID
					if *d.Name != roleKeyVaultSecretsUser || deref(d.Properties.RoleType) != "BuiltInRole" {
						t.Errorf("%s: name %v type %v", secretsUserName, *d.Name, d.Properties.RoleType)
					}
				}
			}
		}
		for _, want := range []string{"Owner", "Contributor", "Reader", "Key Vault Administrator",
			"Key Vault Secrets Officer", secretsUserName} {
			if !slices.Contains(names, want) {
				t.Errorf("built-in %q not listed (got %v)", want, names)
			}
		}
		if !strings.HasSuffix(strings.ToLower(secretsUserID), "/providers/microsoft.authorization/roledefinitions/"+roleKeyVaultSecretsUser) {
			t.Errorf("Key Vault Secrets User id = %q", secretsUserID)
		}
	})

	t.Run("ok/list-filter-by-role-name", func(t *testing.T) {
		pager := defs.NewListPager(subScope, &armauthorization.RoleDefinitionsClientListOptions{
			Filter: to.Ptr("roleName eq '" + secretsUserName + "'"),
		})
		var got []string
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page.Value {
				got = append(got, *d.Name)
			}
		}
		if len(got) != 1 || got[0] != roleKeyVaultSecretsUser {
			t.Errorf("filtered = %v", got)
		}
	})

	t.Run("ok/get-definition", func(t *testing.T) {
		res, err := defs.Get(ctx, subScope, roleKeyVaultSecretsUser, nil)
		if err != nil {
			t.Fatal(err)
		}
		if deref(res.Properties.RoleName) != secretsUserName || len(res.Properties.Permissions) == 0 {
			t.Fatalf("definition = %+v", res.Properties)
		}
		var data []string
		for _, p := range res.Properties.Permissions {
			for _, a := range p.DataActions {
				data = append(data, *a)
			}
		}
		if !slices.Contains(data, "Microsoft.KeyVault/vaults/secrets/getSecret/action") {
			t.Errorf("dataActions = %v", data)
		}
		byID, err := defs.GetByID(ctx, deref(res.ID), nil)
		if err == nil && deref(byID.Properties.RoleName) != secretsUserName {
			t.Errorf("get by id = %+v", byID.Properties)
		}
		if err != nil {
			t.Errorf("get by id: %v", err)
		}
		_, err = defs.Get(ctx, subScope, uuid.NewString(), nil)
		wantResponseError(t, "get unknown definition", err, http.StatusNotFound, "RoleDefinitionDoesNotExist")
	})

	// A custom role through the SDK: create, replace, read, list, delete.
	t.Run("ok/custom-role-lifecycle", func(t *testing.T) {
		roleID := uuid.NewString()
		def := func(desc string, actions ...string) armauthorization.RoleDefinition {
			return armauthorization.RoleDefinition{Properties: &armauthorization.RoleDefinitionProperties{
				RoleName:         to.Ptr("compat secret reader " + roleID[:8]),
				Description:      to.Ptr(desc),
				RoleType:         to.Ptr("CustomRole"),
				AssignableScopes: []*string{to.Ptr(subScope)},
				Permissions: []*armauthorization.Permission{{
					DataActions: to.SliceOfPtrs(actions...),
				}},
			}}
		}
		created, err := defs.CreateOrUpdate(ctx, subScope, roleID, def("v1", "Microsoft.KeyVault/vaults/secrets/getSecret/action"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if deref(created.Name) != roleID || deref(created.Properties.RoleType) != "CustomRole" ||
			deref(created.Properties.Description) != "v1" {
			t.Fatalf("created = %v %+v", deref(created.Name), created.Properties)
		}
		updated, err := defs.CreateOrUpdate(ctx, subScope, roleID, def("v2",
			"Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if deref(updated.Properties.Description) != "v2" {
			t.Errorf("updated description = %v", deref(updated.Properties.Description))
		}
		got, err := defs.Get(ctx, subScope, roleID, nil)
		if err != nil {
			t.Fatal(err)
		}
		var data []string
		for _, p := range got.Properties.Permissions {
			for _, a := range p.DataActions {
				data = append(data, *a)
			}
		}
		if len(data) != 2 || !slices.Contains(data, "Microsoft.KeyVault/vaults/secrets/readMetadata/action") {
			t.Errorf("dataActions after update = %v", data)
		}
		listed := false
		pager := defs.NewListPager(subScope, &armauthorization.RoleDefinitionsClientListOptions{
			Filter: to.Ptr("type eq 'CustomRole'"),
		})
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page.Value {
				if deref(d.Properties.RoleType) != "CustomRole" {
					t.Errorf("type filter returned %v (%v)", deref(d.Name), deref(d.Properties.RoleType))
				}
				listed = listed || deref(d.Name) == roleID
			}
		}
		if !listed {
			t.Error("custom role not listed under type eq 'CustomRole'")
		}
		if _, err := defs.Delete(ctx, subScope, roleID, nil); err != nil {
			t.Fatal(err)
		}
		_, err = defs.Get(ctx, subScope, roleID, nil)
		wantResponseError(t, "get deleted custom role", err, http.StatusNotFound, "RoleDefinitionDoesNotExist")
		_, err = defs.Delete(ctx, subScope, roleKeyVaultSecretsUser, nil)
		if err == nil {
			t.Fatal("deleting a built-in role succeeded")
		}
	})

	// Role assignments at a vault's scope, for a service principal.
	const rg, vaultName = "rg-arm-authz", "kv-compat-authz"
	e.createResourceGroup(t, rg)
	vaultID := e.createVault(t, rg, vaultName)
	sp := e.createServicePrincipal(t, "compat-authz")
	name := uuid.NewString()

	t.Run("ok/create-assignment", func(t *testing.T) {
		res, err := assignments.Create(ctx, vaultID, name, armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr(e.roleDefinitionID(roleKeyVaultSecretsUser)),
				PrincipalID:      to.Ptr(sp.ObjectID),
				PrincipalType:    to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkAssignment(t, res.RoleAssignment, vaultID, name, sp.ObjectID)
	})

	t.Run("ok/get-assignment", func(t *testing.T) {
		res, err := assignments.Get(ctx, vaultID, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkAssignment(t, res.RoleAssignment, vaultID, name, sp.ObjectID)
		byID, err := assignments.GetByID(ctx, *res.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkAssignment(t, byID.RoleAssignment, vaultID, name, sp.ObjectID)
	})

	t.Run("ok/list-for-scope", func(t *testing.T) {
		// The SDK sends this $filter without URL-encoding it (the spec marks
		// it x-ms-skip-url-encoding), so callers encode it themselves; Azure
		// too refuses raw spaces with 400 (Azure/azure-sdk-for-go#20847).
		byPrincipal := url.QueryEscape("principalId eq '" + sp.ObjectID + "'")
		for _, filter := range []*string{nil, to.Ptr("atScope()"), to.Ptr(byPrincipal)} {
			found := false
			pager := assignments.NewListForScopePager(vaultID, &armauthorization.RoleAssignmentsClientListForScopeOptions{Filter: filter})
			for pager.More() {
				page, err := pager.NextPage(ctx)
				if err != nil {
					t.Fatalf("filter %v: %v", deref(filter), err)
				}
				for _, a := range page.Value {
					if *a.Name == name {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("filter %q: assignment not listed", deref(filter))
			}
		}
	})

	t.Run("fail/duplicate-assignment", func(t *testing.T) {
		_, err := assignments.Create(ctx, vaultID, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr(e.roleDefinitionID(roleKeyVaultSecretsUser)),
				PrincipalID:      to.Ptr(sp.ObjectID),
				PrincipalType:    to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil)
		wantResponseError(t, "duplicate assignment", err, http.StatusConflict, "RoleAssignmentExists")
	})

	t.Run("fail/unknown-principal", func(t *testing.T) {
		_, err := assignments.Create(ctx, vaultID, uuid.NewString(), armauthorization.RoleAssignmentCreateParameters{
			Properties: &armauthorization.RoleAssignmentProperties{
				RoleDefinitionID: to.Ptr(e.roleDefinitionID(roleKeyVaultSecretsUser)),
				PrincipalID:      to.Ptr(uuid.NewString()),
				PrincipalType:    to.Ptr(armauthorization.PrincipalTypeServicePrincipal),
			},
		}, nil)
		wantResponseError(t, "unknown principal", err, http.StatusBadRequest, "PrincipalNotFound")
	})

	t.Run("ok/delete-assignment", func(t *testing.T) {
		res, err := assignments.Delete(ctx, vaultID, name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ID != nil {
			checkAssignment(t, res.RoleAssignment, vaultID, name, sp.ObjectID)
		}
		_, err = assignments.Get(ctx, vaultID, name, nil)
		wantResponseError(t, "get deleted assignment", err, http.StatusNotFound, "RoleAssignmentNotFound")
	})
}

func checkAssignment(t *testing.T, a armauthorization.RoleAssignment, scope, name, principalID string) {
	t.Helper()
	if deref(a.ID) != scope+"/providers/Microsoft.Authorization/roleAssignments/"+name || deref(a.Name) != name ||
		deref(a.Type) != "Microsoft.Authorization/roleAssignments" {
		t.Errorf("id/name/type = %v %v %v", deref(a.ID), deref(a.Name), deref(a.Type))
	}
	p := a.Properties
	if p == nil {
		t.Fatal("no properties")
	}
	if deref(p.PrincipalID) != principalID || !strings.EqualFold(deref(p.Scope), scope) ||
		!strings.HasSuffix(deref(p.RoleDefinitionID), "/"+roleKeyVaultSecretsUser) {
		t.Errorf("properties = principal %v scope %v role %v", deref(p.PrincipalID), deref(p.Scope), deref(p.RoleDefinitionID))
	}
	if p.PrincipalType == nil || *p.PrincipalType != armauthorization.PrincipalTypeServicePrincipal {
		t.Errorf("principalType = %v", p.PrincipalType)
	}
}
