package authz

// Azure operation names the planes ask Decide about, so every caller uses
// the same strings. Secret data actions follow docs/conventions: a secret
// operation is authorized at {vault ID}/secrets/{name}, a list at the vault.
const (
	ActionSecretSet          = "Microsoft.KeyVault/vaults/secrets/setSecret/action"    // policy: set
	ActionSecretGet          = "Microsoft.KeyVault/vaults/secrets/getSecret/action"    // policy: get
	ActionSecretReadMetadata = "Microsoft.KeyVault/vaults/secrets/readMetadata/action" // policy: list (list, list versions, get/list deleted)
	ActionSecretUpdate       = "Microsoft.KeyVault/vaults/secrets/update/action"       // policy: set
	ActionSecretDelete       = "Microsoft.KeyVault/vaults/secrets/delete"              // policy: delete
	ActionSecretRecover      = "Microsoft.KeyVault/vaults/secrets/recover/action"      // policy: recover
	ActionSecretPurge        = "Microsoft.KeyVault/vaults/secrets/purge/action"        // policy: purge
	ActionSecretBackup       = "Microsoft.KeyVault/vaults/secrets/backup/action"       // policy: backup
	ActionSecretRestore      = "Microsoft.KeyVault/vaults/secrets/restore/action"      // policy: restore

	ActionRoleAssignmentRead   = "Microsoft.Authorization/roleAssignments/read"
	ActionRoleAssignmentWrite  = "Microsoft.Authorization/roleAssignments/write"
	ActionRoleAssignmentDelete = "Microsoft.Authorization/roleAssignments/delete"
	ActionRoleDefinitionRead   = "Microsoft.Authorization/roleDefinitions/read"
	ActionRoleDefinitionWrite  = "Microsoft.Authorization/roleDefinitions/write"
	ActionRoleDefinitionDelete = "Microsoft.Authorization/roleDefinitions/delete"
)
