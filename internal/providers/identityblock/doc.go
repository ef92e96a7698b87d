// Package identityblock owns the ARM "identity" property of resources that
// carry managed identities (Network Cloud clusters and cluster managers,
// storage accounts, and later Stack Edge devices): the block a client sends,
// the check that the caller may assign each user-assigned identity it
// attaches (Microsoft.ManagedIdentity/userAssignedIdentities/assign/action,
// as ARM demands), applying it through the identity service, and rendering
// it back. The identities themselves live in internal/identity.
package identityblock
