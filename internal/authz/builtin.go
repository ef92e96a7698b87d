package authz

import (
	"slices"
	"strings"
)

// Built-in role definition IDs. These are Azure's real, tenant-independent
// GUIDs (from the Azure built-in roles reference, as of 2025).
const (
	RoleOwner                        = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
	RoleContributor                  = "b24988ac-6180-42a0-ab88-20f7382dd24c"
	RoleReader                       = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
	RoleUserAccessAdministrator      = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
	RoleKeyVaultAdministrator        = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
	RoleKeyVaultSecretsOfficer       = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
	RoleKeyVaultSecretsUser          = "4633458b-17de-408a-b874-0445c86b69e6"
	RoleKeyVaultReader               = "21090545-7ca7-4776-b22c-e363652d74d2"
	RoleKeyVaultCryptoOfficer        = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"
	RoleKeyVaultCryptoUser           = "12338af0-0e69-4776-bea7-57ae8d297424"
	RoleKeyVaultCryptoServiceEncUser = "e147488a-f6f5-4113-8e2d-b22465e65bf6"
	RoleKeyVaultCryptoReleaseUser    = "08bbd89e-9f13-488c-ac41-acfcb10c90ab"
	RoleKeyVaultCertificatesOfficer  = "a4417e6f-fecd-4de8-b567-7b0420556985"
	RoleKeyVaultCertificateUser      = "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba"
	RoleKeyVaultContributor          = "f25e0fa2-a7c8-4377-a976-54943a77a395"
	RoleManagedIdentityOperator      = "f1a07417-d97a-45cb-824c-7a7467783830"
	RoleManagedIdentityContributor   = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59"
	RoleOperatorNexusKeyVaultWriter  = "44f0a1a8-6fea-4b35-980a-8ff50c487c97"
)

// The control-plane actions every Key Vault data role carries in Azure.
var keyVaultDataRoleActions = []string{
	"Microsoft.Authorization/*/read",
	"Microsoft.Insights/alertRules/*",
	"Microsoft.Resources/deployments/*",
	"Microsoft.Resources/subscriptions/resourceGroups/read",
	"Microsoft.Support/*",
	"Microsoft.KeyVault/checkNameAvailability/read",
	"Microsoft.KeyVault/deletedVaults/read",
	"Microsoft.KeyVault/locations/*/read",
	"Microsoft.KeyVault/vaults/*/read",
	"Microsoft.KeyVault/operations/read",
}

const rbacOnly = " Only works for key vaults that use the 'Azure role-based access control' permission model."

func builtin(id, name, desc string, p Permission) RoleDefinition {
	return RoleDefinition{
		ID: id, RoleName: name, Description: desc, RoleType: BuiltInRole,
		Permissions: []Permission{{
			Actions:        cloneStrings(p.Actions),
			NotActions:     cloneStrings(p.NotActions),
			DataActions:    cloneStrings(p.DataActions),
			NotDataActions: cloneStrings(p.NotDataActions),
		}},
		AssignableScopes: []string{"/"},
	}
}

// builtinRoles is the built-in table, keyed by lower-case GUID. Names,
// descriptions and permissions are copied from Azure's published role JSON
// (learn.microsoft.com built-in roles: privileged, general, security,
// identity), except where a comment says otherwise.
var builtinRoles = func() map[string]RoleDefinition {
	defs := []RoleDefinition{
		builtin(RoleOwner, "Owner",
			"Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
			Permission{Actions: []string{"*"}}),
		builtin(RoleContributor, "Contributor",
			"Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
			Permission{Actions: []string{"*"}, NotActions: []string{
				"Microsoft.Authorization/*/Delete",
				"Microsoft.Authorization/*/Write",
				"Microsoft.Authorization/elevateAccess/Action",
				"Microsoft.Blueprint/blueprintAssignments/write",
				"Microsoft.Blueprint/blueprintAssignments/delete",
				"Microsoft.Compute/galleries/share/action",
				"Microsoft.Purview/consents/write",
				"Microsoft.Purview/consents/delete",
				"Microsoft.Resources/deploymentStacks/manageDenySetting/action",
				"Microsoft.Subscription/cancel/action",
				"Microsoft.Subscription/enable/action",
			}}),
		builtin(RoleReader, "Reader",
			"View all resources, but does not allow you to make any changes.",
			Permission{Actions: []string{"*/read"}}),
		builtin(RoleUserAccessAdministrator, "User Access Administrator",
			"Lets you manage user access to Azure resources.",
			Permission{Actions: []string{"*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"}}),
		builtin(RoleKeyVaultAdministrator, "Key Vault Administrator",
			"Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments."+rbacOnly,
			Permission{Actions: keyVaultDataRoleActions, DataActions: []string{"Microsoft.KeyVault/vaults/*"}}),
		builtin(RoleKeyVaultSecretsOfficer, "Key Vault Secrets Officer",
			"Perform any action on the secrets of a key vault, except manage permissions."+rbacOnly,
			Permission{Actions: keyVaultDataRoleActions, DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"}}),
		builtin(RoleKeyVaultSecretsUser, "Key Vault Secrets User",
			"Read secret contents."+rbacOnly,
			Permission{DataActions: []string{
				"Microsoft.KeyVault/vaults/secrets/getSecret/action",
				"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
			}}),
		builtin(RoleKeyVaultReader, "Key Vault Reader",
			"Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material."+rbacOnly,
			Permission{Actions: keyVaultDataRoleActions, DataActions: []string{
				"Microsoft.KeyVault/vaults/*/read",
				"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
			}}),
		builtin(RoleKeyVaultCryptoOfficer, "Key Vault Crypto Officer",
			"Perform any action on the keys of a key vault, except manage permissions."+rbacOnly,
			Permission{Actions: keyVaultDataRoleActions, DataActions: []string{
				"Microsoft.KeyVault/vaults/keys/*",
				"Microsoft.KeyVault/vaults/keyrotationpolicies/*",
			}}),
		builtin(RoleKeyVaultCryptoUser, "Key Vault Crypto User",
			"Perform cryptographic operations using keys."+rbacOnly,
			Permission{DataActions: []string{
				"Microsoft.KeyVault/vaults/keys/read",
				"Microsoft.KeyVault/vaults/keys/update/action",
				"Microsoft.KeyVault/vaults/keys/backup/action",
				"Microsoft.KeyVault/vaults/keys/encrypt/action",
				"Microsoft.KeyVault/vaults/keys/decrypt/action",
				"Microsoft.KeyVault/vaults/keys/wrap/action",
				"Microsoft.KeyVault/vaults/keys/unwrap/action",
				"Microsoft.KeyVault/vaults/keys/sign/action",
				"Microsoft.KeyVault/vaults/keys/verify/action",
			}}),
		builtin(RoleKeyVaultCryptoServiceEncUser, "Key Vault Crypto Service Encryption User",
			"Read metadata of keys and perform wrap/unwrap operations."+rbacOnly,
			Permission{
				Actions: []string{
					"Microsoft.EventGrid/eventSubscriptions/write",
					"Microsoft.EventGrid/eventSubscriptions/read",
					"Microsoft.EventGrid/eventSubscriptions/delete",
				},
				DataActions: []string{
					"Microsoft.KeyVault/vaults/keys/read",
					"Microsoft.KeyVault/vaults/keys/wrap/action",
					"Microsoft.KeyVault/vaults/keys/unwrap/action",
				}}),
		builtin(RoleKeyVaultCryptoReleaseUser, "Key Vault Crypto Service Release User",
			"Release keys."+rbacOnly,
			Permission{DataActions: []string{"Microsoft.KeyVault/vaults/keys/release/action"}}),
		builtin(RoleKeyVaultCertificatesOfficer, "Key Vault Certificates Officer",
			"Perform any action on the certificates of a key vault, except manage permissions."+rbacOnly,
			Permission{Actions: keyVaultDataRoleActions, DataActions: []string{
				"Microsoft.KeyVault/vaults/certificatecas/*",
				"Microsoft.KeyVault/vaults/certificates/*",
				"Microsoft.KeyVault/vaults/certificatecontacts/write",
			}}),
		builtin(RoleKeyVaultCertificateUser, "Key Vault Certificate User",
			"Read certificate contents."+rbacOnly,
			Permission{DataActions: []string{
				"Microsoft.KeyVault/vaults/certificates/read",
				"Microsoft.KeyVault/vaults/secrets/getSecret/action",
				"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
				"Microsoft.KeyVault/vaults/keys/read",
			}}),
		builtin(RoleKeyVaultContributor, "Key Vault Contributor",
			// Azure's JSON carries this short description; the docs page
			// heading uses a longer wording.
			"Lets you manage key vaults, but not access to them.",
			Permission{
				Actions: []string{
					"Microsoft.Authorization/*/read",
					"Microsoft.Insights/alertRules/*",
					"Microsoft.KeyVault/*",
					"Microsoft.Resources/deployments/*",
					"Microsoft.Resources/subscriptions/resourceGroups/read",
					"Microsoft.Support/*",
				},
				NotActions: []string{
					"Microsoft.KeyVault/locations/deletedVaults/purge/action",
					"Microsoft.KeyVault/hsmPools/*",
					"Microsoft.KeyVault/managedHsms/*",
				}}),
		builtin(RoleManagedIdentityOperator, "Managed Identity Operator",
			"Read and Assign User Assigned Identity",
			Permission{Actions: []string{
				"Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
				"Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
				"Microsoft.Authorization/*/read",
				"Microsoft.Insights/alertRules/*",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Resources/deployments/*",
				"Microsoft.Support/*",
			}}),
		builtin(RoleManagedIdentityContributor, "Managed Identity Contributor",
			"Create, Read, Update, and Delete User Assigned Identity",
			Permission{Actions: []string{
				"Microsoft.ManagedIdentity/userAssignedIdentities/read",
				"Microsoft.ManagedIdentity/userAssignedIdentities/write",
				"Microsoft.ManagedIdentity/userAssignedIdentities/delete",
				"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
				"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
				"Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
				"Microsoft.ManagedIdentity/userAssignedIdentities/revokeTokens/action",
				"Microsoft.Authorization/*/read",
				"Microsoft.Insights/alertRules/*",
				"Microsoft.Resources/subscriptions/resourceGroups/read",
				"Microsoft.Resources/deployments/*",
				"Microsoft.Support/*",
			}}),
		// Not in Microsoft Learn's built-in roles pages at the time of
		// writing; the permissions are Azure's role JSON as published by the
		// azure-rbac-catalog.org mirror of the live definition (updated
		// 2024-08-16): it may write secrets but not read or even list them.
		builtin(RoleOperatorNexusKeyVaultWriter, "Operator Nexus Key Vault Writer Service Role (Preview)",
			"(Preview) Provides Azure Operator Nexus services the ability to write to a Key Vault. This role is in preview and subject to change.",
			Permission{
				Actions:     []string{"Microsoft.KeyVault/vaults/read"},
				DataActions: []string{"Microsoft.KeyVault/vaults/secrets/setSecret/action"},
			}),
	}
	m := make(map[string]RoleDefinition, len(defs))
	for _, d := range defs {
		m[d.ID] = d
	}
	return m
}()

// BuiltinRoles returns copies of all built-in role definitions, ordered by
// role name.
func BuiltinRoles() []RoleDefinition {
	out := make([]RoleDefinition, 0, len(builtinRoles))
	for _, d := range builtinRoles {
		out = append(out, d.clone())
	}
	slices.SortFunc(out, func(a, b RoleDefinition) int { return strings.Compare(a.RoleName, b.RoleName) })
	return out
}

// BuiltinRole returns the built-in role with the given GUID (any case).
func BuiltinRole(id string) (RoleDefinition, bool) {
	d, ok := builtinRoles[strings.ToLower(id)]
	if !ok {
		return RoleDefinition{}, false
	}
	return d.clone(), true
}

// BuiltinRoleByName returns the built-in role with the given name, compared
// case-insensitively as Azure's roleName filter does.
func BuiltinRoleByName(name string) (RoleDefinition, bool) {
	for _, d := range builtinRoles {
		if strings.EqualFold(d.RoleName, name) {
			return d.clone(), true
		}
	}
	return RoleDefinition{}, false
}
