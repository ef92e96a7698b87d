package authz

import (
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// ARM resource types of this package's objects.
const (
	TypeRoleDefinitions = "Microsoft.Authorization/roleDefinitions"
	TypeRoleAssignments = "Microsoft.Authorization/roleAssignments"
)

// ARMPermission is one permission block in ARM JSON (arrays never null).
type ARMPermission struct {
	Actions        []string `json:"actions"`
	NotActions     []string `json:"notActions"`
	DataActions    []string `json:"dataActions"`
	NotDataActions []string `json:"notDataActions"`
}

// ARMRoleDefinitionProperties is roleDefinitions' "properties" (api-version
// 2022-04-01).
type ARMRoleDefinitionProperties struct {
	RoleName         string          `json:"roleName"`
	Type             string          `json:"type"`
	Description      string          `json:"description"`
	AssignableScopes []string        `json:"assignableScopes"`
	Permissions      []ARMPermission `json:"permissions"`
	CreatedOn        string          `json:"createdOn,omitempty"`
	UpdatedOn        string          `json:"updatedOn,omitempty"`
	CreatedBy        *string         `json:"createdBy"`
	UpdatedBy        *string         `json:"updatedBy"`
}

// ARMRoleDefinition is a Microsoft.Authorization/roleDefinitions resource.
type ARMRoleDefinition struct {
	ID         string                      `json:"id"`
	Name       string                      `json:"name"`
	Type       string                      `json:"type"`
	Properties ARMRoleDefinitionProperties `json:"properties"`
}

// ARMRoleAssignmentProperties is roleAssignments' "properties".
type ARMRoleAssignmentProperties struct {
	RoleDefinitionID string  `json:"roleDefinitionId"`
	PrincipalID      string  `json:"principalId"`
	PrincipalType    string  `json:"principalType"`
	Scope            string  `json:"scope"`
	Description      *string `json:"description"`
	Condition        *string `json:"condition"`
	ConditionVersion *string `json:"conditionVersion"`
	CreatedOn        string  `json:"createdOn,omitempty"`
	UpdatedOn        string  `json:"updatedOn,omitempty"`
	CreatedBy        *string `json:"createdBy"`
	UpdatedBy        *string `json:"updatedBy"`
}

// ARMRoleAssignment is a Microsoft.Authorization/roleAssignments resource.
type ARMRoleAssignment struct {
	ID         string                      `json:"id"`
	Name       string                      `json:"name"`
	Type       string                      `json:"type"`
	Properties ARMRoleAssignmentProperties `json:"properties"`
}

// RoleDefinitionResourceID returns the role definition's ARM ID as seen from
// scope: "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{id}"
// when scope is in a subscription, else "/providers/Microsoft.Authorization/roleDefinitions/{id}".
func RoleDefinitionResourceID(scope, id string) string {
	if sub := subscriptionOf(NormalizeScope(scope)); sub != "" {
		return "/subscriptions/" + sub + "/providers/" + TypeRoleDefinitions + "/" + id
	}
	return "/providers/" + TypeRoleDefinitions + "/" + id
}

// AssignmentResourceID returns "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
// ("/providers/…" at the root scope).
func AssignmentResourceID(scope, name string) string {
	s := NormalizeScope(scope)
	if s == "/" {
		s = ""
	}
	return s + "/providers/" + TypeRoleAssignments + "/" + name
}

// ParseAssignmentID splits a role assignment resource ID into its scope and
// lower-case name.
func ParseAssignmentID(id string) (scope, name string, err error) {
	const suffix = "/providers/microsoft.authorization/roleassignments/"
	low := strings.ToLower(id)
	i := strings.LastIndex(low, suffix)
	if i < 0 || !isGUID(low[i+len(suffix):]) {
		return "", "", azerr.New(400, "InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid.", truncate(id, 300))
	}
	scope = NormalizeScope(id[:i])
	if err := ValidateScope(scope); err != nil {
		return "", "", err
	}
	return scope, low[i+len(suffix):], nil
}

func armTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// RoleDefinitionARM renders d as ARM returns it when read at scope.
func RoleDefinitionARM(d RoleDefinition, scope string) ARMRoleDefinition {
	perms := make([]ARMPermission, 0, len(d.Permissions))
	for _, p := range d.Permissions {
		perms = append(perms, ARMPermission{
			Actions:        cloneStrings(p.Actions),
			NotActions:     cloneStrings(p.NotActions),
			DataActions:    cloneStrings(p.DataActions),
			NotDataActions: cloneStrings(p.NotDataActions),
		})
	}
	return ARMRoleDefinition{
		ID:   RoleDefinitionResourceID(scope, d.ID),
		Name: d.ID,
		Type: TypeRoleDefinitions,
		Properties: ARMRoleDefinitionProperties{
			RoleName:         d.RoleName,
			Type:             d.RoleType,
			Description:      d.Description,
			AssignableScopes: cloneStrings(d.AssignableScopes),
			Permissions:      perms,
			CreatedOn:        armTime(d.CreatedOn),
			UpdatedOn:        armTime(d.UpdatedOn),
			CreatedBy:        optString(d.CreatedBy),
			UpdatedBy:        optString(d.UpdatedBy),
		},
	}
}

// AssignmentARM renders a as ARM returns it; its roleDefinitionId is
// subscription-qualified when the assignment is in a subscription.
func AssignmentARM(a Assignment) ARMRoleAssignment {
	return ARMRoleAssignment{
		ID:   AssignmentResourceID(a.Scope, a.Name),
		Name: a.Name,
		Type: TypeRoleAssignments,
		Properties: ARMRoleAssignmentProperties{
			RoleDefinitionID: RoleDefinitionResourceID(a.Scope, a.RoleDefinitionID),
			PrincipalID:      a.PrincipalID,
			PrincipalType:    a.PrincipalType,
			Scope:            a.Scope,
			Description:      optString(a.Description),
			CreatedOn:        armTime(a.CreatedOn),
			UpdatedOn:        armTime(a.UpdatedOn),
			CreatedBy:        optString(a.CreatedBy),
			UpdatedBy:        optString(a.UpdatedBy),
		},
	}
}
