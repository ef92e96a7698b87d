// Package store owns keyhaven's persistence contract: an ordered key-value
// store with serializable transactions and optimistic concurrency (every
// record carries the revision that last wrote it, which callers use as an
// ETag). It knows nothing of secrets, vaults or principals: domain packages
// own their key layout and encoding.
//
// Backends live in subpackages (sqlite, postgres) and must pass the shared
// conformance suite in storetest.
package store
