package rotation

// Condition codes recorded in a credential's state, its alert and the
// cluster's ClusterState. Preflight codes keep a rotation from starting (or,
// once the target changed, keep the value ArchivePending).
const (
	CodeSecretArchiveNotConfigured     = "SecretArchiveNotConfigured"
	CodeIdentityNotConfigured          = "IdentityNotConfigured"
	CodeIdentityNotFound               = "IdentityNotFound"
	CodeVaultNotFound                  = "VaultNotFound"
	CodeVaultNotRbacMode               = "VaultNotRbacMode"
	CodeVaultFirewallEnabled           = "VaultFirewallEnabled"
	CodeMissingRoleAssignment          = "MissingRoleAssignment"
	CodeWrongRole                      = "WrongRole"
	CodeMissingManagedIdentityOperator = "MissingManagedIdentityOperator"
	CodeIdentityTenantMismatch         = "IdentityTenantMismatch"
	CodeEncryptionKeyInvalid           = "EncryptionKeyInvalid"
	CodeArchiveResolverUnavailable     = "ArchiveResolverUnavailable"

	// CodeArchivePending is ClusterState's code while a rotated value waits
	// for delivery; the credential's own code names the reason.
	CodeArchivePending = "ArchivePending"

	// Delivery failures reported by the vault data plane.
	CodeForbiddenByFirewall  = "ForbiddenByFirewall"
	CodeVaultUnauthorized    = "VaultUnauthorized"
	CodeSecretDeletedInVault = "SecretDeletedInVault"
	CodeVaultUnavailable     = "VaultUnavailable"
	CodeDeliveryFailed       = "DeliveryFailed"
	CodeTokenUnavailable     = "TokenUnavailable"

	// Target conditions.
	CodeManualChangeDetected     = "ManualChangeDetected"
	CodeTargetUnreachable        = "TargetUnreachable"
	CodeTargetSetFailed          = "TargetSetFailed"
	CodeInitialCredentialMissing = "InitialCredentialMissing"
	CodeUnsupportedEndpoint      = "UnsupportedEndpoint"
	CodeOwnerStateUnavailable    = "OwnerStateUnavailable"

	CodeInternal = "InternalError"
)

func isTargetCode(c string) bool {
	switch c {
	case CodeTargetUnreachable, CodeTargetSetFailed, CodeUnsupportedEndpoint, CodeOwnerStateUnavailable:
		return true
	}
	return false
}

// condition is why a step cannot proceed: public code and message.
type condition struct {
	code, msg string
}
