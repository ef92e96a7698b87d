// Package arm owns keyhaven's Azure Resource Manager core: resource IDs,
// api-version checks, the resource envelope and ARM error shapes, paging,
// long-running operations, authentication and RBAC authorization of every
// control-plane request, and the built-in Microsoft.Resources resources
// (subscriptions, resource groups, resource providers, generic resource
// lists).
//
// It knows no particular resource provider. Providers (internal/providers/*)
// implement Provider and are registered on the Server, which routes each
// request whose last provider segment names their namespace to the handler
// of the matching resource type, after authenticating, authorizing (action
// and scope derived from the request) and running the write guards (locks).
//
// Long-running operations belong to the replica that started them (its
// ReplicaID), which renews a lease on each while the work runs and records
// the outcome only while it still owns the operation. SweepOperations, run
// by every replica, fails (OperationInterrupted) operations whose lease
// lapsed, so a client polling work of a crashed replica gets a final answer.
//
// Store prefix: arm/ (subscriptions, resource groups, operations).
package arm
