package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/providers/identityblock"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Options configures the provider.
type Options struct {
	// EndpointSuffix forms the displayed blob endpoint
	// "https://{name}.blob.{EndpointSuffix}/" (default "storage.localhost").
	// keyhaven serves no blob data plane there; it is a display value.
	EndpointSuffix string
	// NewID returns fresh internal and blob ids (default uuid.NewString).
	NewID  func() string
	Logger *slog.Logger
	// Identities gives accounts their managed identities; when nil an
	// account's identity property is refused.
	Identities Identities
}

// Identities is what the provider needs of the identity service.
type Identities interface {
	identityblock.Identities
	RemoveResource(ctx context.Context, resourceID string) error
}

// Provider is the Microsoft.Storage resource provider.
type Provider struct {
	st   store.Store
	clk  clock.Clock
	opts Options
}

var (
	_ arm.Provider       = (*Provider)(nil)
	_ arm.GroupResources = (*Provider)(nil)
)

// New returns the provider over st.
func New(st store.Store, clk clock.Clock, opts Options) *Provider {
	if opts.EndpointSuffix == "" {
		opts.EndpointSuffix = "storage.localhost"
	}
	if opts.NewID == nil {
		opts.NewID = uuid.NewString
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &Provider{st: st, clk: clk, opts: opts}
}

// Namespace is "Microsoft.Storage".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	t := func(name string, h arm.HandlerFunc) arm.ResourceType {
		return arm.ResourceType{Name: name, APIVersions: APIVersions, Handler: h}
	}
	return []arm.ResourceType{
		t("storageAccounts", p.serveAccounts),
		t("storageAccounts/blobServices", p.serveBlobService),
		t("storageAccounts/blobServices/containers", p.serveContainers),
		t("storageAccounts/blobServices/containers/blobs", p.serveBlobs),
		t("checkNameAvailability", p.serveCheckName),
	}
}

// get reads the storage account record named name.
func (p *Provider) get(ctx context.Context, r store.Reader, name string) (*record, int64, error) {
	return store.GetJSON[record](ctx, r, nameKey(name))
}

// put writes a at the key its name gives.
func put(ctx context.Context, tx store.Tx, a *record, ifVersion int64) error {
	_, err := store.PutJSON(ctx, tx, nameKey(a.Name), a, ifVersion)
	return err
}

// sameHome reports whether the record lives at id's subscription and group.
func sameHome(a *record, id arm.ResourceID) bool {
	return strings.EqualFold(a.SubscriptionID, id.SubscriptionID) && strings.EqualFold(a.ResourceGroup, id.ResourceGroup)
}

// lookup finds the account an ID names, or the ARM 404 for it.
func (p *Provider) lookup(ctx context.Context, r store.Reader, id arm.ResourceID) (*record, int64, error) {
	if len(id.Providers) != 1 || len(id.Providers[0].Names) < 1 || id.ResourceGroup == "" ||
		!strings.EqualFold(id.Providers[0].Namespace, Namespace) || !strings.EqualFold(id.Providers[0].Types[0], "storageAccounts") {
		return nil, 0, azerr.New(http.StatusBadRequest, "InvalidResourceId", "'%s' is not a storage account resource ID.", clip(id.String(), 200))
	}
	name := id.Providers[0].Names[0]
	acct := arm.NewResourceID(id.SubscriptionID, id.ResourceGroup, Namespace, "storageAccounts", name)
	if len(name) < 3 || len(name) > 24 {
		return nil, 0, arm.ResourceNotFound(acct)
	}
	a, ver, err := p.get(ctx, r, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && !sameHome(a, id) {
		return nil, 0, arm.ResourceNotFound(acct)
	}
	if err != nil {
		return nil, 0, azerr.Internal(err)
	}
	return a, ver, nil
}

// resolve finds the account of a resource ID string (Go API callers).
func (p *Provider) resolve(ctx context.Context, r store.Reader, accountID string) (*record, error) {
	id, err := arm.ParseResourceID(accountID)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(id.ResourceType(), AccountType) {
		return nil, azerr.New(http.StatusBadRequest, "InvalidResourceId", "'%s' is not a storage account resource ID.", clip(accountID, 200))
	}
	a, _, err := p.lookup(ctx, r, id)
	return a, err
}

// Exists reports whether accountID names an existing storage account. A
// malformed ID is an error.
func (p *Provider) Exists(ctx context.Context, accountID string) (bool, error) {
	_, err := p.resolve(ctx, p.st, accountID)
	var ae *azerr.Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

func (p *Provider) serveAccounts(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 {
		return nil, azerr.NotFound("NotFound", "Storage accounts are not extension resources.")
	}
	if req.Kind == arm.KindCollection {
		return p.listAccounts(ctx, req)
	}
	if req.Kind != arm.KindResource || req.ID.ResourceGroup == "" {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	switch req.Method {
	case http.MethodGet:
		a, _, err := p.lookup(ctx, p.st, req.ID)
		if err != nil {
			return nil, err
		}
		return arm.OK(p.render(a)), nil
	case http.MethodPut:
		return p.putAccount(ctx, req)
	case http.MethodPatch:
		return p.patchAccount(ctx, req)
	case http.MethodDelete:
		return p.deleteAccount(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

type accountBody struct {
	Location *string `json:"location"`
	SKU      *struct {
		Name string `json:"name"`
	} `json:"sku"`
	Kind     *string             `json:"kind"`
	Tags     *map[string]string  `json:"tags"`
	Identity *identityblock.Body `json:"identity"`
}

// applyIdentity gives the account at id the identity block of a PUT or
// PATCH; a new account without one carries none. It runs before the account
// record is written, which stores the block it returns.
func (p *Provider) applyIdentity(ctx context.Context, req *arm.Request, id string, body *identityblock.Body, creating bool) (*identity.IdentityBlock, bool, error) {
	if body == nil && !creating {
		return nil, false, nil
	}
	if p.opts.Identities == nil {
		if body == nil {
			return nil, false, nil
		}
		return nil, false, arm.BadRequest("InvalidRequestContent", "Managed identities are not configured for storage accounts.").WithTarget("identity")
	}
	b, err := identityblock.Apply(ctx, p.opts.Identities, req, req.Tenant(ctx), id, body, creating)
	return b, err == nil, err
}

func (p *Provider) putAccount(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name := req.ID.Name()
	if err := ValidateAccountName(name); err != nil {
		return nil, err
	}
	var body accountBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	loc, err := req.RequireLocation(body.Location, AccountType)
	if err != nil {
		return nil, err
	}
	if body.SKU == nil || body.SKU.Name == "" {
		return nil, arm.BadRequest("MissingRequiredProperty", "The 'sku.name' property is required.").WithTarget("sku.name")
	}
	skuName, ok := skus[strings.ToLower(body.SKU.Name)]
	if !ok {
		return nil, arm.BadRequest("InvalidValuesForRequestParameters",
			"Values for request parameters are invalid: sku.name '%s'. Supported: Standard_LRS, Standard_GRS, Standard_RAGRS, Standard_ZRS, Premium_LRS, Premium_ZRS, Standard_GZRS, Standard_RAGZRS.",
			clip(body.SKU.Name, 40)).WithTarget("sku.name")
	}
	if body.Kind == nil || *body.Kind == "" {
		return nil, arm.BadRequest("MissingRequiredProperty", "The 'kind' property is required.").WithTarget("kind")
	}
	kind, ok := kinds[strings.ToLower(*body.Kind)]
	if !ok {
		return nil, arm.BadRequest("InvalidValuesForRequestParameters",
			"Values for request parameters are invalid: kind '%s'. Supported: Storage, StorageV2, BlobStorage, FileStorage, BlockBlobStorage.",
			clip(*body.Kind, 40)).WithTarget("kind")
	}
	tags, err := arm.TagsOf(body.Tags)
	if err != nil {
		return nil, err
	}
	// The name must be free or this account's before identities are made
	// for it; the transaction below checks again.
	existing, _, err := p.get(ctx, p.st, name)
	switch {
	case err == nil && !sameHome(existing, req.ID):
		return nil, azerr.New(http.StatusConflict, "StorageAccountAlreadyTaken", "The storage account named %s is already taken.", name)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, storeErr(err)
	}
	idBlock, idSet, err := p.applyIdentity(ctx, req, req.ID.String(), body.Identity, existing == nil)
	if err != nil {
		return nil, err
	}
	var out *record
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			out = &record{InternalID: strings.ToLower(p.opts.NewID()), Name: name, SubscriptionID: strings.ToLower(req.ID.SubscriptionID),
				ResourceGroup: req.ID.ResourceGroup, Location: loc, SKU: skuName, Kind: kind, Tags: tags, Identity: idBlock,
				CreationTime: req.Now, SystemData: arm.NewSystemData(req.Principal, req.Now)}
			if err := put(ctx, tx, out, store.Absent); err != nil {
				return err
			}
			_, err = tx.Put(ctx, scopeKey(out.SubscriptionID, out.ResourceGroup, name), []byte(name), store.Any)
			return err
		case err != nil:
			return err
		case !sameHome(cur, req.ID):
			return azerr.New(http.StatusConflict, "StorageAccountAlreadyTaken", "The storage account named %s is already taken.", name)
		case cur.Location != loc:
			return azerr.New(http.StatusConflict, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				cur.Name, cur.Location, cur.ResourceGroup, loc)
		}
		cur.SKU, cur.Kind, cur.Tags = skuName, kind, tags
		if idSet {
			cur.Identity = idBlock
		}
		cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	// Azure answers a create 200 or 202; creation here is immediate.
	return arm.OK(p.render(out)), nil
}

func (p *Provider) patchAccount(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body accountBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Tags != nil {
		if err := arm.ValidateTags(*body.Tags); err != nil {
			return nil, err
		}
	}
	skuName := ""
	if body.SKU != nil && body.SKU.Name != "" {
		var ok bool
		if skuName, ok = skus[strings.ToLower(body.SKU.Name)]; !ok {
			return nil, arm.BadRequest("InvalidValuesForRequestParameters", "Values for request parameters are invalid: sku.name '%s'.",
				clip(body.SKU.Name, 40)).WithTarget("sku.name")
		}
	}
	if _, _, err := p.lookup(ctx, p.st, req.ID); err != nil {
		return nil, err
	}
	idBlock, idSet, err := p.applyIdentity(ctx, req, req.ID.String(), body.Identity, false)
	if err != nil {
		return nil, err
	}
	var out *record
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.lookup(ctx, tx, req.ID)
		if err != nil {
			return err
		}
		if idSet {
			cur.Identity = idBlock
		}
		if body.Tags != nil {
			cur.Tags = *body.Tags
			if cur.Tags == nil {
				cur.Tags = map[string]string{}
			}
		}
		if skuName != "" {
			cur.SKU = skuName
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

func (p *Provider) deleteAccount(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var gone *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		gone = nil
		cur, ver, err := p.lookup(ctx, tx, req.ID)
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		gone = cur
		return removeAccount(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if gone == nil {
		return arm.NoContent(), nil
	}
	if err := p.forgetIdentities(ctx, gone); err != nil {
		return nil, err
	}
	p.purgeData(ctx, gone.InternalID)
	return &arm.Response{Status: http.StatusOK}, nil
}

// forgetIdentities deletes a removed account's system-assigned identity
// and its attachments, as ARM does with the resource.
func (p *Provider) forgetIdentities(ctx context.Context, a *record) error {
	if p.opts.Identities == nil {
		return nil
	}
	if err := p.opts.Identities.RemoveResource(ctx, a.id().String()); err != nil {
		return azerr.From(err)
	}
	return nil
}

// removeAccount deletes the record and index and leaves a purge marker for
// the account's data, removed afterwards in batches.
func removeAccount(ctx context.Context, tx store.Tx, a *record, ver int64) error {
	if err := tx.Delete(ctx, nameKey(a.Name), ver); err != nil {
		return err
	}
	if err := tx.Delete(ctx, scopeKey(a.SubscriptionID, a.ResourceGroup, a.Name), store.Any); err != nil {
		return err
	}
	_, err := tx.Put(ctx, purgePrefix+a.InternalID, []byte(a.Name), store.Any)
	return err
}

// storeErr keeps *azerr.Error as is and hides everything else behind a 500;
// a lost optimistic race is a retryable 409.
func storeErr(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return azerr.New(http.StatusConflict, "Conflict", "The storage account was changed by another request; retry the operation.")
	}
	return azerr.From(err)
}

// listRecords returns the accounts of a subscription, or of one group.
func (p *Provider) listRecords(ctx context.Context, sub, rg string) ([]*record, error) {
	pfx := scopeSubPrefix(sub)
	if rg != "" {
		pfx = scopeRGPrefix(sub, rg)
	}
	var out []*record
	err := p.st.View(ctx, func(r store.Reader) error {
		out = nil
		idx, err := r.List(ctx, pfx, store.ListOptions{})
		if err != nil {
			return err
		}
		for _, e := range idx {
			a, _, err := p.get(ctx, r, string(e.Value))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return nil
	})
	return out, err
}

func (p *Provider) listAccounts(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.ID.SubscriptionID == "" {
		return nil, azerr.NotFound("NotFound", "Storage accounts are listed per subscription or resource group.")
	}
	as, err := p.listRecords(ctx, req.ID.SubscriptionID, req.ID.ResourceGroup)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return arm.RenderPage(req, as, p.render, func(a account) string { return strings.ToLower(a.ID) })
}

// ListResources lists accounts for the generic resource lists.
func (p *Provider) ListResources(ctx context.Context, sub, rg string) ([]arm.GenericResource, error) {
	return arm.ListGeneric(ctx, sub, rg, p.listRecords, generic)
}

// DeleteGroupResources deletes every account of a resource group, with
// its containers and blobs (a resource group delete). The ARM server's lock
// guard has already refused the group delete if any account is locked.
func (p *Provider) DeleteGroupResources(ctx context.Context, sub, rg string) error {
	as, err := p.listRecords(ctx, sub, rg)
	if err != nil {
		return err
	}
	for _, a := range as {
		err := p.st.Update(ctx, func(tx store.Tx) error {
			cur, ver, err := p.get(ctx, tx, a.Name)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			if cur.InternalID != a.InternalID {
				return nil
			}
			return removeAccount(ctx, tx, cur, ver)
		})
		if err != nil {
			return fmt.Errorf("delete storage account %s: %w", a.Name, err)
		}
		if err := p.forgetIdentities(ctx, a); err != nil {
			return fmt.Errorf("delete storage account %s: %w", a.Name, err)
		}
		p.purgeData(ctx, a.InternalID)
	}
	return nil
}

func (p *Provider) serveCheckName(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	body, err := arm.DecodeCheckName(req)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(body.Type, AccountType) {
		return nil, arm.BadRequest("InvalidResourceType", "The type must be '%s'.", AccountType).WithTarget("type")
	}
	lookup := func(name string) error {
		_, _, err := p.get(ctx, p.st, name)
		return err
	}
	return arm.AnswerCheckName(body.Name, ValidateAccountName, lookup, fmt.Sprintf("The storage account named %s is already taken.", body.Name))
}
