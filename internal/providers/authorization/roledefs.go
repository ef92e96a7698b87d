package authorization

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// definitionBody is a role definition PUT body.
type definitionBody struct {
	Properties struct {
		RoleName         string                `json:"roleName"`
		Description      string                `json:"description"`
		Permissions      []authz.ARMPermission `json:"permissions"`
		AssignableScopes []string              `json:"assignableScopes"`
	} `json:"properties"`
}

func (p *Provider) serveRoleDefinitions(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	scope := scopeOf(req.ID)
	switch req.Kind {
	case arm.KindCollection:
		if req.Method != http.MethodGet {
			return nil, methodNotAllowed(req)
		}
		return p.listDefinitions(ctx, req, scope)
	case arm.KindResource:
		name := req.ID.Name()
		switch req.Method {
		case http.MethodGet:
			d, err := p.engine.GetRoleDefinition(ctx, name)
			if err != nil {
				return nil, err
			}
			if !visibleAt(d, scope.String(), true) {
				return nil, notFoundDefinition(name)
			}
			return arm.OK(authz.RoleDefinitionARM(d, scope.String())), nil
		case http.MethodPut:
			return p.putDefinition(ctx, req, scope, name)
		case http.MethodDelete:
			return p.deleteDefinition(ctx, req, scope, name)
		}
	}
	return nil, methodNotAllowed(req)
}

func notFoundDefinition(id string) error {
	return azerr.NotFound("RoleDefinitionDoesNotExist", "The specified role definition with ID '%s' does not exist.", clip(id, 100))
}

// visibleAt reports whether d shows at scope: built-ins everywhere (their
// assignable scope is "/"), custom roles where one of their assignable
// scopes covers scope, and with below also where one lies beneath it.
func visibleAt(d authz.RoleDefinition, scope string, below bool) bool {
	for _, s := range d.AssignableScopes {
		if authz.ScopeCovers(s, scope) || below && authz.ScopeCovers(scope, s) {
			return true
		}
	}
	return false
}

func (p *Provider) listDefinitions(ctx context.Context, req *arm.Request, scope arm.ResourceID) (*arm.Response, error) {
	f, err := parseDefinitionFilter(queryFilter(req))
	if err != nil {
		return nil, err
	}
	defs, err := p.engine.ListRoleDefinitions(ctx, authz.RoleDefinitionFilter{RoleName: f.roleName, Type: f.roleType, Scope: scope.String()})
	if err != nil {
		return nil, err
	}
	items := make([]authz.ARMRoleDefinition, 0, len(defs))
	for _, d := range defs {
		// As ARM: roles applicable at the scope and above, plus those
		// defined beneath it with atScopeAndBelow().
		if visibleAt(d, scope.String(), f.atScopeAndBelow) {
			items = append(items, authz.RoleDefinitionARM(d, scope.String()))
		}
	}
	page, err := arm.Paginate(req, items, func(d authz.ARMRoleDefinition) string { return d.Name })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}

// putDefinition creates or replaces a custom role. Role definitions are
// tenant-wide objects: besides the core's check at the request scope, the
// caller must hold roleDefinitions/write at every assignable scope of the
// new definition and of the one it replaces, or an Owner of one
// subscription could widen a role used in another.
func (p *Provider) putDefinition(ctx context.Context, req *arm.Request, scope arm.ResourceID, name string) (*arm.Response, error) {
	var body definitionBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	props := body.Properties
	if len(props.AssignableScopes) > authz.MaxAssignableScopes {
		return nil, arm.BadRequest("InvalidAssignableScope", "At most %d assignable scopes are allowed.", authz.MaxAssignableScopes).WithTarget("assignableScopes")
	}
	for _, s := range props.AssignableScopes {
		if authz.ValidateScope(authz.NormalizeScope(s)) != nil {
			return nil, arm.BadRequest("InvalidAssignableScope", "The assignable scope '%s' is not valid.", clip(s, 600)).WithTarget("assignableScopes")
		}
	}
	scopes := append([]string(nil), props.AssignableScopes...)
	if old, err := p.engine.GetRoleDefinition(ctx, name); err == nil && !old.IsBuiltIn() {
		scopes = append(scopes, old.AssignableScopes...)
	}
	for _, s := range dedupScopes(scopes) {
		if err := p.authorizeAt(ctx, req, authz.ActionRoleDefinitionWrite, s); err != nil {
			return nil, err
		}
	}
	perms := make([]authz.Permission, 0, len(props.Permissions))
	for _, pm := range props.Permissions {
		perms = append(perms, authz.Permission(pm))
	}
	d, _, err := p.engine.PutRoleDefinition(ctx, authz.RoleDefinition{ID: name, RoleName: props.RoleName,
		Description: props.Description, Permissions: perms, AssignableScopes: props.AssignableScopes}, objectID(req))
	if err != nil {
		return nil, err
	}
	// Azure answers 201 to create and update alike; the Go SDK accepts only 201.
	return arm.Created(authz.RoleDefinitionARM(d, scope.String())), nil
}

func (p *Provider) deleteDefinition(ctx context.Context, req *arm.Request, scope arm.ResourceID, name string) (*arm.Response, error) {
	old, err := p.engine.GetRoleDefinition(ctx, name)
	if isCode(err, "RoleDefinitionDoesNotExist") {
		return arm.NoContent(), nil
	}
	if err != nil {
		return nil, err
	}
	if !old.IsBuiltIn() {
		for _, s := range dedupScopes(old.AssignableScopes) {
			if err := p.authorizeAt(ctx, req, authz.ActionRoleDefinitionDelete, s); err != nil {
				return nil, err
			}
		}
	}
	d, err := p.engine.DeleteRoleDefinition(ctx, name)
	if isCode(err, "RoleDefinitionDoesNotExist") {
		return arm.NoContent(), nil
	}
	if err != nil {
		return nil, err
	}
	return arm.OK(authz.RoleDefinitionARM(d, scope.String())), nil
}

func dedupScopes(in []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		s = authz.NormalizeScope(s)
		if k := strings.ToLower(s); !seen[k] {
			seen[k] = true
			out = append(out, s)
		}
	}
	return out
}
