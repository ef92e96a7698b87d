// Package msi is the Microsoft.ManagedIdentity resource provider, registered
// on the ARM server (internal/arm). It owns the ARM side of user-assigned
// identities; the identities themselves (principals, client ids, tokens,
// attachments to resources, the managed-identity token endpoint) belong to
// internal/identity, and their role assignments to internal/authz.
//
// Resource types:
//
//	Microsoft.ManagedIdentity/userAssignedIdentities   PUT, PATCH, GET, DELETE, list (RG, subscription)
//	Microsoft.ManagedIdentity/identities               GET {scope}/providers/Microsoft.ManagedIdentity/identities/default
//
// The ARM record (location, tags, systemData, isolationScope) is stored here
// under rp/msi/uai/{sub}/{rg}/{name}, all lowercase, so listing a resource
// group or subscription is one prefix scan. Principal id, client id and
// tenant id are copied from identity when the identity is created.
//
// A subscription holds at most Options.MaxPerSubscription identities
// (keyhaven's own cap, default 4000; 409 QuotaExceeded).
//
// An identity's tenant is the tenant of its subscription (Options.Tenants,
// normally the ARM server); without it, the caller's tenant.
//
// Deleting an identity revokes its workload secret, deletes its principal
// (its tokens stop verifying at once) and every role assignment it holds
// (authz.Engine.DeleteForPrincipal). Resources that list it keep the
// reference, as in Azure; identity no longer renders it nor issues tokens for
// it. A resource group delete deletes its identities the same way.
//
// # keyhaven extensions: workload secrets
//
// Azure's App Service hands a workload IDENTITY_ENDPOINT and IDENTITY_HEADER,
// which an unmodified azidentity.ManagedIdentityCredential uses to get tokens.
// keyhaven lets a caller obtain that pair for a user-assigned identity:
//
//	POST .../userAssignedIdentities/{name}/issueWorkloadSecret?api-version=...
//	  200 {"identityEndpoint": Options.MIEndpoint, "identityHeader": "<secret>",
//	       "clientId": "...", "principalId": "..."}
//	POST .../userAssignedIdentities/{name}/revokeWorkloadSecret?api-version=...
//	  204
//
// The secret is bound to the identity's own resource, so it yields tokens
// for that identity only; the workload names it by client_id, mi_res_id or
// object_id (azidentity: ManagedIdentityCredentialOptions.ID). Issuing again
// replaces the previous secret. The secret is shown once and stored only as
// an HMAC by identity. (identity's token endpoint serves the identities a
// bound resource carries, so issuing also attaches the identity to its own
// resource ID; revoking and deleting remove that attachment.)
//
// Other providers use the same mechanism through
// Provider.IssueWorkloadSecretFor / RevokeWorkloadSecretFor with any resource
// ID: the secret then serves the identities that resource carries.
//
// Issuing and revoking are guarded like assigning the identity to a
// resource: the ARM core checks
// Microsoft.ManagedIdentity/userAssignedIdentities/assign/action on the
// identity for both (the type's ActionPermissions), which is what Managed
// Identity Operator grants.
//
// Store prefix: rp/msi/
package msi
