package authorization

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// assignmentBody is a role assignment PUT body (all api-versions).
type assignmentBody struct {
	Properties struct {
		RoleDefinitionID string  `json:"roleDefinitionId"`
		PrincipalID      string  `json:"principalId"`
		PrincipalType    string  `json:"principalType"`
		Description      *string `json:"description"`
		Condition        *string `json:"condition"`
		ConditionVersion *string `json:"conditionVersion"`
	} `json:"properties"`
}

func (p *Provider) serveRoleAssignments(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	scope := scopeOf(req.ID)
	switch req.Kind {
	case arm.KindCollection:
		if req.Method != http.MethodGet {
			return nil, methodNotAllowed(req)
		}
		return p.listAssignments(ctx, req, scope)
	case arm.KindResource:
		name := req.ID.Name()
		switch req.Method {
		case http.MethodGet:
			a, err := p.engine.GetAssignment(ctx, scope.String(), name)
			if err != nil {
				return nil, err
			}
			return arm.OK(authz.AssignmentARM(a)), nil
		case http.MethodPut:
			return p.putAssignment(ctx, req, scope, name)
		case http.MethodDelete:
			a, err := p.engine.DeleteAssignment(ctx, scope.String(), name)
			if isCode(err, "RoleAssignmentNotFound") {
				return arm.NoContent(), nil // as Azure: deleting a missing assignment is not an error
			}
			if err != nil {
				return nil, err
			}
			return arm.OK(authz.AssignmentARM(a)), nil
		}
	}
	return nil, methodNotAllowed(req)
}

func (p *Provider) putAssignment(ctx context.Context, req *arm.Request, scope arm.ResourceID, name string) (*arm.Response, error) {
	var body assignmentBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	props := body.Properties
	// authz has no ABAC conditions; storing the assignment without its
	// condition would grant more than asked, so refuse it.
	if props.Condition != nil && strings.TrimSpace(*props.Condition) != "" {
		return nil, azerr.New(http.StatusBadRequest, "RoleAssignmentConditionNotSupported",
			"Role assignment conditions are not supported by keyhaven.").WithTarget("properties.condition")
	}
	if props.RoleDefinitionID == "" {
		return nil, azerr.New(http.StatusBadRequest, "InvalidRoleDefinitionId",
			"The role definition ID '' is not valid.").WithTarget("properties.roleDefinitionId")
	}
	if err := p.checkScopeExists(ctx, scope); err != nil {
		return nil, err
	}
	if p.opts.PrincipalExists != nil && arm.IsGUID(props.PrincipalID) {
		ok, err := p.opts.PrincipalExists(ctx, props.PrincipalID)
		if err != nil {
			return nil, azerr.From(err)
		}
		if !ok {
			return nil, azerr.New(http.StatusBadRequest, "PrincipalNotFound",
				"Principal %s does not exist in the directory. Check that you have the correct principal ID.", strings.ToLower(props.PrincipalID))
		}
	}
	a := authz.Assignment{Name: name, Scope: scope.String(), RoleDefinitionID: props.RoleDefinitionID,
		PrincipalID: props.PrincipalID, PrincipalType: props.PrincipalType, CreatedBy: objectID(req)}
	if props.Description != nil {
		a.Description = *props.Description
	}
	out, created, err := p.engine.CreateAssignment(ctx, a)
	if err != nil {
		return nil, err
	}
	if created {
		return arm.Created(authz.AssignmentARM(out)), nil
	}
	return arm.OK(authz.AssignmentARM(out)), nil
}

// listAssignments lists at scope: without a filter, assignments at, above
// and below it; atScope() drops those below; principalId/assignedTo keep one
// principal's.
func (p *Provider) listAssignments(ctx context.Context, req *arm.Request, scope arm.ResourceID) (*arm.Response, error) {
	f, err := parseAssignmentFilter(queryFilter(req))
	if err != nil {
		return nil, err
	}
	as, err := p.engine.ListAssignments(ctx, authz.AssignmentFilter{Scope: scope.String(), AtScope: f.atScope, PrincipalID: f.principalID})
	if err != nil {
		return nil, err
	}
	items := make([]authz.ARMRoleAssignment, 0, len(as))
	for _, a := range as {
		items = append(items, authz.AssignmentARM(a))
	}
	page, err := arm.Paginate(req, items, func(a authz.ARMRoleAssignment) string { return strings.ToLower(a.ID) })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}
