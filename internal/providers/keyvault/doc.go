// Package keyvault is the Microsoft.KeyVault resource provider: the control
// plane of vaults (create/replace, update, get, list, soft delete, recover,
// purge, access-policy edits, name availability) registered on the ARM
// server (internal/arm), and the vault.Directory the data plane uses to find
// active vaults by name.
//
// Vault names are globally unique across every tenant and subscription, and
// a soft-deleted vault keeps its name until it is purged. A vault record is
// therefore stored under its lowercase name, which makes LookupVault one
// store read. Store prefix: rp/keyvault/
//
//	rp/keyvault/names/{name}                  vault record (active or deleted)
//	rp/keyvault/scope/{sub}/{rg}/{name}       index of active vaults
//	rp/keyvault/deleted/{sub}/{name}          index of soft-deleted vaults
//
// Purging removes the vault's data-plane objects through DataPurger (the
// vault data plane, which also forgets the vault's seal scope) before the
// record goes, so a failed purge can be retried and never leaves data behind
// an unreserved name.
//
// Access-policy edits (PUT .../accessPolicies/{add|replace|remove}): add
// merges permissions into the entry with the same tenant, object and
// application ids (or appends it); remove takes the listed permissions away
// and drops an entry left with none (an entry listed without permissions is
// dropped whole); replace sets the vault's whole list.
package keyvault
