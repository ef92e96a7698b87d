// Package databoxedge is the Microsoft.DataBoxEdge resource provider as the
// Azure Stack Edge guide "Manage Azure Stack Edge secrets using Azure Key
// Vault" uses it: dataBoxEdgeDevices (PUT, GET, PATCH, DELETE, lists), their
// alerts, and the key vault each device keeps its secrets in. Field names
// and enum values follow the public databoxedge API spec (2023-12-01).
//
// A device is created with a system-assigned identity (identityblock; a
// request without an identity block gets one, one without SystemAssigned is
// refused) and dataBoxEdgeDeviceStatus ReadyToSetup.
//
// Activation (POST .../generateActivationKey {"keyVaultName": optional},
// a keyhaven extension for the portal's step; needs write on the device,
// and the caller must be allowed Microsoft.KeyVault/vaults/write on the
// vault) composes the other providers' Go APIs; the first call creates, in
// the device's resource group:
//
//   - a standard-tier vault using the access-policy model (soft delete on),
//     named keyVaultName or "{device}-{6 hex}"; a name in use, also by a
//     soft-deleted vault, is a 409 KeyVaultNameInUse;
//   - an access policy granting the device identity secrets Get and Set only;
//   - a CanNotDelete lock on the vault (in the same transaction);
//   - a Standard_ZRS storage account tagged keyVaultName={vault}, locked
//     CanNotDelete;
//   - a diagnostic setting on the vault sending AuditEvent to that account;
//   - the Channel Integrity Key: 32 random bytes, base64, set as the secret
//     "ase-cik-{uuid}" through the vault data plane (vault.Service) as the
//     device identity, so it is sealed and audited like any secret.
//
// and returns an activation key. Later calls only issue a new key: "the key
// vault is not accessed". A setup interrupted midway is finished by the next
// call. An activation key is
//
//	khase1.{base64url(device resource ID)}.{base64url(32-byte one-time secret)}
//
// valid for ActivationKeyTTL; the device record keeps only the secret's
// SHA-256, compared in constant time. RedeemActivationKey uses the key up,
// makes the device Online and returns the device identity's workload secret
// (msi.IssueWorkloadSecretFor), the vault URI and the CIK name.
//
// # The device side (internal/edge is the agent)
//
// ActivationHandler serves POST /edge/activate {"activationKey": "..."}
// outside ARM: no bearer token, the key is the credential. Bodies are
// limited to 4 KiB, each client address to 10 attempts and then one per 6
// seconds (429). A valid key answers ActivationResponse once: deviceId,
// tenantId, clientId, principalId, resourceManager, identityEndpoint (the
// front door's /msi/token) and identityHeader (the App Service protocol's
// IDENTITY_ENDPOINT / IDENTITY_HEADER), vaultAudience, keyVaultId,
// keyVaultUri, channelIntegrityKeyName and deviceSecretNames (the vault
// secret names of SystemVolumeBitLockerRecoveryKey, "ase-bitlocker-{uuid}",
// and BMCDefaultUserPassword, "ase-bmc-{uuid}"). Anything else is a 401
// InvalidActivationKey. The server's audit middleware writes one event
// (operationName DataBoxEdgeDeviceActivate; on success resourceId is the
// device and the caller its identity); events hold metadata only, never
// the key or the workload secret.
//
// SelfDecider (wired around the ARM server's decider) lets a device's own
// system-assigned identity — a managed-identity token whose xms_mirid is
// the device — perform getExtendedInformation and updateExtendedInformation
// on that device and nothing else, without a role assignment: the agent
// reads keyVaultSyncStatus and reports its sync as the device.
//
// updateExtendedInformation takes, besides the spec's patch, two keyhaven
// extensions: keyVaultSyncError (the device's reason with syncStatus
// KeyVaultSyncFailed, at most 500 printable characters) and deviceSecrets
// ({DeviceSecretName: {"keyVaultId": secret version ID in the device's
// vault}}; an encryptedSecret or any value is refused). getExtendedInformation
// renders deviceSecrets as the spec's map of Secret with keyVaultId only —
// the CIK ("ChannelIntegrityKey") and the references the device reported
// into the current vault — never a value; keyVaultSyncError while failed,
// and keyVaultSyncTime (the last KeyVaultSynced report).
//
// POST .../syncDeviceSecrets (keyhaven extension for the portal's "Sync
// device secrets"; needs write on the device; the device must be
// activated) sets keyVaultSyncStatus KeyVaultSyncPending: the agent pushes
// every device secret on its next pass. Each request to push (this and
// recoverKeyVault) gets a new keyVaultSyncRequestId, rendered while
// pending; a KeyVaultSynced report echoing another id (a push that began
// before the request) leaves the device pending. A report without the
// field (an operator's update-extended-info) is taken as is.
//
// getExtendedInformation and updateExtendedInformation (POST, as in the
// spec) render and take DataBoxEdgeDeviceExtendedInfo: channelIntegrityKey
// Name/Version, clientSecretStoreId (vault ID), clientSecretStoreUrl (vault
// URI), keyVaultSyncStatus (KeyVaultSyncFailed while the vault is gone or
// the identity lacks access).
//
// Alerts (GET .../alerts) are computed on read: a Critical
// KeyVaultDeletedEvent while the vault is soft-deleted or purged, a
// Critical KeyVaultAccessPolicyMissingEvent while the identity lacks Get or
// Set; an activated device with a critical alert is NeedsAttention. Both
// clear once recovered. Otherwise, while the device's last report is
// KeyVaultSyncFailed, a Warning KeyVaultSyncFailedEvent carries its reason
// (cleared by its next KeyVaultSynced, recoverKeyVault or syncDeviceSecrets).
//
// POST .../recoverKeyVault {"keyVaultName": optional} (keyhaven extension
// for the portal's "Reconfigure") recovers a soft-deleted vault with its
// name and re-places its lock, or after a purge creates a new vault (the
// given or a default name) with a new CIK; it recreates a missing storage
// account (with lock) and the diagnostic setting, grants the identity's
// Get/Set again, and sets keyVaultSyncStatus KeyVaultSyncPending: pushing
// the device's secrets is the device agent's job.
//
// DELETE ...?deleteKeyVault=true (keyhaven extension: the guide's consent)
// also removes the vault's lock and soft-deletes the vault (the caller must
// be allowed Microsoft.KeyVault/vaults/delete on it); without it the vault
// stays. The device's identity is removed either way.
//
// Store prefix: rp/databoxedge/
//
//	rp/databoxedge/devices/{sub}/{rg}/{name}   one record per device (lower case)
package databoxedge
