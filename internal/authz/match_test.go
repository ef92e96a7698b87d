package authz

import (
	"strings"
	"testing"
)

func TestActionMatches(t *testing.T) {
	cases := []struct {
		name    string
		pattern string
		action  string
		want    bool
	}{
		{"ok/star-matches-anything", "*", "Microsoft.KeyVault/vaults/secrets/getSecret/action", true},
		{"ok/exact", "Microsoft.KeyVault/vaults/read", "Microsoft.KeyVault/vaults/read", true},
		{"ok/case-insensitive", "microsoft.keyvault/VAULTS/Read", "Microsoft.KeyVault/vaults/read", true},
		{"ok/trailing-star", "Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secrets/setSecret/action", true},
		{"ok/trailing-star-plain-delete", "Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secrets/delete", true},
		{"ok/leading-star", "*/read", "Microsoft.Compute/virtualMachines/read", true},
		{"ok/middle-star", "Microsoft.Authorization/*/read", "Microsoft.Authorization/roleAssignments/read", true},
		{"ok/middle-star-many-segments", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/versions/read", true},
		{"ok/middle-star-zero-segments", "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action", "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", true},
		{"ok/vaults-star-read-covers-vault-read", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/read", true},
		{"ok/star-inside-segment", "Microsoft.KeyVault/vaults/secrets/get*/action", "Microsoft.KeyVault/vaults/secrets/getSecret/action", true},
		{"ok/two-stars", "Microsoft.*/vaults/*", "Microsoft.KeyVault/vaults/keys/read", true},
		{"ok/star-write-mixed-case", "Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"fail/different-action", "Microsoft.KeyVault/vaults/secrets/getSecret/action", "Microsoft.KeyVault/vaults/secrets/setSecret/action", false},
		{"fail/prefix-only", "Microsoft.KeyVault/vaults/read", "Microsoft.KeyVault/vaults/readx", false},
		{"fail/other-namespace", "Microsoft.KeyVault/*", "Microsoft.KeyVaultX/vaults/read", false},
		{"fail/star-read-not-action", "*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", false},
		{"fail/vaults-star-read-not-getsecret", "Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/getSecret/action", false},
		{"fail/secrets-star-not-keys", "Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/keys/read", false},
		{"fail/suffix-must-match", "Microsoft.Authorization/*/read", "Microsoft.Authorization/roleAssignments/write", false},
		{"fail/zero-segment-needs-both-slashes", "Microsoft.A/b/*/c", "Microsoft.A/bc", false},
		{"fail/empty-action", "Microsoft.KeyVault/*", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := ActionMatches(c.pattern, c.action); got != c.want {
				t.Fatalf("ActionMatches(%q, %q) = %v, want %v", c.pattern, c.action, got, c.want)
			}
		})
	}
}

func TestExpandZeroSegmentIsBounded(t *testing.T) {
	p := "a" + strings.Repeat("/*", 12) + "/b"
	if n := len(expandZeroSegment(p)); n > maxPatternVariants {
		t.Fatalf("%d variants, limit %d", n, maxPatternVariants)
	}
}

func TestRoleAllowsBlocks(t *testing.T) {
	const (
		get  = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
		set  = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
		list = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
	)
	cases := []struct {
		name   string
		perms  []Permission
		action string
		data   bool
		want   bool
	}{
		{"ok/data-action-granted", []Permission{{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}}}, get, true, true},
		{"fail/notDataActions-subtracts", []Permission{{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}, NotDataActions: []string{get}}}, get, true, false},
		{"ok/notDataActions-leaves-others", []Permission{{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}, NotDataActions: []string{get}}}, set, true, true},
		{"ok/other-block-still-grants", []Permission{
			{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}, NotDataActions: []string{get}},
			{DataActions: []string{get}},
		}, get, true, true},
		{"ok/not-list-only-in-own-block", []Permission{
			{DataActions: []string{list}},
			{NotDataActions: []string{list}, DataActions: []string{set}},
		}, set, true, true},
		{"fail/data-action-not-matched-by-actions", []Permission{{Actions: []string{"*"}}}, get, true, false},
		{"fail/control-action-not-matched-by-dataActions", []Permission{{DataActions: []string{"*"}}}, "Microsoft.KeyVault/vaults/write", false, false},
		{"fail/notActions-subtracts", []Permission{{Actions: []string{"*"}, NotActions: []string{"Microsoft.Authorization/*/Write"}}}, "Microsoft.Authorization/roleAssignments/write", false, false},
		{"ok/notActions-do-not-touch-data", []Permission{{DataActions: []string{"*"}, NotActions: []string{get}}}, get, true, true},
		{"fail/empty-role", nil, get, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := RoleDefinition{Permissions: c.perms}
			if got := d.Allows(c.action, c.data); got != c.want {
				t.Fatalf("Allows(%s, data=%v) = %v, want %v", c.action, c.data, got, c.want)
			}
		})
	}
}

func TestBuiltinRoles(t *testing.T) {
	want := map[string]string{
		RoleOwner:                       "Owner",
		RoleContributor:                 "Contributor",
		RoleReader:                      "Reader",
		RoleUserAccessAdministrator:     "User Access Administrator",
		RoleKeyVaultAdministrator:       "Key Vault Administrator",
		RoleKeyVaultSecretsOfficer:      "Key Vault Secrets Officer",
		RoleKeyVaultSecretsUser:         "Key Vault Secrets User",
		RoleKeyVaultReader:              "Key Vault Reader",
		RoleKeyVaultCryptoOfficer:       "Key Vault Crypto Officer",
		RoleKeyVaultCryptoUser:          "Key Vault Crypto User",
		RoleKeyVaultCertificatesOfficer: "Key Vault Certificates Officer",
		RoleKeyVaultContributor:         "Key Vault Contributor",
		RoleManagedIdentityOperator:     "Managed Identity Operator",
		RoleManagedIdentityContributor:  "Managed Identity Contributor",
		RoleOperatorNexusKeyVaultWriter: "Operator Nexus Key Vault Writer Service Role (Preview)",
	}
	for id, name := range want {
		t.Run("ok/"+strings.ReplaceAll(name, " ", ""), func(t *testing.T) {
			d, ok := BuiltinRole(strings.ToUpper(id))
			if !ok || d.RoleName != name || d.RoleType != BuiltInRole || d.ID != id {
				t.Fatalf("BuiltinRole(%s) = %+v, %v", id, d, ok)
			}
			if len(d.AssignableScopes) != 1 || d.AssignableScopes[0] != "/" {
				t.Fatalf("assignable scopes = %v", d.AssignableScopes)
			}
			if byName, ok := BuiltinRoleByName(strings.ToLower(name)); !ok || byName.ID != id {
				t.Fatalf("BuiltinRoleByName(%q) = %s, %v", name, byName.ID, ok)
			}
		})
	}
	t.Run("ok/copies-are-independent", func(t *testing.T) {
		d, _ := BuiltinRole(RoleOwner)
		d.Permissions[0].Actions[0] = "nothing/read"
		again, _ := BuiltinRole(RoleOwner)
		if again.Permissions[0].Actions[0] != "*" {
			t.Fatal("mutating a returned built-in changed the table")
		}
	})
	t.Run("ok/owner-and-contributor-grant-no-data-actions", func(t *testing.T) {
		for _, id := range []string{RoleOwner, RoleContributor} {
			d, _ := BuiltinRole(id)
			if d.Allows("Microsoft.KeyVault/vaults/secrets/getSecret/action", true) {
				t.Fatalf("%s grants a data action", d.RoleName)
			}
		}
	})
	t.Run("ok/managed-identity-operator-assigns", func(t *testing.T) {
		d, _ := BuiltinRole(RoleManagedIdentityOperator)
		if !d.Allows("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", false) {
			t.Fatal("Managed Identity Operator does not grant assign/action")
		}
		if d.Allows("Microsoft.ManagedIdentity/userAssignedIdentities/write", false) {
			t.Fatal("Managed Identity Operator grants write")
		}
	})
	t.Run("fail/unknown", func(t *testing.T) {
		if _, ok := BuiltinRole("00000000-0000-0000-0000-000000000000"); ok {
			t.Fatal("unknown GUID found")
		}
	})
}

// BenchmarkMatch measures pattern matching on a compiled role, the inner loop
// of every Decide.
func BenchmarkMatch(b *testing.B) {
	d, _ := BuiltinRole(RoleKeyVaultSecretsOfficer)
	cr := compileRole(&d)
	action := strings.ToLower("Microsoft.KeyVault/vaults/secrets/getSecret/action")
	for b.Loop() {
		if !cr.allows(action, true) {
			b.Fatal("denied")
		}
	}
}
