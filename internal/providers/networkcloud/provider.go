package networkcloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/providers/identityblock"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// VaultLookup finds an active vault by name (*keyvault.Provider implements
// it). A legacy secretArchive names its vault by resource ID; the provider
// checks the vault exists with it.
type VaultLookup interface {
	LookupVault(ctx context.Context, name string) (*vault.VaultInfo, error)
}

// SubscriptionTenants tells which tenant a subscription belongs to
// (*arm.Server implements it).
type SubscriptionTenants interface {
	SubscriptionTenant(ctx context.Context, subscriptionID string) (string, error)
}

// Options configures the provider.
type Options struct {
	// VaultDomain and VaultPort form vault URIs
	// (https://{vault}.{VaultDomain}[:{VaultPort}]/), as the keyvault
	// provider renders them. Defaults: vault.localhost, 443.
	VaultDomain string
	VaultPort   int
	// Tenants resolves a subscription's tenant for identities; when nil the
	// caller's tenant is used.
	Tenants SubscriptionTenants
	Logger  *slog.Logger
}

// Provider is the Microsoft.NetworkCloud resource provider: cluster
// managers, clusters, bare-metal machines and storage appliances. It is the
// rotation engine's ArchiveResolver.
type Provider struct {
	st   store.Store
	clk  clock.Clock
	ids  *identity.Service
	kv   VaultLookup
	opts Options
	log  *slog.Logger

	mu     sync.RWMutex
	engine rotation.Engine
}

var (
	_ arm.Provider             = (*Provider)(nil)
	_ arm.GroupResources       = (*Provider)(nil)
	_ rotation.ArchiveResolver = (*Provider)(nil)
)

// New returns the provider. kv may be nil (then no keyVaultId is accepted).
func New(st store.Store, clk clock.Clock, ids *identity.Service, kv VaultLookup, opts Options) *Provider {
	if clk == nil {
		clk = clock.Real{}
	}
	if opts.VaultDomain == "" {
		opts.VaultDomain = "vault.localhost"
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Provider{st: st, clk: clk, ids: ids, kv: kv, opts: opts, log: log}
}

// SetEngine wires the rotation engine, which is built after the provider
// (it needs the provider as its ArchiveResolver). Until it is set, deploy
// and rotateCredential fail and statuses render without rotation data.
func (p *Provider) SetEngine(e rotation.Engine) {
	p.mu.Lock()
	p.engine = e
	p.mu.Unlock()
}

func (p *Provider) eng() rotation.Engine {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.engine
}

func (p *Provider) needEngine() (rotation.Engine, error) {
	if e := p.eng(); e != nil {
		return e, nil
	}
	return nil, azerr.New(http.StatusServiceUnavailable, "RotationEngineUnavailable",
		"The credential rotation engine is not running; retry later.")
}

// Namespace is "Microsoft.NetworkCloud".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	t := func(name string, h arm.HandlerFunc) arm.ResourceType {
		return arm.ResourceType{Name: name, APIVersions: APIVersions, Handler: h}
	}
	return []arm.ResourceType{
		t(typeManagers, p.serveManagers),
		t(typeClusters, p.serveClusters),
		t(typeMachines, p.serveMachines),
		t(typeAppliances, p.serveAppliances),
	}
}

// --- store helpers ---

func listJSON[T any](ctx context.Context, r store.Reader, pfx string) ([]*T, error) {
	var out []*T
	after := ""
	for {
		recs, err := r.List(ctx, pfx, store.ListOptions{After: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			v, err := store.DecodeJSON[T](rec)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		if len(recs) < 500 {
			return out, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// listScope lists records of a type in a subscription or one group.
func listScope[T any](ctx context.Context, r store.Reader, typ, sub, rg string) ([]*T, error) {
	pfx := subPrefix(typ, sub)
	if rg != "" {
		pfx = rgPrefix(typ, sub, rg)
	}
	return listJSON[T](ctx, r, pfx)
}

// getRendered answers a GET of the record of type T at req.ID.
func getRendered[T, R any](ctx context.Context, r store.Reader, req *arm.Request, render func(context.Context, *T) (R, error)) (*arm.Response, error) {
	rec, _, err := store.GetJSON[T](ctx, r, keyOf(req.ID))
	if isNotFound(err) {
		return nil, arm.ResourceNotFound(req.ID)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	res, err := render(ctx, rec)
	if err != nil {
		return nil, err
	}
	return arm.OK(res), nil
}

// listRendered answers a list of the records of type typ in req's
// subscription or group, paged in order of their lower-cased IDs.
func listRendered[T, R any](ctx context.Context, r store.Reader, req *arm.Request, typ string,
	render func(context.Context, *T) (R, error), id func(R) string) (*arm.Response, error) {
	recs, err := listScope[T](ctx, r, typ, req.ID.SubscriptionID, req.ID.ResourceGroup)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	items := make([]R, 0, len(recs))
	for _, rec := range recs {
		res, err := render(ctx, rec)
		if err != nil {
			return nil, err
		}
		items = append(items, res)
	}
	page, err := arm.Paginate(req, items, func(r R) string { return strings.ToLower(id(r)) })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}

// setIdentity applies a request's identity block to the resource id in
// subscription sub; a resource being created without one still gets an
// (empty) identity record.
func (p *Provider) setIdentity(ctx context.Context, req *arm.Request, sub, id string, body *identityblock.Body, creating bool) error {
	_, err := identityblock.Apply(ctx, p.ids, req, p.tenantFor(ctx, req, sub), id, body, creating)
	return err
}

// storeErr keeps *azerr.Error and hides the rest behind a 500; a lost
// optimistic race is a retryable 409.
func storeErr(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return azerr.New(http.StatusConflict, "Conflict", "The resource was changed by another request; retry the operation.")
	}
	return azerr.From(err)
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// tenantFor is the tenant identities of a resource in sub are created in.
func (p *Provider) tenantFor(ctx context.Context, req *arm.Request, sub string) string {
	if p.opts.Tenants != nil {
		if t, err := p.opts.Tenants.SubscriptionTenant(ctx, sub); err == nil && t != "" {
			return t
		}
	}
	if req != nil && req.Principal != nil {
		return req.Principal.TenantID
	}
	return ""
}

// renderIdentity returns the identity block of a resource as NetworkCloud
// renders it, or nil when it carries none.
func (p *Provider) renderIdentity(ctx context.Context, id string) (*identity.IdentityBlock, error) {
	return identityblock.Render(ctx, p.ids, id)
}

// identityPlan is the identity set a resource will carry after a request.
type identityPlan struct {
	system bool
	user   map[string]string // lower-case resource ID -> as given/stored
}

func planFromSpec(s identity.IdentitySpec) (identityPlan, error) {
	n := strings.ToLower(strings.ReplaceAll(s.Type, " ", ""))
	pl := identityPlan{user: map[string]string{}}
	switch n {
	case "", "none":
	case "systemassigned":
		pl.system = true
	case "userassigned":
	case "systemassigned,userassigned":
		pl.system = true
	default:
		return pl, arm.BadRequest("InvalidIdentityType",
			"The identity type '%s' is not supported. Supported values are None, SystemAssigned, UserAssigned and 'SystemAssigned,UserAssigned'.",
			clip(s.Type, 64)).WithTarget("identity.type")
	}
	if strings.Contains(n, "userassigned") {
		for _, id := range s.UserAssigned {
			pl.user[strings.ToLower(id)] = id
		}
	}
	return pl, nil
}

func planFromBlock(b *identity.IdentityBlock) identityPlan {
	pl := identityPlan{user: map[string]string{}}
	if b == nil {
		return pl
	}
	pl.system = b.PrincipalID != ""
	for id := range b.UserAssignedIdentities {
		pl.user[strings.ToLower(id)] = id
	}
	return pl
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// --- GroupResources ---

// ListResources lists the provider's resources for the generic lists.
func (p *Provider) ListResources(ctx context.Context, sub, rg string) ([]arm.GenericResource, error) {
	var out []arm.GenericResource
	gen := func(id arm.ResourceID, name, loc string, tags map[string]string) {
		if tags == nil {
			tags = map[string]string{}
		}
		out = append(out, arm.GenericResource{ID: id.String(), Name: name, Type: id.ResourceType(), Location: loc, Tags: tags})
	}
	ms, err := listScope[managerRecord](ctx, p.st, typeManagers, sub, rg)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		gen(m.id(), m.Name, m.Location, m.Tags)
	}
	cs, err := listScope[clusterRecord](ctx, p.st, typeClusters, sub, rg)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		gen(c.id(), c.Name, c.Location, c.Tags)
	}
	bs, err := listScope[machineRecord](ctx, p.st, typeMachines, sub, rg)
	if err != nil {
		return nil, err
	}
	for _, b := range bs {
		gen(b.id(), b.Name, b.Location, b.Tags)
	}
	as, err := listScope[applianceRecord](ctx, p.st, typeAppliances, sub, rg)
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		gen(a.id(), a.Name, a.Location, a.Tags)
	}
	return out, nil
}

// DeleteGroupResources deletes everything in a resource group as a DELETE
// of each resource would: clusters first (their machines and rotation
// targets go with them), then cluster managers.
func (p *Provider) DeleteGroupResources(ctx context.Context, sub, rg string) error {
	cs, err := listScope[clusterRecord](ctx, p.st, typeClusters, sub, rg)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := p.removeCluster(ctx, c.id()); err != nil {
			return fmt.Errorf("delete cluster %s: %w", c.Name, err)
		}
	}
	// Machines or appliances of a cluster in another group stay with it.
	ms, err := listScope[managerRecord](ctx, p.st, typeManagers, sub, rg)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := p.removeManager(ctx, m.id()); err != nil {
			return fmt.Errorf("delete cluster manager %s: %w", m.Name, err)
		}
	}
	return nil
}
