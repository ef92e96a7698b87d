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
// Store prefix: arm/ (subscriptions, resource groups, operations).
package arm
