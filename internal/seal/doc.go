// Package seal owns envelope encryption of everything keyhaven persists that
// is secret, and the root key that anchors it.
//
// Three layers:
//
//   - Root keyring (Root): versioned 256-bit root keys, one active. It lives in
//     a JSON file (mode 0600, refused if group/world accessible, written via
//     temp file + fsync + rename + fsync of the directory), or comes from the
//     KEYHAVEN_ROOT_KEY environment variable as a single version 1 that
//     keyhaven cannot rotate.
//   - Data keys (DEKs): one random 256-bit key per scope (a vault's internal
//     id, or "sys"), created on first Seal and stored at "seal/dek/{scope}"
//     wrapped with AES-256-GCM under the active root key. The wrap's AAD binds
//     the scope, the root key version and the DEK id; the record names its
//     root version so old versions stay readable during a rotation.
//   - Values: format byte | DEK id | 96-bit random nonce | AES-256-GCM
//     ciphertext, with AAD = header + length-prefixed (scope, caller aad), so a
//     ciphertext copied to another row, version or vault fails with ErrOpen.
//
// Forget deletes a scope's wrapped DEK (crypto-shredding). Unwrapped DEKs are
// cached in a bounded LRU; Forget evicts in-process at once. Several
// processes may share the store: a cache miss or an unknown DEK id reads the
// store, Seal always confirms the DEK still exists, and Open re-reads it after
// the cache TTL, which bounds how long another process can still open values
// after a Forget elsewhere.
//
// Random 96-bit nonces allow about 2^32 seals per data key; per-scope keys
// keep every realistic vault far below that.
//
// The package does no I/O beyond its key file and its own store prefix.
package seal
