// Package postgres is the store.Store backend for replicated deployments:
// several keyhaven processes share one PostgreSQL database (optionally one
// schema of it) through pgx connection pools.
//
// Update runs SERIALIZABLE transactions and re-runs fn, with jittered
// backoff and a bounded number of attempts, when PostgreSQL reports a
// serialization failure (40001) or deadlock (40P01); preconditions are
// therefore race-free across processes. Each writing transaction takes one
// value from a sequence as its revision. The package owns its schema:
// numbered migrations embedded from migrations/, applied at Open under a
// transaction-scoped advisory lock so replicas starting together do not race.
package postgres
