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
// SHA-256. RedeemActivationKey (the device agent's side; its route is a
// follow-up) uses the key up, makes the device Online and returns the
// device identity's workload secret (msi.IssueWorkloadSecretFor), the vault
// URI and the CIK name.
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
// clear once recovered.
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
