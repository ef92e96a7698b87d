package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// DataPurger removes a vault's data-plane objects and destroys its seal
// scope. The vault data plane (vault.Service) implements it.
type DataPurger interface {
	PurgeVaultData(ctx context.Context, internalID string) error
}

// Options configures the provider.
type Options struct {
	// VaultDomain is the DNS suffix of vault hosts, e.g. "vault.localhost".
	VaultDomain string
	// VaultPort is the HTTPS port in vault URIs (omitted when 0 or 443).
	VaultPort int
	// NewID returns a fresh vault internal id (default uuid.NewString).
	NewID func() string
}

// Provider is the Microsoft.KeyVault resource provider.
type Provider struct {
	st   store.Store
	clk  clock.Clock
	opts Options

	mu     sync.RWMutex
	purger DataPurger
}

var (
	_ arm.Provider       = (*Provider)(nil)
	_ arm.GroupResources = (*Provider)(nil)
	_ vault.Directory    = (*Provider)(nil)
)

// New returns the provider over st.
func New(st store.Store, clk clock.Clock, opts Options) *Provider {
	if opts.VaultDomain == "" {
		opts.VaultDomain = "vault.localhost"
	}
	if opts.NewID == nil {
		opts.NewID = uuid.NewString
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &Provider{st: st, clk: clk, opts: opts}
}

// SetDataPurger wires the data plane, which is built after the provider
// (it needs the provider as its Directory). Until it is set, purges remove
// only the control-plane record.
func (p *Provider) SetDataPurger(d DataPurger) {
	p.mu.Lock()
	p.purger = d
	p.mu.Unlock()
}

// Namespace is "Microsoft.KeyVault".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	t := func(name string, h arm.HandlerFunc, op func(*arm.Request) string) arm.ResourceType {
		return arm.ResourceType{Name: name, APIVersions: APIVersions, Handler: h, OperationName: op}
	}
	named := func(n string) func(*arm.Request) string { return func(*arm.Request) string { return n } }
	return []arm.ResourceType{
		t("vaults", p.serveVaults, vaultOpName),
		t("vaults/accessPolicies", p.serveAccessPolicies, named("VaultAccessPolicyUpdate")),
		t("deletedVaults", p.serveDeletedList, named("VaultListDeleted")),
		t("locations/deletedVaults", p.serveDeleted, func(req *arm.Request) string {
			if req.Kind == arm.KindAction {
				return "VaultPurge"
			}
			return "VaultGetDeleted"
		}),
		t("checkNameAvailability", p.serveCheckName, nil),
	}
}

// vaultOpName is Key Vault's audit operation name for a vaults request
// (a PUT that turns out to recover a vault is renamed VaultRecover by its
// handler, which reads the body).
func vaultOpName(req *arm.Request) string {
	switch {
	case req.Kind == arm.KindCollection:
		return "VaultList"
	case req.Method == http.MethodGet:
		return "VaultGet"
	case req.Method == http.MethodPut:
		return "VaultPut"
	case req.Method == http.MethodPatch:
		return "VaultPatch"
	case req.Method == http.MethodDelete:
		return "VaultDelete"
	}
	return ""
}

// get reads the vault record named name.
func (p *Provider) get(ctx context.Context, r store.Reader, name string) (*record, int64, error) {
	return store.GetJSON[record](ctx, r, nameKey(name))
}

// put writes v at the key its name gives.
func put(ctx context.Context, tx store.Tx, v *record, ifVersion int64) error {
	_, err := store.PutJSON(ctx, tx, nameKey(v.Name), v, ifVersion)
	return err
}

// insertVault writes a new vault record and its subscription/group index.
func insertVault(ctx context.Context, tx store.Tx, v *record) error {
	if err := put(ctx, tx, v, store.Absent); err != nil {
		return err
	}
	_, err := tx.Put(ctx, scopeKey(v.SubscriptionID, v.ResourceGroup, v.Name), []byte(v.Name), store.Any)
	return err
}

// LookupVault returns an active vault by name (vault.Directory): one store
// read on the data-plane hot path.
func (p *Provider) LookupVault(ctx context.Context, name string) (*vault.VaultInfo, error) {
	v, err := p.byName(ctx, name)
	if err != nil {
		return nil, err
	}
	if v.Deleted {
		return nil, vaultNotFound(name)
	}
	return info(v), nil
}

// byName reads the vault record named name, active or soft-deleted; a name
// no record holds is Key Vault's 404 VaultNotFound.
func (p *Provider) byName(ctx context.Context, name string) (*record, error) {
	if len(name) < 3 || len(name) > 24 {
		return nil, vaultNotFound(name)
	}
	v, _, err := p.get(ctx, p.st, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, vaultNotFound(name)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return v, nil
}

func vaultNotFound(name string) error {
	return azerr.NotFound("VaultNotFound", "The vault '%s' was not found.", clip(name, 40))
}

func notFound(id arm.ResourceID) error { return arm.ResourceNotFound(id) }

func nameTaken(name string) error {
	return azerr.New(http.StatusConflict, "VaultAlreadyExists",
		"The vault name '%s' is already in use. Vault names are globally unique so it is possible that the name is already taken. If you are sure that the vault name was not taken then it is possible that a vault with the same name was recently deleted but not purged after being placed in a recoverable state. If the vault is in a recoverable state then the vault will need to be explicitly purged before reusing the name.", name)
}

func nameHeldByDeleted(name string) error {
	return azerr.New(http.StatusConflict, "ConflictError",
		"A vault with the same name '%s' already exists in deleted state. You need to either recover or purge the existing key vault.", name)
}

// sameHome reports whether the record lives at the request's subscription
// and resource group.
func sameHome(v *record, id arm.ResourceID) bool {
	return strings.EqualFold(v.SubscriptionID, id.SubscriptionID) && strings.EqualFold(v.ResourceGroup, id.ResourceGroup)
}

// opName records Key Vault's audit operation name for the request (VaultGet,
// VaultPut, ...), in place of the ARM action the core recorded.
func opName(ctx context.Context, name string) {
	principal.InfoFrom(ctx).OperationName = name
}

func (p *Provider) serveVaults(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 {
		return nil, azerr.NotFound("NotFound", "Vaults are not extension resources.")
	}
	if req.Kind == arm.KindCollection {
		return p.listVaults(ctx, req)
	}
	if req.Kind != arm.KindResource || req.ID.ResourceGroup == "" {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	switch req.Method {
	case http.MethodGet:
		return p.getVault(ctx, req)
	case http.MethodPut:
		return p.putVault(ctx, req)
	case http.MethodPatch:
		return p.patchVault(ctx, req)
	case http.MethodDelete:
		return p.deleteVault(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

func (p *Provider) getVault(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	v, _, err := p.get(ctx, p.st, req.ID.Name())
	if errors.Is(err, store.ErrNotFound) || err == nil && (v.Deleted || !sameHome(v, req.ID)) {
		return nil, notFound(req.ID)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return arm.OK(p.render(v)), nil
}

func (p *Provider) putVault(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name := req.ID.Name()
	if err := ValidateVaultName(name); err != nil {
		return nil, err
	}
	var body vaultBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	mode, err := body.Properties.createMode()
	if err != nil {
		return nil, err
	}
	loc, err := req.RequireLocation(body.Location, VaultType)
	if err != nil {
		return nil, err
	}
	tags, err := arm.TagsOf(body.Tags)
	if err != nil {
		return nil, err
	}
	if mode == "recover" {
		opName(ctx, "VaultRecover")
		return p.recoverVault(ctx, req, loc)
	}
	now := req.Now
	var out *record
	created := false
	err = p.st.Update(ctx, func(tx store.Tx) error {
		created = false
		cur, ver, err := p.get(ctx, tx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			pr, err := apply(nil, body.Properties, modeCreate)
			if err != nil {
				return err
			}
			out = &record{InternalID: strings.ToLower(p.opts.NewID()), Name: name, SubscriptionID: strings.ToLower(req.ID.SubscriptionID),
				ResourceGroup: req.ID.ResourceGroup, Location: loc, Tags: tags, Props: pr,
				SystemData: arm.NewSystemData(req.Principal, now)}
			created = true
			return insertVault(ctx, tx, out)
		case err != nil:
			return err
		case cur.Deleted:
			return nameHeldByDeleted(cur.Name)
		case !sameHome(cur, req.ID):
			return nameTaken(name)
		}
		if cur.Location != loc {
			return azerr.New(http.StatusConflict, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				cur.Name, cur.Location, cur.ResourceGroup, loc)
		}
		pr, err := apply(&cur.Props, body.Properties, modeReplace)
		if err != nil {
			return err
		}
		cur.Props, cur.Tags = pr, tags
		cur.SystemData = cur.SystemData.Touched(req.Principal, now)
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if created {
		return arm.Created(p.render(out)), nil
	}
	return arm.OK(p.render(out)), nil
}

// storeErr keeps *azerr.Error as is and hides everything else behind a 500;
// a lost optimistic race is a retryable 409.
func storeErr(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return azerr.New(http.StatusConflict, "Conflict", "The vault was changed by another request; retry the operation.")
	}
	return azerr.From(err)
}

// recoverVault brings a soft-deleted vault back with its InternalID (and so
// all its data) and the properties it had when deleted.
func (p *Provider) recoverVault(ctx context.Context, req *arm.Request, loc string) (*arm.Response, error) {
	name := req.ID.Name()
	var out *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, name)
		if errors.Is(err, store.ErrNotFound) {
			return azerr.NotFound("DeletedVaultNotFound",
				"No deleted vault named '%s' exists in subscription '%s' to recover.", name, req.ID.SubscriptionID)
		}
		if err != nil {
			return err
		}
		if !cur.Deleted {
			if sameHome(cur, req.ID) {
				return azerr.New(http.StatusConflict, "Conflict", "The vault '%s' is not in a deleted state; there is nothing to recover.", name)
			}
			return nameTaken(name)
		}
		if !strings.EqualFold(cur.SubscriptionID, req.ID.SubscriptionID) {
			return nameHeldByDeleted(name)
		}
		if cur.Purging {
			return azerr.New(http.StatusConflict, "Conflict", "The deleted vault '%s' is being purged and cannot be recovered.", name)
		}
		if cur.Location != loc {
			return badProp("location", "The deleted vault '%s' is in location '%s'; recover it with that location.", name, cur.Location)
		}
		if !strings.EqualFold(cur.ResourceGroup, req.ID.ResourceGroup) {
			return badProp("", "The deleted vault '%s' belonged to resource group '%s'; recover it there.", name, cur.ResourceGroup)
		}
		cur.Deleted, cur.DeletionDate, cur.ScheduledPurgeDate = false, nil, nil
		cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		out = cur
		if err := put(ctx, tx, cur, ver); err != nil {
			return err
		}
		if err := tx.Delete(ctx, deletedKey(cur.SubscriptionID, name), store.Any); err != nil {
			return err
		}
		_, err = tx.Put(ctx, scopeKey(cur.SubscriptionID, cur.ResourceGroup, name), []byte(cur.Name), store.Any)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return arm.OK(p.render(out)), nil
}

func (p *Provider) patchVault(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body vaultBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Tags != nil {
		if err := arm.ValidateTags(*body.Tags); err != nil {
			return nil, err
		}
	}
	var out *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, req.ID.Name())
		if errors.Is(err, store.ErrNotFound) || err == nil && (cur.Deleted || !sameHome(cur, req.ID)) {
			return notFound(req.ID)
		}
		if err != nil {
			return err
		}
		pr, err := apply(&cur.Props, body.Properties, modePatch)
		if err != nil {
			return err
		}
		cur.Props = pr
		if body.Tags != nil {
			cur.Tags = *body.Tags
		}
		cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return arm.OK(p.render(out)), nil
}

func (p *Provider) deleteVault(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	gone := false
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, req.ID.Name())
		if errors.Is(err, store.ErrNotFound) || err == nil && (cur.Deleted || !sameHome(cur, req.ID)) {
			gone = true
			return nil
		}
		if err != nil {
			return err
		}
		return softDelete(ctx, tx, cur, ver, req.Now)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if gone {
		return arm.NoContent(), nil
	}
	return &arm.Response{Status: http.StatusOK}, nil
}

// softDelete moves an active vault to the deleted state: it keeps its name
// and InternalID until purged.
func softDelete(ctx context.Context, tx store.Tx, v *record, ver int64, now time.Time) error {
	now = now.UTC()
	purgeAt := now.Add(time.Duration(v.Props.SoftDeleteRetentionInDays) * 24 * time.Hour)
	v.Deleted, v.DeletionDate, v.ScheduledPurgeDate = true, &now, &purgeAt
	if err := put(ctx, tx, v, ver); err != nil {
		return err
	}
	if err := tx.Delete(ctx, scopeKey(v.SubscriptionID, v.ResourceGroup, v.Name), store.Any); err != nil {
		return err
	}
	_, err := tx.Put(ctx, deletedKey(v.SubscriptionID, v.Name), []byte(v.Name), store.Any)
	return err
}

// listActive returns the active vaults of a subscription, or of one group.
func (p *Provider) listActive(ctx context.Context, sub, rg string) ([]*record, error) {
	pfx := scopeSubPrefix(sub)
	if rg != "" {
		pfx = scopeRGPrefix(sub, rg)
	}
	var out []*record
	err := p.st.View(ctx, func(r store.Reader) error {
		idx, err := r.List(ctx, pfx, store.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range idx {
			v, _, err := p.get(ctx, r, string(e.Value))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !v.Deleted {
				out = append(out, v)
			}
		}
		return nil
	})
	return out, err
}

func (p *Provider) listVaults(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.ID.SubscriptionID == "" {
		return nil, azerr.NotFound("NotFound", "Vaults are listed per subscription or resource group.")
	}
	vs, err := p.listActive(ctx, req.ID.SubscriptionID, req.ID.ResourceGroup)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return arm.RenderPage(req, vs, p.render, func(r arm.Resource) string { return strings.ToLower(r.ID) })
}

// ListResources lists active vaults for the generic resource lists.
func (p *Provider) ListResources(ctx context.Context, sub, rg string) ([]arm.GenericResource, error) {
	return arm.ListGeneric(ctx, sub, rg, p.listActive, generic)
}

// DeleteGroupResources soft-deletes every active vault of a resource group
// (a resource group delete), as Azure does.
func (p *Provider) DeleteGroupResources(ctx context.Context, sub, rg string) error {
	vs, err := p.listActive(ctx, sub, rg)
	if err != nil {
		return err
	}
	now := p.clk.Now()
	for _, v := range vs {
		err := p.st.Update(ctx, func(tx store.Tx) error {
			cur, ver, err := p.get(ctx, tx, v.Name)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if cur.Deleted || cur.InternalID != v.InternalID {
				return nil
			}
			return softDelete(ctx, tx, cur, ver, now)
		})
		if err != nil {
			return fmt.Errorf("soft-delete vault %s: %w", v.Name, err)
		}
	}
	return nil
}

func (p *Provider) serveAccessPolicies(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Kind != arm.KindResource || req.Method != http.MethodPut || req.ID.ResourceGroup == "" || len(req.ID.Providers) != 1 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	b := req.ID.Providers[0]
	vaultName, kind := b.Names[0], strings.ToLower(b.Names[1])
	vaultID := arm.NewResourceID(req.ID.SubscriptionID, req.ID.ResourceGroup, Namespace, "vaults", vaultName)
	var body struct {
		Properties *struct {
			AccessPolicies []authz.AccessPolicy `json:"accessPolicies"`
		} `json:"properties"`
	}
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Properties == nil {
		return nil, badProp("properties", "The 'properties.accessPolicies' list is required.")
	}
	in := body.Properties.AccessPolicies
	if err := validatePolicies(in); err != nil {
		return nil, err
	}
	var out *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, vaultName)
		if errors.Is(err, store.ErrNotFound) || err == nil && (cur.Deleted || !sameHome(cur, req.ID)) {
			return notFound(vaultID)
		}
		if err != nil {
			return err
		}
		pols, err := editPolicies(cur.Props.AccessPolicies, in, kind)
		if err != nil {
			return err
		}
		cur.Props.AccessPolicies = pols
		cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	type policyProps struct {
		AccessPolicies any `json:"accessPolicies"`
	}
	return arm.OK(struct {
		ID         string      `json:"id"`
		Name       string      `json:"name"`
		Type       string      `json:"type"`
		Location   string      `json:"location"`
		Properties policyProps `json:"properties"`
	}{ID: vaultID.Child("accessPolicies", kind).String(), Name: kind, Type: AccessPolicyTyp, Location: out.Location,
		Properties: policyProps{AccessPolicies: out.Props.AccessPolicies}}), nil
}
