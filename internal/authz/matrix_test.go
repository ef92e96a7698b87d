package authz

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// secretDataActions are the secret data actions the data plane asks about.
// Which operation needs which action, and at which scope, is the data
// plane's business: internal/vault's TestRBACMatrix checks that through real
// requests. Here every action is asked at both scopes an operation can use.
var secretDataActions = []string{
	ActionSecretSet, ActionSecretGet, ActionSecretReadMetadata, ActionSecretUpdate, ActionSecretDelete,
	ActionSecretRecover, ActionSecretPurge, ActionSecretBackup, ActionSecretRestore,
}

// TestRoleSecretDataActions is the engine-level matrix: every built-in role
// × every secret data action × assignment scope, asked at the secret and at
// the vault. What each role grants is written from Azure's role definitions.
func TestRoleSecretDataActions(t *testing.T) {
	type roleRow struct {
		id, name string
		grants   []string // secret data actions granted
	}
	readValues := []string{ActionSecretGet, ActionSecretReadMetadata}
	roles := []roleRow{
		{RoleKeyVaultAdministrator, "Key Vault Administrator", secretDataActions},    // vaults/*
		{RoleKeyVaultSecretsOfficer, "Key Vault Secrets Officer", secretDataActions}, // vaults/secrets/*
		{RoleKeyVaultSecretsUser, "Key Vault Secrets User", readValues},
		{RoleKeyVaultCertificateUser, "Key Vault Certificate User", readValues},
		// vaults/*/read matches no secret action; readMetadata is listed.
		{RoleKeyVaultReader, "Key Vault Reader", []string{ActionSecretReadMetadata}},
		{RoleKeyVaultCryptoOfficer, "Key Vault Crypto Officer", nil},
		{RoleKeyVaultCryptoUser, "Key Vault Crypto User", nil},
		{RoleKeyVaultCryptoServiceEncUser, "Key Vault Crypto Service Encryption User", nil},
		{RoleKeyVaultCryptoReleaseUser, "Key Vault Crypto Service Release User", nil},
		{RoleKeyVaultCertificatesOfficer, "Key Vault Certificates Officer", nil},
		{RoleKeyVaultContributor, "Key Vault Contributor", nil},
		// Writes secrets but can neither read nor even list them.
		{RoleOperatorNexusKeyVaultWriter, "Operator Nexus Key Vault Writer Service Role (Preview)", []string{ActionSecretSet}},
		// Actions, even "*", never grant data actions.
		{RoleOwner, "Owner", nil},
		{RoleContributor, "Contributor", nil},
		{RoleReader, "Reader", nil},
		{RoleUserAccessAdministrator, "User Access Administrator", nil},
		{RoleManagedIdentityOperator, "Managed Identity Operator", nil},
		{RoleManagedIdentityContributor, "Managed Identity Contributor", nil},
	}
	for _, def := range BuiltinRoles() {
		if !slices.ContainsFunc(roles, func(r roleRow) bool { return r.id == def.ID }) {
			t.Fatalf("built-in role %q has no row in the matrix", def.RoleName)
		}
	}

	const secret = "db-password"
	secretScope := testVault + "/secrets/" + secret
	requests := []struct{ name, scope string }{{"atSecret", secretScope}, {"atVault", testVault}}
	scopes := []struct {
		name   string
		scope  string
		covers map[string]bool // request names the assignment applies to
	}{
		{"subscription", "/subscriptions/" + testSub, map[string]bool{"atSecret": true, "atVault": true}},
		{"resourceGroup", testRG, map[string]bool{"atSecret": true, "atVault": true}},
		{"vault", testVault, map[string]bool{"atSecret": true, "atVault": true}},
		{"secret", secretScope, map[string]bool{"atSecret": true}},
		{"siblingSecret", testVault + "/secrets/db-password-old", nil},
		{"otherVault", otherVault, nil},
	}

	e, _, _ := newTestEngine(t)
	for _, r := range roles {
		def, ok := BuiltinRole(r.id)
		if !ok || def.RoleName != r.name {
			t.Fatalf("built-in %s: got %q, %v", r.id, def.RoleName, ok)
		}
		for _, sc := range scopes {
			p := newPrincipal()
			mustAssign(t, e, p, r.id, sc.scope)
			for _, action := range secretDataActions {
				for _, rq := range requests {
					want := sc.covers[rq.name] && slices.Contains(r.grants, action)
					verdict := "fail"
					if want {
						verdict = "ok"
					}
					short := strings.TrimPrefix(action, "Microsoft.KeyVault/vaults/secrets/")
					name := fmt.Sprintf("%s/%s/%s/%s/%s", verdict, strings.ReplaceAll(r.name, " ", ""), sc.name, short, rq.name)
					t.Run(name, func(t *testing.T) {
						d := decide(t, e, p, action, true, rq.scope)
						if d.Allowed != want {
							t.Fatalf("Allowed = %v, want %v (reason: %s)", d.Allowed, want, d.Reason)
						}
						if want {
							if !strings.Contains(d.Reason, "'"+r.name+"'") || d.AssignmentID == "" {
								t.Fatalf("grant reason/assignment missing: %q %q", d.Reason, d.AssignmentID)
							}
						} else if !strings.Contains(d.Reason, "no role assignment grants") {
							t.Fatalf("deny reason = %q", d.Reason)
						}
					})
				}
			}
		}
	}
}
