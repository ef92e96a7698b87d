// Package authz owns authorization: Azure-shaped role definitions (the
// built-in roles with their real Azure IDs, plus custom roles), role
// assignments at ARM scopes, the RBAC decision (Engine.Decide) and the
// legacy Key Vault access-policy model (PolicyAllows).
//
// Everything it stores lives under the store prefix "authz/". Every write
// bumps the record authz/generation in the same transaction; Decide reads
// that one record and drops its per-principal cache whenever it changed, so
// a revoked assignment is refused on the very next Decide in every process
// sharing the database.
//
// It knows nothing of HTTP: the ARM provider renders its objects with
// RoleDefinitionARM and AssignmentARM, and the planes call Decide.
package authz
