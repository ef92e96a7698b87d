// Package edge is the Azure Stack Edge device agent: the device side of the
// guide "Manage Azure Stack Edge secrets using Azure Key Vault"
// (internal/providers/databoxedge is the service side). It is a client of
// keyhaven like any other — HTTPS only, no server package imported — and
// is driven by `keyhaven edge activate` and `keyhaven edge agent`.
//
// # Activation
//
// Activate presents the device's activation key once at POST
// {server}/edge/activate (no bearer token: the key is the credential) and
// receives the device resource ID, the managed-identity endpoint with the
// device identity's workload secret (the App Service protocol's
// IDENTITY_ENDPOINT / IDENTITY_HEADER), the ARM and vault token audiences,
// the vault URI, the Channel Integrity Key's secret name and the names of
// the device secrets in the vault. It generates the device secrets the agent
// holds — a BitLocker recovery key (48 digits, eight groups of six, each a
// multiple of 11, as BitLocker's recovery passwords are) and a BMC user
// password (24 characters of four classes) — and writes the state directory:
//
//	{state-dir}/            0700
//	  device.key            0600  32 random bytes: the local sealing key
//	  device.json           0600  the device's configuration; secrets sealed
//	  ca.pem                0600  the server's CA (copied from --ca-file)
//
// Everything secret in device.json (the workload secret, the device secrets,
// the CIK) is sealed with AES-256-GCM (crypto/aes, crypto/cipher) under
// device.key, a random 96-bit nonce per value, and additional data binding
// the value to its field and to the device ID, so no plaintext secret is
// ever written to the state directory. (internal/seal's envelope needs a
// store and a root keyring; a device has one file, so it uses the same
// primitive directly.) Files are written through a temporary file and a
// rename; a key or state file readable by group or others is refused.
//
// # Agent passes
//
// Each pass (Agent.Pass; `keyhaven edge agent --once`, or every --interval):
//
//  1. gets tokens from the managed-identity endpoint with the workload
//     secret (GET {identityEndpoint}?api-version=2019-08-01&resource=...,
//     header X-IDENTITY-HEADER — exactly what azidentity's
//     ManagedIdentityCredential does in App Service);
//  2. reads the device's extended information as the device identity (POST
//     {device}/getExtendedInformation; the service lets a device's own
//     system-assigned identity get and update its own extended information)
//     and follows the vault it names (after a purge, recovery creates a new
//     vault and CIK);
//  3. pushes every device secret through the vault data plane (PUT
//     {vault}/secrets/{name}, api-version 7.4; the access policy grants the
//     identity secrets Get and Set only) when the status is not
//     KeyVaultSynced — KeyVaultSyncPending after recoverKeyVault or the
//     operator's syncDeviceSecrets, KeyVaultSyncFailed, or never pushed to
//     this vault;
//  4. reads the CIK (GET) and keeps it, sealed — which also proves access on
//     passes that push nothing;
//  5. reports through updateExtendedInformation: KeyVaultSynced with the
//     pushed secrets' vault references (deviceSecrets: keyVaultId only) and
//     the keyVaultSyncRequestId it saw (so a sync requested meanwhile stays
//     pending), or
//     KeyVaultSyncFailed with keyVaultSyncError, the failing step and the
//     data plane's status and error code. A pass with nothing pushed and the
//     CIK readable reports nothing.
//
// Secret values appear only in request bodies to the vault and in sealed
// fields; results, logs and errors carry names, IDs and status codes.
package edge
