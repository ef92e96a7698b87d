// Package vault owns the Key Vault data plane: the secrets and keys REST
// APIs as the Azure SDKs speak them (api-versions 7.0–7.6 and the dated ones
// up to 2026-04-01), its wire types and its storage layout under
// "vault/{vaultInternalID}/" in the store.
//
// A request passes, in order: vault lookup (Directory) → authentication
// (Key Vault's 401 challenge, audience and tenant checks) → firewall →
// throttling → api-version and route → authorization (RBAC through
// authz.Decider or the vault's access policies) → the operation. The package
// never decides permissions itself and never stores a secret value in
// plaintext: values are sealed with the vault's seal scope, bound to the
// (vault, name, version) slot they live in.
//
// Layout (lname is the lower-cased secret name; names are case-insensitive
// as in Azure):
//
//	vault/{iid}/secrets/h/{lname}             head: latest version's metadata
//	vault/{iid}/secrets/v/{lname}/{version}   one version: metadata + sealed value
//	vault/{iid}/secrets/d/{lname}             deleted state (head moved here)
//	vault/~purge/{unix20}/{iid}/{lname}       purge schedule index ("~" never
//	                                          starts an internal id)
//
// Keys (keys*.go) use the same layout under "vault/{iid}/keys/" with their
// own purge index "vault/~kpurge/"; a key version's private key is sealed
// PKCS #8, bound to (vault, "keys", name, version).
//
// Soft delete moves only the head; versions stay in place, so recover and
// purge touch one record per version at most once.
package vault
