package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Principal types of a role assignment (Azure's PrincipalType enum).
const (
	PrincipalUser             = "User"
	PrincipalGroup            = "Group"
	PrincipalServicePrincipal = "ServicePrincipal"
	PrincipalForeignGroup     = "ForeignGroup"
)

// Assignment limits.
const (
	MaxAssignmentsPerPrincipal = 2000
	MaxDescriptionLen          = 2048
	maxListResults             = 20000
)

// Assignment is a role assignment. Name is its GUID; the ARM ID is
// AssignmentResourceID(Scope, Name).
type Assignment struct {
	Name             string    `json:"name"`
	Scope            string    `json:"scope"`
	RoleDefinitionID string    `json:"roleDefinitionId"` // bare GUID
	PrincipalID      string    `json:"principalId"`
	PrincipalType    string    `json:"principalType"`
	Description      string    `json:"description,omitempty"`
	CreatedOn        time.Time `json:"createdOn"`
	UpdatedOn        time.Time `json:"updatedOn"`
	CreatedBy        string    `json:"createdBy,omitempty"`
	UpdatedBy        string    `json:"updatedBy,omitempty"`
}

// PrincipalTypeFor maps a principal kind to the principalType Azure records
// for it: managed identities are service principals.
func PrincipalTypeFor(k principal.Kind) string {
	switch k {
	case principal.User:
		return PrincipalUser
	default:
		return PrincipalServicePrincipal
	}
}

// CreateAssignment creates the role assignment a (Name, Scope,
// RoleDefinitionID, PrincipalID, PrincipalType, Description, CreatedBy are
// read; timestamps are set here). RoleDefinitionID may be a bare GUID or a
// role definition resource ID. PUT semantics as in ARM: if an assignment of
// that name already exists with the same scope, principal and role, only its
// description is updated and created is false.
func (e *Engine) CreateAssignment(ctx context.Context, a Assignment) (out Assignment, created bool, err error) {
	if !isGUID(a.Name) {
		return Assignment{}, false, azerr.New(400, "InvalidRoleAssignmentId",
			"The role assignment ID '%s' is not valid. The role assignment ID must be a GUID.", truncate(a.Name, 100))
	}
	a.Name = strings.ToLower(a.Name)
	a.Scope = NormalizeScope(a.Scope)
	if err := ValidateScope(a.Scope); err != nil {
		return Assignment{}, false, err
	}
	rid, err := ParseRoleDefinitionID(a.RoleDefinitionID)
	if err != nil {
		return Assignment{}, false, err
	}
	a.RoleDefinitionID = rid
	// Azure rejects a malformed principalId before looking it up; the code
	// here is keyhaven's (Azure's exact code for this case is not confirmed).
	if !isGUID(a.PrincipalID) {
		return Assignment{}, false, azerr.New(400, "InvalidPrincipalId",
			"The principal ID '%s' is not valid. It must be a GUID.", truncate(a.PrincipalID, 100))
	}
	a.PrincipalID = strings.ToLower(a.PrincipalID)
	switch {
	case a.PrincipalType == "":
		a.PrincipalType = PrincipalUser // the API's documented default
	case strings.EqualFold(a.PrincipalType, PrincipalUser):
		a.PrincipalType = PrincipalUser
	case strings.EqualFold(a.PrincipalType, PrincipalGroup):
		a.PrincipalType = PrincipalGroup
	case strings.EqualFold(a.PrincipalType, PrincipalServicePrincipal):
		a.PrincipalType = PrincipalServicePrincipal
	case strings.EqualFold(a.PrincipalType, PrincipalForeignGroup):
		a.PrincipalType = PrincipalForeignGroup
	default:
		return Assignment{}, false, azerr.New(400, "InvalidPrincipalType",
			"The principal type '%s' is not valid. Valid values: User, Group, ServicePrincipal, ForeignGroup.", truncate(a.PrincipalType, 100))
	}
	if len(a.Description) > MaxDescriptionLen {
		return Assignment{}, false, azerr.BadParameter("The description may be at most %d characters.", MaxDescriptionLen).WithTarget("description")
	}
	if len(a.CreatedBy) > 256 {
		a.CreatedBy = a.CreatedBy[:256]
	}

	now := e.clk.Now().UTC()
	err = e.st.Update(ctx, func(tx store.Tx) error {
		created = false
		def, err := readRoleDefinition(ctx, tx, rid)
		if errors.Is(err, errRoleMissing) {
			return roleDoesNotExist(rid)
		}
		if err != nil {
			return err
		}
		if !assignableAt(&def, a.Scope) {
			// Azure resolves role definitions relative to the assignment
			// scope, so a role that is not assignable there "does not exist".
			return azerr.New(400, "RoleDefinitionDoesNotExist",
				"The specified role definition with ID '%s' does not exist or is not assignable at scope '%s'.", rid, a.Scope)
		}

		old, err := getAssignment(ctx, tx, a.Name)
		switch {
		case err == nil:
			if !strings.EqualFold(old.Scope, a.Scope) || old.PrincipalID != a.PrincipalID || old.RoleDefinitionID != a.RoleDefinitionID {
				return azerr.New(409, "RoleAssignmentUpdateNotPermitted",
					"Tenant ID, application ID, principal ID, and scope are not allowed to be updated.")
			}
			old.Description = a.Description
			old.UpdatedOn = now
			old.UpdatedBy = a.CreatedBy
			out = old
			if err := putAssignment(ctx, tx, old); err != nil {
				return err
			}
			return bumpGeneration(ctx, tx)
		case !isNotFound(err):
			return err
		}

		existing, err := tx.List(ctx, principalPrefix(a.PrincipalID), store.ListOptions{Limit: MaxAssignmentsPerPrincipal + 1})
		if err != nil {
			return err
		}
		if len(existing) >= MaxAssignmentsPerPrincipal {
			return azerr.New(400, "RoleAssignmentLimitExceeded",
				"No more role assignments can be created for principal '%s' (limit %d).", a.PrincipalID, MaxAssignmentsPerPrincipal)
		}
		for _, rec := range existing {
			var x Assignment
			if err := json.Unmarshal(rec.Value, &x); err != nil {
				return fmt.Errorf("authz: decode %s: %w", rec.Key, err)
			}
			if x.RoleDefinitionID == a.RoleDefinitionID && strings.EqualFold(x.Scope, a.Scope) {
				return azerr.New(409, "RoleAssignmentExists", "The role assignment already exists.")
			}
		}
		a.CreatedOn, a.UpdatedOn = now, now
		a.UpdatedBy = a.CreatedBy
		out, created = a, true
		if err := putAssignment(ctx, tx, a); err != nil {
			return err
		}
		return bumpGeneration(ctx, tx)
	})
	if err != nil {
		return Assignment{}, false, azerr.From(err)
	}
	return out, created, nil
}

// assignableAt reports whether scope lies at or below one of the role's
// assignable scopes (built-ins: "/", so everywhere).
func assignableAt(def *RoleDefinition, scope string) bool {
	for _, s := range def.AssignableScopes {
		if ScopeCovers(s, scope) {
			return true
		}
	}
	return false
}

func roleDoesNotExist(id string) error {
	return azerr.New(400, "RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", id)
}

func assignmentNotFound(name string) error {
	return azerr.NotFound("RoleAssignmentNotFound", "The role assignment '%s' is not found.", truncate(name, 100))
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

func getAssignment(ctx context.Context, r store.Reader, name string) (Assignment, error) {
	rec, err := r.Get(ctx, prefixAssignments+name)
	if err != nil {
		return Assignment{}, err
	}
	var a Assignment
	if err := json.Unmarshal(rec.Value, &a); err != nil {
		return Assignment{}, fmt.Errorf("authz: decode assignment %s: %w", name, err)
	}
	return a, nil
}

// assignmentKeys are the primary key and the three index keys of a.
func assignmentKeys(a Assignment) []string {
	return []string{
		prefixAssignments + a.Name,
		principalPrefix(a.PrincipalID) + a.Name,
		prefixByScope + escScope(a.Scope) + "/" + a.Name,
		rolePrefix(a.RoleDefinitionID) + a.Name,
	}
}

func putAssignment(ctx context.Context, tx store.Tx, a Assignment) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	for _, k := range assignmentKeys(a) {
		if _, err := tx.Put(ctx, k, b, store.Any); err != nil {
			return err
		}
	}
	return nil
}

func deleteAssignment(ctx context.Context, tx store.Tx, a Assignment) error {
	for _, k := range assignmentKeys(a) {
		if err := tx.Delete(ctx, k, store.Any); err != nil {
			return err
		}
	}
	return nil
}

// GetAssignment returns the assignment named name. When scope is not empty
// the assignment must be at exactly that scope (ARM addresses assignments as
// {scope}/providers/Microsoft.Authorization/roleAssignments/{name}).
func (e *Engine) GetAssignment(ctx context.Context, scope, name string) (Assignment, error) {
	if !isGUID(name) {
		return Assignment{}, assignmentNotFound(name)
	}
	a, err := getAssignment(ctx, e.st, strings.ToLower(name))
	if isNotFound(err) {
		return Assignment{}, assignmentNotFound(name)
	}
	if err != nil {
		return Assignment{}, azerr.Internal(err)
	}
	if scope != "" && !strings.EqualFold(NormalizeScope(scope), a.Scope) {
		return Assignment{}, assignmentNotFound(name)
	}
	return a, nil
}

// DeleteAssignment deletes the named assignment (at scope, when scope is not
// empty) and returns it. A missing assignment is RoleAssignmentNotFound; the
// ARM layer answers that with 204 as Azure does.
func (e *Engine) DeleteAssignment(ctx context.Context, scope, name string) (Assignment, error) {
	if !isGUID(name) {
		return Assignment{}, assignmentNotFound(name)
	}
	var out Assignment
	err := e.st.Update(ctx, func(tx store.Tx) error {
		a, err := getAssignment(ctx, tx, strings.ToLower(name))
		if isNotFound(err) {
			return assignmentNotFound(name)
		}
		if err != nil {
			return err
		}
		if scope != "" && !strings.EqualFold(NormalizeScope(scope), a.Scope) {
			return assignmentNotFound(name)
		}
		if err := deleteAssignment(ctx, tx, a); err != nil {
			return err
		}
		out = a
		return bumpGeneration(ctx, tx)
	})
	if err != nil {
		return Assignment{}, azerr.From(err)
	}
	return out, nil
}

// DeleteForPrincipal deletes every assignment of principalID (used when a
// managed identity or other principal is deleted) and returns how many.
func (e *Engine) DeleteForPrincipal(ctx context.Context, principalID string) (int, error) {
	if principalID == "" {
		return 0, azerr.BadParameter("A principal ID is required.")
	}
	n := 0
	err := e.st.Update(ctx, func(tx store.Tx) error {
		n = 0
		recs, err := tx.List(ctx, principalPrefix(principalID), store.ListOptions{})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			var a Assignment
			if err := json.Unmarshal(rec.Value, &a); err != nil {
				return fmt.Errorf("authz: decode %s: %w", rec.Key, err)
			}
			if err := deleteAssignment(ctx, tx, a); err != nil {
				return err
			}
			n++
		}
		if n == 0 {
			return nil
		}
		return bumpGeneration(ctx, tx)
	})
	if err != nil {
		return 0, azerr.From(err)
	}
	return n, nil
}

// AssignmentFilter selects assignments for ListAssignments.
type AssignmentFilter struct {
	// Scope, when set, limits the result to assignments at Scope, above it
	// and (unless AtScope) below it, as ARM's list-for-scope does.
	Scope string
	// AtScope is ARM's $filter=atScope(): only assignments at Scope or above.
	AtScope bool
	// PrincipalID is ARM's $filter=principalId eq '{id}'.
	PrincipalID string
	// RoleDefinitionID (GUID or resource ID) keeps only that role's assignments.
	RoleDefinitionID string
}

// ListAssignments returns the assignments matching f, ordered by scope then
// name. With no filter at all it returns every assignment.
func (e *Engine) ListAssignments(ctx context.Context, f AssignmentFilter) ([]Assignment, error) {
	var scope, scopeLower, roleID string
	if f.Scope != "" {
		scope = NormalizeScope(f.Scope)
		if err := ValidateScope(scope); err != nil {
			return nil, err
		}
		scopeLower = strings.ToLower(scope)
	}
	if f.RoleDefinitionID != "" {
		var err error
		if roleID, err = ParseRoleDefinitionID(f.RoleDefinitionID); err != nil {
			return nil, err
		}
	}
	keep := func(a Assignment) bool {
		if f.PrincipalID != "" && !strings.EqualFold(a.PrincipalID, f.PrincipalID) {
			return false
		}
		if roleID != "" && a.RoleDefinitionID != roleID {
			return false
		}
		if scope == "" {
			return true
		}
		s := strings.ToLower(a.Scope)
		if scopeCoversLower(s, scopeLower) {
			return true
		}
		return !f.AtScope && scopeCoversLower(scopeLower, s)
	}

	var out []Assignment
	add := func(recs []store.Record) error {
		for _, rec := range recs {
			var a Assignment
			if err := json.Unmarshal(rec.Value, &a); err != nil {
				return fmt.Errorf("authz: decode %s: %w", rec.Key, err)
			}
			if keep(a) {
				out = append(out, a)
			}
		}
		if len(out) > maxListResults {
			return azerr.BadParameter("The query matches more than %d role assignments; narrow it with a filter.", maxListResults)
		}
		return nil
	}
	lim := store.ListOptions{Limit: maxListResults + 1}
	err := e.st.View(ctx, func(r store.Reader) error {
		switch {
		case f.PrincipalID != "":
			recs, err := r.List(ctx, principalPrefix(f.PrincipalID), lim)
			if err != nil {
				return err
			}
			return add(recs)
		case roleID != "":
			recs, err := r.List(ctx, rolePrefix(roleID), lim)
			if err != nil {
				return err
			}
			return add(recs)
		case scope == "" || scope == "/" && !f.AtScope:
			recs, err := r.List(ctx, prefixAssignments, lim)
			if err != nil {
				return err
			}
			return add(recs)
		}
		for _, s := range scopeAncestors(scope) {
			recs, err := r.List(ctx, prefixByScope+escScope(s)+"/", lim)
			if err != nil {
				return err
			}
			if err := add(recs); err != nil {
				return err
			}
		}
		if f.AtScope {
			return nil
		}
		recs, err := r.List(ctx, prefixByScope+escScope(scope)+"|", lim)
		if err != nil {
			return err
		}
		return add(recs)
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	slices.SortFunc(out, func(x, y Assignment) int {
		if c := strings.Compare(strings.ToLower(x.Scope), strings.ToLower(y.Scope)); c != 0 {
			return c
		}
		return strings.Compare(x.Name, y.Name)
	})
	return out, nil
}
