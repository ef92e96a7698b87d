// Package sqlite is keyhaven's default store.Store backend: one SQLite file
// (via the pure-Go modernc.org/sqlite driver) in WAL mode with
// synchronous=FULL, so an acknowledged Update survives a crash or power loss.
//
// Writers are serialized through a single connection running BEGIN IMMEDIATE
// transactions (which also serializes against other processes on the same
// file); readers use a separate pool of query-only connections and see WAL
// snapshots. Because there is one writer connection, fn passed to Update
// must not call Update on the same Store (it would wait for itself until its
// context ends). Every statement is prepared once per pool at Open and reused
// on each connection (stmts.go). The package owns its schema: numbered migrations embedded from
// migrations/ and applied at Open.
package sqlite
