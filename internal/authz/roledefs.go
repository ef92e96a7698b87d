package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Custom role definition limits. Azure allows 5000 custom roles per tenant;
// the per-role limits are keyhaven's own.
const (
	MaxCustomRoles        = 5000
	MaxRoleNameLen        = 512
	MaxPermissionBlocks   = 16
	MaxActionsPerList     = 500
	MaxActionLen          = 256
	MaxAssignableScopes   = 100
	maxStarsPerPattern    = 6
	roleDefinitionsSuffix = "/providers/microsoft.authorization/roledefinitions/"
)

// ParseRoleDefinitionID accepts a bare GUID or a role definition resource ID
// ("/providers/Microsoft.Authorization/roleDefinitions/{guid}",
// "/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}",
// or the same under any other scope) and returns the lower-case GUID.
func ParseRoleDefinitionID(s string) (string, error) {
	s = strings.TrimSpace(s)
	if isGUID(s) {
		return strings.ToLower(s), nil
	}
	bad := azerr.New(400, "InvalidRoleDefinitionId",
		"The role definition ID '%s' is not valid.", truncate(s, 200)).WithTarget("roleDefinitionId")
	low := strings.ToLower(s)
	i := strings.LastIndex(low, roleDefinitionsSuffix)
	if i < 0 {
		return "", bad
	}
	id := low[i+len(roleDefinitionsSuffix):]
	if !isGUID(id) {
		return "", bad
	}
	if scope := s[:i]; scope != "" {
		if err := ValidateScope(scope); err != nil {
			return "", bad
		}
	}
	return id, nil
}

// GetRoleDefinition returns a built-in or custom role by GUID or resource ID.
func (e *Engine) GetRoleDefinition(ctx context.Context, id string) (RoleDefinition, error) {
	rid, err := ParseRoleDefinitionID(id)
	if err != nil {
		return RoleDefinition{}, err
	}
	d, err := readRoleDefinition(ctx, e.st, rid)
	if errors.Is(err, errRoleMissing) {
		return RoleDefinition{}, azerr.NotFound("RoleDefinitionDoesNotExist",
			"The specified role definition with ID '%s' does not exist.", rid)
	}
	if err != nil {
		return RoleDefinition{}, azerr.Internal(err)
	}
	return d.clone(), nil
}

// RoleDefinitionFilter selects role definitions for ListRoleDefinitions.
type RoleDefinitionFilter struct {
	// RoleName is ARM's $filter=roleName eq '{name}' (case-insensitive).
	RoleName string
	// Type is "BuiltInRole" or "CustomRole" ($filter=type eq '...').
	Type string
	// Scope keeps roles assignable at Scope or defined for scopes below it.
	Scope string
}

// ListRoleDefinitions returns built-in and custom roles matching f, ordered
// by role name.
func (e *Engine) ListRoleDefinitions(ctx context.Context, f RoleDefinitionFilter) ([]RoleDefinition, error) {
	var scope string
	if f.Scope != "" {
		scope = NormalizeScope(f.Scope)
		if err := ValidateScope(scope); err != nil {
			return nil, err
		}
	}
	keep := func(d *RoleDefinition) bool {
		if f.RoleName != "" && !strings.EqualFold(d.RoleName, f.RoleName) {
			return false
		}
		if f.Type != "" && !strings.EqualFold(d.RoleType, f.Type) {
			return false
		}
		if scope == "" {
			return true
		}
		for _, s := range d.AssignableScopes {
			if ScopeCovers(s, scope) || ScopeCovers(scope, s) {
				return true
			}
		}
		return false
	}
	var out []RoleDefinition
	for _, d := range builtinRoles {
		if keep(&d) {
			out = append(out, d.clone())
		}
	}
	recs, err := e.st.List(ctx, prefixRoleDefs, store.ListOptions{Limit: MaxCustomRoles + 1})
	if err != nil {
		return nil, azerr.Internal(err)
	}
	for _, rec := range recs {
		var d RoleDefinition
		if err := json.Unmarshal(rec.Value, &d); err != nil {
			return nil, azerr.Internal(fmt.Errorf("authz: decode %s: %w", rec.Key, err))
		}
		if keep(&d) {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b RoleDefinition) int {
		if c := strings.Compare(strings.ToLower(a.RoleName), strings.ToLower(b.RoleName)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// PutRoleDefinition creates or replaces the custom role d (ID, RoleName,
// Description, Permissions, AssignableScopes are read). by names the caller
// for createdBy/updatedBy. Built-in roles cannot be changed.
func (e *Engine) PutRoleDefinition(ctx context.Context, d RoleDefinition, by string) (out RoleDefinition, created bool, err error) {
	if !isGUID(d.ID) {
		return RoleDefinition{}, false, azerr.New(400, "InvalidRoleDefinitionId",
			"The role definition ID '%s' is not valid. It must be a GUID.", truncate(d.ID, 100))
	}
	d.ID = strings.ToLower(d.ID)
	if _, ok := builtinRoles[d.ID]; ok {
		return RoleDefinition{}, false, builtinImmutable(d.ID)
	}
	if err := validateCustomRole(&d); err != nil {
		return RoleDefinition{}, false, err
	}
	if b, ok := BuiltinRoleByName(d.RoleName); ok {
		return RoleDefinition{}, false, sameName(b.RoleName)
	}
	if len(by) > 256 {
		by = by[:256]
	}
	now := e.clk.Now().UTC()
	err = e.st.Update(ctx, func(tx store.Tx) error {
		created = false
		recs, err := tx.List(ctx, prefixRoleDefs, store.ListOptions{Limit: MaxCustomRoles + 1})
		if err != nil {
			return err
		}
		var old *RoleDefinition
		for _, rec := range recs {
			var x RoleDefinition
			if err := json.Unmarshal(rec.Value, &x); err != nil {
				return fmt.Errorf("authz: decode %s: %w", rec.Key, err)
			}
			if x.ID == d.ID {
				old = &x
				continue
			}
			if strings.EqualFold(x.RoleName, d.RoleName) {
				return sameName(x.RoleName)
			}
		}
		nd := d.clone()
		nd.RoleType = CustomRole
		nd.UpdatedOn, nd.UpdatedBy = now, by
		if old == nil {
			if len(recs) >= MaxCustomRoles {
				return azerr.New(400, "RoleDefinitionLimitExceeded",
					"No more custom role definitions can be created (limit %d).", MaxCustomRoles)
			}
			nd.CreatedOn, nd.CreatedBy = now, by
			created = true
		} else {
			nd.CreatedOn, nd.CreatedBy = old.CreatedOn, old.CreatedBy
			// Narrowing assignableScopes must not strand existing assignments.
			in, err := tx.List(ctx, rolePrefix(d.ID), store.ListOptions{})
			if err != nil {
				return err
			}
			for _, rec := range in {
				var a Assignment
				if err := json.Unmarshal(rec.Value, &a); err != nil {
					return fmt.Errorf("authz: decode %s: %w", rec.Key, err)
				}
				if !assignableAt(&nd, a.Scope) {
					return azerr.New(409, "RoleDefinitionHasAssignments",
						"The role definition has an assignment at scope '%s', which the new assignable scopes do not cover.", a.Scope)
				}
			}
		}
		b, err := json.Marshal(nd)
		if err != nil {
			return err
		}
		if _, err := tx.Put(ctx, prefixRoleDefs+d.ID, b, store.Any); err != nil {
			return err
		}
		out = nd
		return bumpGeneration(ctx, tx)
	})
	if err != nil {
		return RoleDefinition{}, false, azerr.From(err)
	}
	return out.clone(), created, nil
}

// DeleteRoleDefinition deletes a custom role and returns it. A role that
// still has assignments is refused, as Azure does.
func (e *Engine) DeleteRoleDefinition(ctx context.Context, id string) (RoleDefinition, error) {
	rid, err := ParseRoleDefinitionID(id)
	if err != nil {
		return RoleDefinition{}, err
	}
	if _, ok := builtinRoles[rid]; ok {
		return RoleDefinition{}, builtinImmutable(rid)
	}
	var out RoleDefinition
	err = e.st.Update(ctx, func(tx store.Tx) error {
		d, err := readRoleDefinition(ctx, tx, rid)
		if errors.Is(err, errRoleMissing) {
			return azerr.NotFound("RoleDefinitionDoesNotExist",
				"The specified role definition with ID '%s' does not exist.", rid)
		}
		if err != nil {
			return err
		}
		in, err := tx.List(ctx, rolePrefix(rid), store.ListOptions{Limit: 1})
		if err != nil {
			return err
		}
		if len(in) > 0 {
			return azerr.New(409, "RoleDefinitionHasAssignments",
				"There are existing role assignments referencing role (code: RoleDefinitionHasAssignments).")
		}
		if err := tx.Delete(ctx, prefixRoleDefs+rid, store.Any); err != nil {
			return err
		}
		out = d
		return bumpGeneration(ctx, tx)
	})
	if err != nil {
		return RoleDefinition{}, azerr.From(err)
	}
	return out, nil
}

// builtinImmutable: Azure refuses to change built-in roles; its exact error
// code for this was not confirmed, so the code here is keyhaven's.
func builtinImmutable(id string) error {
	return azerr.New(403, "BuiltInRoleDefinitionImmutable",
		"The role definition '%s' is a built-in role and cannot be changed or deleted.", id)
}

func sameName(name string) error {
	return azerr.New(409, "RoleDefinitionWithSameNameExists",
		"A role definition cannot be updated with a name that already exists: '%s'.", truncate(name, 200))
}

// validateCustomRole checks d in place (trimming and normalizing). Codes are
// Azure's where known (InvalidActionOrNotAction); InvalidRoleDefinition and
// InvalidAssignableScope are keyhaven's names for the remaining checks.
func validateCustomRole(d *RoleDefinition) error {
	invalid := func(target, format string, args ...any) error {
		return azerr.New(400, "InvalidRoleDefinition", format, args...).WithTarget(target)
	}
	d.RoleName = strings.TrimSpace(d.RoleName)
	switch {
	case d.RoleName == "":
		return invalid("roleName", "The role name is required.")
	case len(d.RoleName) > MaxRoleNameLen:
		return invalid("roleName", "The role name may be at most %d characters.", MaxRoleNameLen)
	case strings.ContainsFunc(d.RoleName, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return invalid("roleName", "The role name contains control characters.")
	}
	if len(d.Description) > MaxDescriptionLen {
		return invalid("description", "The description may be at most %d characters.", MaxDescriptionLen)
	}
	if len(d.Permissions) == 0 {
		return invalid("permissions", "At least one permission is required.")
	}
	if len(d.Permissions) > MaxPermissionBlocks {
		return invalid("permissions", "At most %d permission blocks are allowed.", MaxPermissionBlocks)
	}
	granting := false
	for i := range d.Permissions {
		p := &d.Permissions[i]
		for _, l := range []struct {
			name string
			list *[]string
		}{
			{"actions", &p.Actions}, {"notActions", &p.NotActions},
			{"dataActions", &p.DataActions}, {"notDataActions", &p.NotDataActions},
		} {
			if len(*l.list) > MaxActionsPerList {
				return invalid("permissions", "A permission may list at most %d %s.", MaxActionsPerList, l.name)
			}
			*l.list = cloneStrings(*l.list)
			for j, a := range *l.list {
				a = strings.TrimSpace(a)
				if err := validateActionPattern(a); err != nil {
					return azerr.New(400, "InvalidActionOrNotAction",
						"'%s' in permissions[%d].%s is not a valid action: %s.", truncate(a, 300), i, l.name, err)
				}
				(*l.list)[j] = a
			}
		}
		if len(p.Actions) > 0 || len(p.DataActions) > 0 {
			granting = true
		}
	}
	if !granting {
		return invalid("permissions", "At least one action or data action is required.")
	}
	if len(d.AssignableScopes) == 0 {
		return azerr.New(400, "InvalidAssignableScope", "At least one assignable scope is required.").WithTarget("assignableScopes")
	}
	if len(d.AssignableScopes) > MaxAssignableScopes {
		return azerr.New(400, "InvalidAssignableScope", "At most %d assignable scopes are allowed.", MaxAssignableScopes).WithTarget("assignableScopes")
	}
	scopes := make([]string, 0, len(d.AssignableScopes))
	for _, s := range d.AssignableScopes {
		s = NormalizeScope(s)
		// Azure does not let custom roles use the root scope "/"; keyhaven
		// does, because one installation is one tenant and operators use it
		// for install-wide custom roles.
		if err := ValidateScope(s); err != nil {
			return azerr.New(400, "InvalidAssignableScope", "The assignable scope '%s' is not valid.", truncate(s, 600)).WithTarget("assignableScopes")
		}
		if !slices.ContainsFunc(scopes, func(x string) bool { return strings.EqualFold(x, s) }) {
			scopes = append(scopes, s)
		}
	}
	d.AssignableScopes = scopes
	return nil
}

// validateActionPattern accepts "*" or a slash-separated operation pattern of
// printable ASCII without spaces.
func validateActionPattern(a string) error {
	switch {
	case a == "":
		return errors.New("it is empty")
	case len(a) > MaxActionLen:
		return fmt.Errorf("it is longer than %d characters", MaxActionLen)
	case a == "*":
		return nil
	case !strings.Contains(a, "/"):
		return errors.New("it must have the form {provider}/{resourceType}/{operation}")
	case strings.Count(a, "*") > maxStarsPerPattern:
		return fmt.Errorf("it has more than %d wildcards", maxStarsPerPattern)
	}
	for i := 0; i < len(a); i++ {
		if a[i] <= ' ' || a[i] >= 0x7f {
			return errors.New("it contains spaces or characters that are not allowed")
		}
	}
	return nil
}
