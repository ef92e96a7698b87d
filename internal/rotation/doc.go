// Package rotation owns managed-credential rotation: which credentials are
// due, the durable rotation state machine, and delivery of every new value
// into the customer's vault through the vault data plane (the Operator Nexus
// guide). contract.go is the contract with the networkcloud provider;
// Service implements its Engine. Target drivers live in rotation/drivers.
//
// # Delivery goes through the front door
//
// The engine never writes a vault's storage. It asks identity for a token of
// the archive identity (audience Config.VaultAudience) and PUTs
// {vaultUri}secrets/{name}?api-version=7.5 over HTTPS to keyhaven's own
// listener (HTTPVaultClient), so authentication, firewall, RBAC and audit
// apply as to any client. On the cluster-manager path the token is issued
// with identity.Trusted(), which makes the data plane treat it as a trusted
// platform service (passes a firewall with bypass AzureServices).
//
// # State machine (per credential, store prefix rotation/)
//
//	Idle --due--> preflight --ok--> SetIntent --target set+verified--> ArchivePending --delivered--> Idle
//	                  |fail                |neither value accepted              |fail
//	                  v                    v                                    v
//	        Idle + code, alert,    Halted (ManualChangeDetected)     ArchivePending + code,
//	        retry with backoff     no retry until an operator acts   alert, retry with backoff
//
// Due: a new credential at once (rotation at deployment), then
// lastRotation + rotationPeriodDays, or on demand (RequestRotation).
// Every step is persisted before the next external action:
//
//   - SetIntent: the new value is generated (crypto/rand) and persisted
//     sealed (scope "rotation", AAD bound to the credential and value id)
//     BEFORE the target is touched. On resume the engine logs in with the
//     last archived value: accepted → set the new one and verify it;
//     rejected → try the pending one: accepted → the set already happened;
//     rejected → ManualChangeDetected (halt, alert; never retried blindly).
//     Recovery: UpsertTargets with Initial = the credential now in force, or
//     RequestRotation after restoring it (one more probe).
//   - ArchivePending: the target holds the new value, kept sealed here until
//     the vault accepts it as a new version; preflight runs again on every
//     attempt so configuration fixes take effect. Success records the
//     secretArchiveReference and lastRotationTime and clears the alert.
//
// Exactly once: a crash between the vault accepting a version and the
// engine recording it re-delivers the same value on resume with the same
// "deliveryId" tag (the writer role cannot read the vault to learn whether
// the first attempt landed); the vault data plane treats a set repeating the
// latest version's deliveryId and value as the same delivery and adds no
// version (vault.DeliveryTag). The target itself is never changed twice for
// one rotation.
//
// # Replicas
//
// RunOnce lists rotation/due/{time}/{credID} entries up to now and claims
// each with a lease record rotation/lease/{credID} {owner, expires}, written
// in a serializable transaction under a precondition (Absent, or the
// version of an expired lease): the SKIP LOCKED equivalent. Every step
// renews the lease in the same transaction as its state write (CAS on both),
// so a replica that lost its lease stops; a killed replica's work is taken
// over when its lease expires (LeaseTTL).
//
// # Preflight conditions (codes)
//
// Checked, in order, before a rotation starts and before every delivery:
// SecretArchiveNotConfigured (or the resolver's code, e.g.
// IdentityNotConfigured), IdentityNotFound (removed or disabled),
// VaultNotFound (deleted, or the configured vault ID names another vault),
// VaultNotRbacMode (access policies), IdentityTenantMismatch,
// VaultFirewallEnabled (cluster-identity path with the firewall on, or the
// cluster-manager path without bypass AzureServices),
// MissingManagedIdentityOperator (user-assigned identity: the platform
// principal lacks userAssignedIdentities/assign/action on it),
// WrongRole (assignments covering the vault, none with setSecret) or
// MissingRoleAssignment, EncryptionKeyInvalid. Data-plane refusals map to
// ForbiddenByFirewall, MissingRoleAssignment (ForbiddenByRbac),
// VaultNotRbacMode (AccessDenied), VaultNotFound, VaultUnauthorized,
// SecretDeletedInVault, VaultUnavailable. Target conditions:
// TargetUnreachable, TargetSetFailed, InitialCredentialMissing,
// UnsupportedEndpoint, ManualChangeDetected. ClusterState reports the worst
// (CredentialExpired > ManualChangeDetected > preflight code >
// ArchivePending: reason > target).
//
// # Expiry (expirePeriodDays)
//
// The value a target accepts may not be older than expirePeriodDays. Its age
// counts from when it was set: RotatedAt while ArchivePending (the target
// holds the new value already), else the last archived rotation
// (lastRotationTime), else, for a never-rotated credential, its first
// rotation request (TrackedSince: the deployment's RequestRotation; a
// credential registered with its cluster but not deployed is not tracked).
// SetIntent and Halted count from the last archived value: keyhaven cannot
// vouch for a younger one. CredentialNearExpiry is raised when less than
// 10% of the period or 7 days (whichever is smaller) remain, e.g. at 83 of
// 90 days; CredentialExpired when the age reaches the period; delivering a
// value does not make it younger, a rotation does, and clears either alert.
// The expiry alert is a second slot of the credential (ExpiryAlertID) next
// to the one for its condition, so both are active at once. ClusterState
// reports CredentialExpired (naming the blocking condition), and appends
// the expiry time to a blocked credential's condition when near expiry; a
// near-expiry credential that is not blocked leaves the cluster Running
// (set rotationPeriodDays below the start of the window to never see one).
//
// Expiry does not depend on rotations succeeding: every record write keeps
// rotation/expiry/{time}/{credID} at the next moment the condition changes
// by time alone. RunOnce, after its rotations, takes the entries up to now
// and, in one transaction each (CAS on the record, no lease; skipped while
// a live lease is held), raises, replaces or clears the expiry alert. It
// never changes NextAt, Attempts or the phase: a blocked rotation is not
// retried sooner, a halted one stays halted. Writes of the rotation path
// only clear expiry alerts; when they would raise one they make the check
// due now instead, so a rotation finishing in the same pass raises nothing.
//
// # Secret names and values
//
// SecretName: "{cluster}-{owner}-{kind}-{hash10}", parts reduced to
// [0-9A-Za-z-], at most 127 characters, hash = SHA-256 of the lower-cased
// cluster ID, owner ID and kind; one vault serves any number of clusters.
// Tags: managedBy, clusterId, clusterName, ownerId, ownerName,
// credentialType, username, deliveryId. Values: BMC and storage
// administrator passwords as text/plain (16–20 characters, all four
// classes); console user as application/json {password, sshPrivateKey
// (OpenSSH PEM, ed25519), sshPublicKey}; local path storage key as base64 of
// 32 random bytes. With an encryptionPublicKey (RSA ≥ 3072 bits) the value is
// an EncryptedValue JSON (contentType EnvelopeContentType).
//
// # Alerts
//
// rotation/alerts/{clusterHash}/{id}: at most two active alerts per
// credential, one while it has a condition and one while it is near expiry
// or expired; a changed condition clears the old alert and raises a new
// one; success (a rotation, for the expiry alert) clears it (clearedAt).
// Alerts and AlertsHandler read them.
package rotation
