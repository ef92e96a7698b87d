// Package storetest is the conformance suite every store.Store backend runs:
// Run checks the contract (preconditions, versions, ordering, isolation,
// rollback, concurrency, limits, cancellation, binary safety) and
// RunPersistence checks that committed state survives Close and reopen.
// Backends call it from their own tests with a factory for fresh stores;
// BenchPut, BenchGet and BenchList are the benchmarks they share.
package storetest
