package authorization

import (
	"context"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Namespace is the provider namespace served.
const Namespace = "Microsoft.Authorization"

// Resource type names inside the namespace.
const (
	TypeRoleAssignments = "roleAssignments"
	TypeRoleDefinitions = "roleDefinitions"
	TypeLocks           = "locks"
)

// API versions per type, oldest first. armauthorization/v2 v2.2.0 (Go)
// sends 2022-04-01 for role assignments and 2022-05-01-preview for role
// definitions; @azure/arm-locks 2.1.0 sends 2020-05-01; keyhaven's CLI
// sends 2022-04-01 and 2020-05-01. The shapes served do not differ across
// these versions in any way clients read.
var (
	RoleAssignmentAPIVersions = []string{
		"2015-07-01", "2017-10-01-preview", "2018-01-01-preview", "2018-09-01-preview", "2020-03-01-preview",
		"2020-04-01-preview", "2020-08-01-preview", "2020-10-01-preview", "2021-04-01-preview",
		"2022-01-01-preview", "2022-04-01",
	}
	RoleDefinitionAPIVersions = []string{
		"2015-07-01", "2017-05-01", "2018-01-01-preview", "2022-04-01", "2022-05-01-preview",
	}
	LockAPIVersions = []string{"2015-01-01", "2016-09-01", "2017-04-01", "2020-05-01"}
)

// Options configures the provider.
type Options struct {
	// ResourceExists reports whether the resource a scope names exists. It
	// is asked with the top-level resource of a resource scope (for
	// ".../vaults/v/secrets/s" the vault) before a role assignment or lock is
	// created there. Nil accepts any well-formed resource scope. Subscription
	// and resource group scopes are checked by the ARM core itself.
	// ExistsVia builds one from the registered providers.
	ResourceExists func(ctx context.Context, id arm.ResourceID) (bool, error)
	// PrincipalExists reports whether a principal (object id) exists in the
	// directory; role assignments for an unknown principal are refused with
	// PrincipalNotFound. Nil accepts any GUID.
	PrincipalExists func(ctx context.Context, objectID string) (bool, error)
}

// Provider is the Microsoft.Authorization resource provider: role
// assignments and role definitions over the authz engine, and management
// locks, which it stores itself and enforces as an arm.WriteGuard.
type Provider struct {
	engine *authz.Engine
	st     store.Store
	clk    clock.Clock
	opts   Options
}

var (
	_ arm.Provider   = (*Provider)(nil)
	_ arm.WriteGuard = (*Provider)(nil)
)

// New returns the provider. Register it with armSrv.Register(p) and make it
// the lock guard with armSrv.AddWriteGuard(p).
func New(engine *authz.Engine, st store.Store, clk clock.Clock, opts Options) *Provider {
	if clk == nil {
		clk = clock.Real{}
	}
	return &Provider{engine: engine, st: st, clk: clk, opts: opts}
}

// Namespace is "Microsoft.Authorization".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served. All three are extension resources:
// they hang under any scope, "/" included for role assignments and role
// definitions.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	return []arm.ResourceType{
		{Name: TypeRoleAssignments, APIVersions: RoleAssignmentAPIVersions, Locations: []string{"global"},
			Handler: arm.HandlerFunc(p.serveRoleAssignments)},
		{Name: TypeRoleDefinitions, APIVersions: RoleDefinitionAPIVersions, Locations: []string{"global"},
			Handler: arm.HandlerFunc(p.serveRoleDefinitions)},
		{Name: TypeLocks, APIVersions: LockAPIVersions, Locations: []string{"global"},
			Handler: arm.HandlerFunc(p.serveLocks)},
	}
}

// scopeOf returns the scope an extension request applies to: the request ID
// without its last (Microsoft.Authorization) provider block. For
// "/providers/Microsoft.Authorization/roleAssignments/x" that is the root.
func scopeOf(id arm.ResourceID) arm.ResourceID {
	out := arm.ResourceID{SubscriptionID: id.SubscriptionID, ResourceGroup: id.ResourceGroup}
	if n := len(id.Providers); n > 1 {
		out.Providers = append([]arm.ProviderSegment(nil), id.Providers[:n-1]...)
	}
	return out
}

// topResource returns the top-level resource of a resource scope (the first
// type/name of its first provider block); ok is false for the root, a
// subscription or a resource group.
func topResource(scope arm.ResourceID) (arm.ResourceID, bool) {
	if len(scope.Providers) == 0 {
		return arm.ResourceID{}, false
	}
	b := scope.Providers[0]
	if len(b.Types) == 0 || len(b.Names) == 0 {
		return arm.ResourceID{}, false
	}
	return arm.NewResourceID(scope.SubscriptionID, scope.ResourceGroup, b.Namespace, b.Types[0], b.Names[0]), true
}

// checkScopeExists answers ARM's 404 when scope names a resource that does
// not exist (subscriptions and groups were checked by the core).
func (p *Provider) checkScopeExists(ctx context.Context, scope arm.ResourceID) error {
	top, ok := topResource(scope)
	if !ok || p.opts.ResourceExists == nil {
		return nil
	}
	exists, err := p.opts.ResourceExists(ctx, top)
	if err != nil {
		return azerr.From(err)
	}
	if !exists {
		return arm.ResourceNotFound(top)
	}
	return nil
}

// ExistsVia returns an Options.ResourceExists that asks the given providers:
// a top-level resource exists when the provider of its namespace lists it
// (arm.GroupResources). Namespaces none of them serves, or whose provider
// does not list resources, count as existing: keyhaven cannot tell.
func ExistsVia(providers ...arm.Provider) func(ctx context.Context, id arm.ResourceID) (bool, error) {
	return func(ctx context.Context, id arm.ResourceID) (bool, error) {
		for _, prov := range providers {
			if !strings.EqualFold(prov.Namespace(), id.Namespace()) {
				continue
			}
			gr, ok := prov.(arm.GroupResources)
			if !ok {
				return true, nil
			}
			items, err := gr.ListResources(ctx, id.SubscriptionID, id.ResourceGroup)
			if err != nil {
				return false, err
			}
			for _, it := range items {
				if strings.EqualFold(it.ID, id.String()) {
					return true, nil
				}
			}
			return false, nil
		}
		return true, nil
	}
}

// authorizeAt asks the engine whether the caller may perform action at
// scope, answering ARM's AuthorizationFailed when not. The core authorizes
// the request path; this covers the other scopes an operation touches (the
// assignable scopes of a custom role).
func (p *Provider) authorizeAt(ctx context.Context, req *arm.Request, action, scope string) error {
	d, err := p.engine.Decide(ctx, authz.Request{Principal: req.Principal, Action: action, Scope: scope})
	if err != nil {
		return azerr.From(err)
	}
	if !d.Allowed {
		oid := ""
		if req.Principal != nil {
			oid = req.Principal.ObjectID
		}
		return arm.AuthorizationFailed(oid, action, scope)
	}
	return nil
}

func isCode(err error, code string) bool {
	e := azerr.From(err)
	return e != nil && e.Code == code
}

func methodNotAllowed(req *arm.Request) error { return arm.MethodNotAllowed(req.Method) }

func objectID(req *arm.Request) string {
	if req.Principal == nil {
		return ""
	}
	return req.Principal.ObjectID
}
