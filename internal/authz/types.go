package authz

import (
	"context"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// Request asks whether a principal may perform an action at a scope.
type Request struct {
	Principal *principal.Principal
	// Action is the full Azure operation name, e.g.
	// "Microsoft.KeyVault/vaults/secrets/getSecret/action" (a data action) or
	// "Microsoft.KeyVault/vaults/write" (a control-plane action).
	Action string
	// DataAction selects matching against dataActions/notDataActions instead
	// of actions/notActions.
	DataAction bool
	// Scope is the resource ID the action applies to, e.g.
	// /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{v}/secrets/{name}.
	// Assignments at any ancestor scope (down from "/") apply.
	Scope string
}

// Decision is the outcome of a Decide call.
type Decision struct {
	Allowed bool
	// Reason is a short public explanation, e.g. the assignment that matched
	// or "no role assignment grants ...". Safe to show and to audit.
	Reason string
	// AssignmentID is the role assignment that granted access, if any.
	AssignmentID string
}

// Decider is what the data and control planes need of authorization.
type Decider interface {
	Decide(ctx context.Context, req Request) (Decision, error)
}

// AccessPolicy is one entry of a vault's access-policy list (the legacy Key
// Vault permission model), in the ARM property shape.
type AccessPolicy struct {
	TenantID      string      `json:"tenantId"`
	ObjectID      string      `json:"objectId"`
	ApplicationID string      `json:"applicationId,omitempty"`
	Permissions   Permissions `json:"permissions"`
}

// Permissions lists the operations an access policy grants, per object kind,
// with Azure's permission names (secrets: get, list, set, delete, backup,
// restore, recover, purge; "all" grants all).
type Permissions struct {
	Keys         []string `json:"keys,omitempty"`
	Secrets      []string `json:"secrets,omitempty"`
	Certificates []string `json:"certificates,omitempty"`
	Storage      []string `json:"storage,omitempty"`
}
