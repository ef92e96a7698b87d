// Package authorization is the Microsoft.Authorization resource provider on
// the ARM core (internal/arm): role assignments and role definitions, served
// from the authz engine, and management locks, which it owns and enforces.
//
// All three are extension resources, addressed as
// {scope}/providers/Microsoft.Authorization/{type}/{name} where scope is "/"
// (role assignments and definitions only), a subscription, a resource group,
// a resource, or a child such as a secret ".../vaults/{v}/secrets/{s}". A
// full role assignment ID used as a path (the SDKs' GetByID) is the same
// route. The ARM core authenticates and authorizes each request with the
// action it derives, Microsoft.Authorization/{type}/read|write|delete, at
// the request path; custom role writes are also authorized at every
// assignable scope they touch, since role definitions are tenant-wide.
//
// Role assignments: PUT creates (201; 200 when the same assignment is PUT
// again), a second assignment of one role to one principal at one scope is
// 409 RoleAssignmentExists, DELETE answers 200 with the deleted assignment
// or 204 when there is none. Lists take $filter atScope(), principalId eq
// '{id}' and assignedTo('{id}'). Role definitions: built-ins show at every
// scope; custom roles where they are assignable (and, with
// atScopeAndBelow(), beneath); $filter roleName eq and type eq.
//
// Locks (CanNotDelete, ReadOnly) live at a subscription, a resource group or
// a resource and are inherited down the tree. The Provider is an
// arm.WriteGuard (armSrv.AddWriteGuard(p)); see BeforeWrite for the rules
// and ScopeLocked for the error. They govern the control plane only; the
// data plane never asks.
//
// Store prefix: rp/authorization/ (role data lives in authz/, via the engine)
//
//	rp/authorization/locks/{escScope}/{lowercase name}   lock record
//
// escScope is the lowercase scope with '/' written as '|', so one prefix
// lists a scope's own locks ("{escScope}/") and another everything beneath
// it ("{escScope}|").
package authorization
