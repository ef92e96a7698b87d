package msi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/store"
)

// SubscriptionTenants tells which tenant a subscription belongs to.
// *arm.Server implements it.
type SubscriptionTenants interface {
	SubscriptionTenant(ctx context.Context, subscriptionID string) (string, error)
}

// Options configures the provider.
type Options struct {
	// MIEndpoint is the managed-identity token endpoint handed to workloads
	// as IDENTITY_ENDPOINT, e.g. "http://127.0.0.1:8444/msi/token".
	MIEndpoint string
	// Tenants resolves a subscription's tenant (normally the ARM server).
	// When nil, identities are created in the caller's tenant.
	Tenants SubscriptionTenants
	// MaxPerSubscription caps the identities of one subscription (default
	// DefaultMaxPerSubscription).
	MaxPerSubscription int
}

// DefaultMaxPerSubscription is keyhaven's own cap; it bounds list sizes.
const DefaultMaxPerSubscription = 4000

// Provider is the Microsoft.ManagedIdentity resource provider.
type Provider struct {
	ids    *identity.Service
	engine *authz.Engine
	st     store.Store
	clk    clock.Clock
	opts   Options
}

var (
	_ arm.Provider       = (*Provider)(nil)
	_ arm.GroupResources = (*Provider)(nil)
)

// New returns the provider. ids owns the identities, engine their role
// assignments (and decides the extra assign check), st holds rp/msi/.
func New(ids *identity.Service, engine *authz.Engine, st store.Store, clk clock.Clock, opts Options) *Provider {
	if clk == nil {
		clk = clock.Real{}
	}
	if opts.MaxPerSubscription <= 0 {
		opts.MaxPerSubscription = DefaultMaxPerSubscription
	}
	return &Provider{ids: ids, engine: engine, st: st, clk: clk, opts: opts}
}

// Namespace is "Microsoft.ManagedIdentity".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	return []arm.ResourceType{
		{Name: "userAssignedIdentities", APIVersions: APIVersions, Handler: arm.HandlerFunc(p.serveUserAssigned),
			// Issuing a workload secret is using the identity: what Managed
			// Identity Operator grants as assign/action.
			ActionPermissions: map[string]string{"issueWorkloadSecret": AssignAction, "revokeWorkloadSecret": AssignAction}},
		{Name: "identities", APIVersions: APIVersions, Handler: arm.HandlerFunc(p.serveSystemAssigned)},
	}
}

func (p *Provider) get(ctx context.Context, r store.Reader, key string) (*record, int64, error) {
	return store.GetJSON[record](ctx, r, key)
}

// put writes r at the key its identity gives.
func put(ctx context.Context, tx store.Tx, r *record, ifVersion int64) error {
	_, err := store.PutJSON(ctx, tx, r.key(), r, ifVersion)
	return err
}

// lookup returns the identity a request names, or ARM's 404.
func (p *Provider) lookup(ctx context.Context, id arm.ResourceID) (*record, error) {
	r, _, err := p.get(ctx, p.st, uaiKey(id.SubscriptionID, id.ResourceGroup, id.Name()))
	if errors.Is(err, store.ErrNotFound) {
		return nil, arm.ResourceNotFound(id)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return r, nil
}

func (p *Provider) serveUserAssigned(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 || req.ID.SubscriptionID == "" {
		return nil, azerr.NotFound("NotFound", "User-assigned identities live in resource groups; they are not extension or tenant resources.")
	}
	switch req.Kind {
	case arm.KindCollection:
		return p.list(ctx, req)
	case arm.KindAction:
		if req.Target.ResourceGroup == "" || len(req.Target.Providers[0].Types) != 1 {
			return nil, azerr.NotFound("NotFound", "The action '%s' is not served here.", clip(req.ActionName, 64))
		}
		switch {
		case strings.EqualFold(req.ActionName, "issueWorkloadSecret"):
			return p.issueAction(ctx, req)
		case strings.EqualFold(req.ActionName, "revokeWorkloadSecret"):
			return p.revokeAction(ctx, req)
		}
		return nil, azerr.NotFound("NotFound", "The action '%s' is not served here.", clip(req.ActionName, 64))
	}
	if req.ID.ResourceGroup == "" || len(req.ID.Providers[0].Types) != 1 {
		return nil, azerr.NotFound("NotFound", "The requested path is not served by %s.", Namespace)
	}
	switch req.Method {
	case http.MethodGet:
		r, err := p.lookup(ctx, req.ID)
		if err != nil {
			return nil, err
		}
		return arm.OK(render(r, req.APIVersion)), nil
	case http.MethodPut:
		return p.putIdentity(ctx, req)
	case http.MethodPatch:
		return p.patchIdentity(ctx, req)
	case http.MethodDelete:
		return p.deleteIdentity(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

// tenantFor is the tenant a new identity in sub belongs to.
func (p *Provider) tenantFor(ctx context.Context, req *arm.Request) (string, error) {
	if p.opts.Tenants != nil {
		return p.opts.Tenants.SubscriptionTenant(ctx, req.ID.SubscriptionID)
	}
	if req.Principal != nil {
		return req.Principal.TenantID, nil
	}
	return "", nil
}

func (p *Provider) putIdentity(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name := req.ID.Name()
	if err := ValidateIdentityName(name); err != nil {
		return nil, err
	}
	var body identityBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Location == nil || strings.TrimSpace(*body.Location) == "" {
		return nil, arm.BadRequest("LocationRequired", "The location property is required for this definition.").WithTarget("location")
	}
	loc := arm.NormalizeLocation(*body.Location)
	if !req.LocationOffered(loc) {
		return nil, arm.BadRequest("LocationNotAvailableForResourceType",
			"The provided location '%s' is not available for resource type '%s'. List of available regions for the resource type is '%s'.",
			clip(*body.Location, 64), UserAssignedType, strings.Join(req.Locations(), ",")).WithTarget("location")
	}
	tags, err := arm.TagsOf(body.Tags)
	if err != nil {
		return nil, err
	}
	scope, err := body.isolationScope()
	if err != nil {
		return nil, err
	}
	key := uaiKey(req.ID.SubscriptionID, req.ID.ResourceGroup, name)
	old, _, err := p.get(ctx, p.st, key)
	switch {
	case err == nil:
		if old.Location != loc {
			return nil, azerr.New(http.StatusBadRequest, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				old.Name, old.Location, old.ResourceGroup, loc)
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, azerr.Internal(err)
	}
	if old == nil {
		// Checked before the principal is created so a refused PUT leaves
		// nothing behind; concurrent creates may overshoot by a few.
		n, err := p.st.List(ctx, subPrefix(req.ID.SubscriptionID), store.ListOptions{Limit: p.opts.MaxPerSubscription})
		if err != nil {
			return nil, azerr.Internal(err)
		}
		if len(n) >= p.opts.MaxPerSubscription {
			return nil, azerr.New(http.StatusConflict, "QuotaExceeded",
				"The subscription already has the maximum of %d user-assigned identities.", p.opts.MaxPerSubscription)
		}
	}
	tenant := ""
	if old != nil {
		tenant = old.TenantID
	} else if tenant, err = p.tenantFor(ctx, req); err != nil {
		return nil, err
	}
	// The record's stored name keeps the casing it was created with, so the
	// identity's resource ID does too.
	idName := name
	if old != nil {
		idName = old.Name
	}
	rid := arm.NewResourceID(req.ID.SubscriptionID, req.ID.ResourceGroup, Namespace, "userAssignedIdentities", idName)
	// Idempotent: returns the existing principal, or recreates one that was
	// lost (a half-finished delete).
	mi, err := p.ids.CreateUserAssigned(ctx, tenant, rid.String())
	if err != nil {
		return nil, azerr.From(err)
	}
	var out *record
	created := false
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, key)
		switch {
		case err == nil:
			created = false
			cur.Tags = tags
			if scope != "" {
				cur.IsolationScope = scope
			}
			cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		case errors.Is(err, store.ErrNotFound):
			created, ver = true, store.Absent
			cur = &record{Name: idName, SubscriptionID: req.ID.SubscriptionID, ResourceGroup: req.ID.ResourceGroup,
				Location: loc, Tags: tags, IsolationScope: scope, SystemData: arm.NewSystemData(req.Principal, req.Now)}
		default:
			return err
		}
		cur.TenantID, cur.PrincipalID, cur.ClientID = mi.TenantID, mi.PrincipalID, mi.ClientID
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	if created {
		return arm.Created(render(out, req.APIVersion)), nil
	}
	return arm.OK(render(out, req.APIVersion)), nil
}

func (p *Provider) patchIdentity(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body identityBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Tags != nil && *body.Tags != nil {
		if err := arm.ValidateTags(*body.Tags); err != nil {
			return nil, err
		}
	}
	scope, err := body.isolationScope()
	if err != nil {
		return nil, err
	}
	key := uaiKey(req.ID.SubscriptionID, req.ID.ResourceGroup, req.ID.Name())
	var out *record
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, key)
		if errors.Is(err, store.ErrNotFound) {
			return arm.ResourceNotFound(req.ID)
		}
		if err != nil {
			return err
		}
		if body.Location != nil && *body.Location != "" && arm.NormalizeLocation(*body.Location) != cur.Location {
			return azerr.New(http.StatusBadRequest, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s'. Its location cannot be changed.", cur.Name, cur.Location)
		}
		if body.Tags != nil {
			cur.Tags = *body.Tags
		}
		if scope != "" {
			cur.IsolationScope = scope
		}
		cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, azerr.From(err)
	}
	return arm.OK(render(out, req.APIVersion)), nil
}

func (p *Provider) deleteIdentity(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	r, _, err := p.get(ctx, p.st, uaiKey(req.ID.SubscriptionID, req.ID.ResourceGroup, req.ID.Name()))
	if errors.Is(err, store.ErrNotFound) {
		return arm.NoContent(), nil
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if err := p.remove(ctx, r); err != nil {
		return nil, azerr.From(err)
	}
	return &arm.Response{Status: http.StatusOK}, nil
}

// remove deletes an identity everywhere. The principal goes first so its
// tokens stop verifying at once; the record goes last, so a failure part
// way leaves something a retried DELETE finds and finishes.
func (p *Provider) remove(ctx context.Context, r *record) error {
	rid := r.id().String()
	// Workload secret and the self-attachment issueWorkloadSecret made.
	if err := p.ids.RemoveResource(ctx, rid); err != nil {
		return fmt.Errorf("forget identity resource: %w", err)
	}
	if err := p.ids.DeleteUserAssigned(ctx, rid); err != nil && !isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("delete identity principal: %w", err)
	}
	if r.PrincipalID != "" {
		if _, err := p.engine.DeleteForPrincipal(ctx, r.PrincipalID); err != nil {
			return fmt.Errorf("delete role assignments: %w", err)
		}
	}
	return p.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, r.key(), store.Any) })
}

func isStatus(err error, status int) bool {
	var ae *azerr.Error
	return errors.As(err, &ae) && ae.Status == status
}

// listRecords returns the identities of a subscription, or of one group.
func (p *Provider) listRecords(ctx context.Context, sub, rg string) ([]*record, error) {
	pfx := subPrefix(sub)
	if rg != "" {
		pfx = rgPrefix(sub, rg)
	}
	recs, err := p.st.List(ctx, pfx, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*record, 0, len(recs))
	for _, rec := range recs {
		r, err := store.DecodeJSON[record](rec)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (p *Provider) list(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	rs, err := p.listRecords(ctx, req.ID.SubscriptionID, req.ID.ResourceGroup)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	renderAt := func(r *record) arm.Resource { return render(r, req.APIVersion) }
	return arm.RenderPage(req, rs, renderAt, func(r arm.Resource) string { return strings.ToLower(r.ID) })
}

// ListResources lists identities for the generic resource lists.
func (p *Provider) ListResources(ctx context.Context, sub, rg string) ([]arm.GenericResource, error) {
	return arm.ListGeneric(ctx, sub, rg, p.listRecords, generic)
}

// DeleteGroupResources deletes every identity of a resource group, as a
// DELETE of each would.
func (p *Provider) DeleteGroupResources(ctx context.Context, sub, rg string) error {
	rs, err := p.listRecords(ctx, sub, rg)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if err := p.remove(ctx, r); err != nil {
			return fmt.Errorf("delete identity %s: %w", r.Name, err)
		}
	}
	return nil
}
