package authz

import (
	"strings"
	"time"
)

// Role types, as Azure names them in roleDefinitions.properties.type.
const (
	BuiltInRole = "BuiltInRole"
	CustomRole  = "CustomRole"
)

// Permission is one permission block of a role definition. A block grants an
// action when one of its Actions patterns matches and none of its NotActions
// patterns matches (likewise DataActions/NotDataActions for data actions).
type Permission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// RoleDefinition is a role in Azure's shape. ID is the bare GUID (ARM's
// "name"); the ARM resource ID is derived from it by RoleDefinitionResourceID.
type RoleDefinition struct {
	ID               string       `json:"id"`
	RoleName         string       `json:"roleName"`
	Description      string       `json:"description,omitempty"`
	RoleType         string       `json:"roleType"`
	Permissions      []Permission `json:"permissions"`
	AssignableScopes []string     `json:"assignableScopes"`
	CreatedOn        time.Time    `json:"createdOn,omitzero"`
	UpdatedOn        time.Time    `json:"updatedOn,omitzero"`
	CreatedBy        string       `json:"createdBy,omitempty"`
	UpdatedBy        string       `json:"updatedBy,omitempty"`
}

// IsBuiltIn reports whether d is one of the immutable built-in roles.
func (d *RoleDefinition) IsBuiltIn() bool { return d.RoleType == BuiltInRole }

// Allows reports whether the role grants action: data actions are matched
// against dataActions/notDataActions only, control actions against
// actions/notActions only. It compiles the patterns on every call; the Engine
// keeps compiled roles in its cache instead.
func (d *RoleDefinition) Allows(action string, dataAction bool) bool {
	return compileRole(d).allows(strings.ToLower(action), dataAction)
}

// clone returns a deep copy, so callers can never alter the built-in table or
// a cached definition through a returned value.
func (d RoleDefinition) clone() RoleDefinition {
	c := d
	c.Permissions = make([]Permission, len(d.Permissions))
	for i, p := range d.Permissions {
		c.Permissions[i] = Permission{
			Actions:        cloneStrings(p.Actions),
			NotActions:     cloneStrings(p.NotActions),
			DataActions:    cloneStrings(p.DataActions),
			NotDataActions: cloneStrings(p.NotDataActions),
		}
	}
	c.AssignableScopes = cloneStrings(d.AssignableScopes)
	return c
}

// cloneStrings copies s, turning nil into an empty slice so JSON renders [].
func cloneStrings(s []string) []string {
	out := make([]string, len(s))
	copy(out, s)
	return out
}
