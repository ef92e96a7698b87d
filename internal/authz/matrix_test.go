package authz

import (
	"fmt"
	"strings"
	"testing"
)

// secretOp is one Key Vault secret operation with its RBAC data action
// (docs conventions: secret operations are authorized at
// {vault}/secrets/{name}, list operations at the vault).
type secretOp struct {
	name       string
	action     string
	vaultScope bool
}

var secretOps = []secretOp{
	{"set", "Microsoft.KeyVault/vaults/secrets/setSecret/action", false},
	{"get", "Microsoft.KeyVault/vaults/secrets/getSecret/action", false},
	{"list", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", true},
	{"listVersions", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", true},
	{"update", "Microsoft.KeyVault/vaults/secrets/update/action", false},
	{"delete", "Microsoft.KeyVault/vaults/secrets/delete", false},
	{"getDeleted", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", false},
	{"listDeleted", "Microsoft.KeyVault/vaults/secrets/readMetadata/action", true},
	{"recover", "Microsoft.KeyVault/vaults/secrets/recover/action", false},
	{"purge", "Microsoft.KeyVault/vaults/secrets/purge/action", false},
	{"backup", "Microsoft.KeyVault/vaults/secrets/backup/action", false},
	{"restore", "Microsoft.KeyVault/vaults/secrets/restore/action", false},
}

func opSet(names ...string) map[string]bool {
	m := map[string]bool{}
	for _, n := range names {
		m[n] = true
	}
	return m
}

var allSecretOps = func() map[string]bool {
	m := map[string]bool{}
	for _, op := range secretOps {
		m[op.name] = true
	}
	return m
}()

var readMetadataOps = opSet("list", "listVersions", "getDeleted", "listDeleted")

// TestAuthorizationMatrix is the acceptance matrix: every built-in Key Vault
// role × every secret operation × assignment scopes from the subscription
// down to the secret, plus a sibling secret and another vault that must
// never grant.
func TestAuthorizationMatrix(t *testing.T) {
	roles := []struct {
		name    string
		id      string
		granted map[string]bool // operations the role grants where it applies
	}{
		{"Key Vault Administrator", RoleKeyVaultAdministrator, allSecretOps},
		{"Key Vault Secrets Officer", RoleKeyVaultSecretsOfficer, allSecretOps},
		{"Key Vault Secrets User", RoleKeyVaultSecretsUser, opSet("get", "list", "listVersions", "getDeleted", "listDeleted")},
		{"Key Vault Reader", RoleKeyVaultReader, readMetadataOps},
		{"Key Vault Crypto Officer", RoleKeyVaultCryptoOfficer, opSet()},
		{"Key Vault Crypto User", RoleKeyVaultCryptoUser, opSet()},
		{"Key Vault Certificates Officer", RoleKeyVaultCertificatesOfficer, opSet()},
		{"Key Vault Contributor", RoleKeyVaultContributor, opSet()},
		// Writes secrets but can neither read nor even list them.
		{"Operator Nexus Key Vault Writer Service Role (Preview)", RoleOperatorNexusKeyVaultWriter, opSet("set")},
	}
	const secret = "db-password"
	secretScope := testVault + "/secrets/" + secret
	scopes := []struct {
		name        string
		scope       string
		coversVault bool // applies to list operations at the vault
		coversItem  bool // applies to operations on the secret
	}{
		{"subscription", "/subscriptions/" + testSub, true, true},
		{"resourceGroup", testRG, true, true},
		{"vault", testVault, true, true},
		{"secret", secretScope, false, true},
		{"siblingSecret", testVault + "/secrets/db-password-old", false, false},
		{"otherVault", otherVault, false, false},
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
			for _, op := range secretOps {
				applies := sc.coversItem
				reqScope := secretScope
				if op.vaultScope {
					applies, reqScope = sc.coversVault, testVault
				}
				want := applies && r.granted[op.name]
				verdict := "fail"
				if want {
					verdict = "ok"
				}
				name := fmt.Sprintf("%s/%s/%s/%s", verdict, strings.ReplaceAll(r.name, " ", ""), sc.name, op.name)
				t.Run(name, func(t *testing.T) {
					d := decide(t, e, p, op.action, true, reqScope)
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
