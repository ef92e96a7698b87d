// Package storage is the Microsoft.Storage resource provider: storage
// accounts (create/replace, tag update, get, list, delete, name
// availability) registered on the ARM server (internal/arm), and the
// append-only blob containers that diagnostic settings (internal/providers/
// insights) ship audit logs into.
//
// Storage account names are globally unique (3-24 lowercase letters and
// digits), so an account record is stored under its name. Each account has
// an internal id; its containers and blobs are keyed by that id, so a
// deleted account's data is never seen by a later account of the same name
// even before its clean-up has finished. Store prefix: rp/storage/
//
//	rp/storage/names/{name}                       account record
//	rp/storage/scope/{sub}/{rg}/{name}            index of accounts
//	rp/storage/containers/{aid}/{container}       container record
//	rp/storage/blobmeta/{aid}/{container}/{path}  blob properties
//	rp/storage/blobids/{aid}/{blobID}             blob id -> container, path
//	rp/storage/blobs/{aid}/{blobID}/{offset}      blob data, one chunk per append
//	rp/storage/retention/{aid}/{container}/{pfx}  retention rule (days)
//	rp/storage/purge/{aid}                        data of a deleted account to remove
//
// Blobs are append-only: the Go API (AppendBlob) adds a chunk keyed by its
// start offset, so an append is one small write however large the blob is,
// and no API overwrites or truncates a blob. Blobs are removed only whole:
// by a DELETE through the ARM server (so the lock guard applies: a lock on
// the account refuses it), by retention pruning, or with their account.
//
// Read access for clients is through keyhaven extension routes under the
// account (there is no blob data plane):
//
//	GET {account}/blobServices/default/containers                  list containers
//	GET {account}/blobServices/default/containers/{c}              one container
//	GET {account}/blobServices/default/containers/{c}/blobs?prefix= list blobs
//	GET {account}/blobServices/default/containers/{c}/blobs/{id}   properties and content
//	DELETE {account}/blobServices/default/containers/{c}/blobs/{id}
//
// A blob is addressed by its id (a GUID listed with it) because blob names
// hold slashes and words such as "PROVIDERS" that would change the meaning
// of an ARM path. Content is returned base64-encoded in the JSON body, at
// most MaxReadChunk bytes per request (offset/length query parameters page
// through larger blobs).
//
// Authorization: the ARM core authorizes the derived control-plane actions,
// e.g. Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read
// (Azure's data action name, matched here as an action), so Owner,
// Contributor and Reader can read logs and Owner and Contributor can delete
// them. Azure would require a data role or the account keys; keyhaven keeps
// audit logs readable with the roles that administer the vault.
//
// Retention: SetRetention records a rule (container, name prefix, days);
// PruneBlobs deletes blobs under a rule whose last append is older than the
// rule's days. Pruning ignores locks, as Azure's retention does (locks guard
// the control plane, not data lifecycle); only blobs under a rule are ever
// pruned.
package storage
