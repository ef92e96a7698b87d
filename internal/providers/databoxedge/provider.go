package databoxedge

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/providers/identityblock"
	"github.com/keyhaven/keyhaven/internal/providers/insights"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/providers/msi"
	"github.com/keyhaven/keyhaven/internal/providers/storage"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// Identities is what the provider needs of the identity service.
type Identities interface {
	identityblock.Identities
	LookupPrincipal(ctx context.Context, objectID string) (*identity.DirectoryObject, error)
	RemoveResource(ctx context.Context, resourceID string) error
}

// Vaults is what activation needs of the keyvault provider.
type Vaults interface {
	CreateVaultTx(ctx context.Context, tx store.Tx, spec keyvault.VaultSpec, now time.Time) (*vault.VaultInfo, error)
	RecoverVaultTx(ctx context.Context, tx store.Tx, sub, rg, name string, by *principal.Principal, now time.Time) (*vault.VaultInfo, error)
	SoftDeleteVaultTx(ctx context.Context, tx store.Tx, sub, rg, name string, now time.Time) (bool, error)
	VaultStatus(ctx context.Context, name string) (*keyvault.VaultState, error)
	AddAccessPolicy(ctx context.Context, name string, ap authz.AccessPolicy, by *principal.Principal) (*vault.VaultInfo, error)
	VaultURI(name string) string
}

// Locks is what activation needs of the locks provider.
type Locks interface {
	PutLockTx(ctx context.Context, tx store.Tx, scope arm.ResourceID, name string, props authorization.LockProperties, by *principal.Principal) (authorization.Lock, bool, error)
	DeleteLockTx(ctx context.Context, tx store.Tx, scope arm.ResourceID, name string) (authorization.Lock, error)
	ListLocks(ctx context.Context, scope arm.ResourceID, atScope bool) ([]authorization.Lock, error)
}

// Accounts is what activation needs of the storage provider.
type Accounts interface {
	CreateAccountTx(ctx context.Context, tx store.Tx, spec storage.AccountSpec, now time.Time) (string, error)
	Exists(ctx context.Context, accountID string) (bool, error)
}

// DiagnosticSettings is what activation needs of the insights provider.
type DiagnosticSettings interface {
	PutSetting(ctx context.Context, resourceID, name string, props insights.Properties, by *principal.Principal) error
}

// DataPlane is the Key Vault data plane (*vault.Service): the Channel
// Integrity Key is written through it as the device's identity, like any
// client's secret.
type DataPlane interface {
	ServeVault(w http.ResponseWriter, r *http.Request, vaultName string, baseURL string)
}

// WorkloadSecrets issues the device identity's workload secret when an
// activation key is redeemed (*msi.Provider).
type WorkloadSecrets interface {
	IssueWorkloadSecretFor(ctx context.Context, resourceID string) (*msi.WorkloadSecret, error)
	RevokeWorkloadSecretFor(ctx context.Context, resourceID string) error
}

// Options configures the provider. Vaults, Locks, Accounts, Settings and
// DataPlane are required for activation; without them generateActivationKey
// and recoverKeyVault answer 503.
type Options struct {
	Vaults    Vaults
	Locks     Locks
	Accounts  Accounts
	Settings  DiagnosticSettings
	DataPlane DataPlane
	Workloads WorkloadSecrets
	// VaultDomain is the vault DNS suffix (default vault.localhost): the
	// data plane's token audience is https://{VaultDomain}.
	VaultDomain string
	// Rand is the source of keys and names (default crypto/rand).
	Rand   io.Reader
	Logger *slog.Logger
}

// Provider is the Microsoft.DataBoxEdge resource provider.
type Provider struct {
	st   store.Store
	clk  clock.Clock
	ids  Identities
	opts Options
	log  *slog.Logger
}

var (
	_ arm.Provider       = (*Provider)(nil)
	_ arm.GroupResources = (*Provider)(nil)
)

// New returns the provider.
func New(st store.Store, clk clock.Clock, ids Identities, opts Options) *Provider {
	if clk == nil {
		clk = clock.Real{}
	}
	if opts.VaultDomain == "" {
		opts.VaultDomain = "vault.localhost"
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Provider{st: st, clk: clk, ids: ids, opts: opts, log: log}
}

// Namespace is "Microsoft.DataBoxEdge".
func (p *Provider) Namespace() string { return Namespace }

// ResourceTypes lists the types served. Generating an activation key,
// recovering the vault and "Sync device secrets" need write on the device.
func (p *Provider) ResourceTypes() []arm.ResourceType {
	write := DeviceType + "/write"
	return []arm.ResourceType{
		{Name: typeDevices, APIVersions: APIVersions, Handler: arm.HandlerFunc(p.serveDevices),
			ActionPermissions: map[string]string{ActionGenerateActivationKey: write, ActionRecoverKeyVault: write, ActionSyncDeviceSecrets: write}},
		{Name: typeAlerts, APIVersions: APIVersions, Handler: arm.HandlerFunc(p.serveAlerts)},
	}
}

func (p *Provider) serveDevices(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 {
		return nil, azerr.NotFound("NotFound", "Data Box Edge devices are not extension resources.")
	}
	if req.Kind == arm.KindCollection {
		return p.listDevices(ctx, req)
	}
	if req.Target.ResourceGroup == "" || len(req.Target.Providers[0].Types) != 1 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	if req.Kind == arm.KindAction {
		switch strings.ToLower(req.ActionName) {
		case strings.ToLower(ActionGenerateActivationKey):
			return p.generateActivationKey(ctx, req)
		case strings.ToLower(ActionRecoverKeyVault):
			return p.recoverKeyVault(ctx, req)
		case strings.ToLower(ActionGetExtendedInfo):
			return p.getExtendedInfo(ctx, req)
		case strings.ToLower(ActionUpdateExtendedInfo):
			return p.updateExtendedInfo(ctx, req)
		case strings.ToLower(ActionSyncDeviceSecrets):
			return p.syncDeviceSecrets(ctx, req)
		}
		return nil, azerr.NotFound("NotFound", "The device action '%s' is not served.", clip(req.ActionName, 64))
	}
	switch req.Method {
	case http.MethodGet:
		d, err := p.load(ctx, req.ID)
		if err != nil {
			return nil, err
		}
		res, err := p.render(ctx, d)
		if err != nil {
			return nil, err
		}
		return arm.OK(res), nil
	case http.MethodPut:
		return p.putDevice(ctx, req)
	case http.MethodPatch:
		return p.patchDevice(ctx, req)
	case http.MethodDelete:
		return p.deleteDevice(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

// load reads the device id names, or the ARM 404.
func (p *Provider) load(ctx context.Context, id arm.ResourceID) (*deviceRecord, error) {
	d, _, err := store.GetJSON[deviceRecord](ctx, p.st, keyOf(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, arm.ResourceNotFound(id)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return d, nil
}

// update changes a stored device in one transaction.
func (p *Provider) update(ctx context.Context, id arm.ResourceID, fn func(d *deviceRecord) error) (*deviceRecord, error) {
	var out *deviceRecord
	err := p.st.Update(ctx, func(tx store.Tx) error {
		d, ver, err := store.GetJSON[deviceRecord](ctx, tx, keyOf(id))
		if errors.Is(err, store.ErrNotFound) {
			return arm.ResourceNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := fn(d); err != nil {
			return err
		}
		out = d
		_, err = store.PutJSON(ctx, tx, keyOf(id), d, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

// storeErr keeps *azerr.Error and hides the rest behind a 500; a lost
// optimistic race is a retryable 409.
func storeErr(err error) error {
	if errors.Is(err, store.ErrConflict) {
		return azerr.New(http.StatusConflict, "Conflict", "The resource was changed by another request; retry the operation.")
	}
	return azerr.From(err)
}

func badProp(target, format string, args ...any) *azerr.Error {
	return arm.BadRequest("InvalidRequestContent", format, args...).WithTarget(target)
}

type deviceBody struct {
	Location   *string             `json:"location"`
	Tags       *map[string]string  `json:"tags"`
	SKU        *sku                `json:"sku"`
	Kind       *string             `json:"kind"`
	Identity   *identityblock.Body `json:"identity"`
	Properties *struct {
		Description      *string        `json:"description"`
		FriendlyName     *string        `json:"friendlyName"`
		ModelDescription *string        `json:"modelDescription"`
		DataResidency    *dataResidency `json:"dataResidency"`
	} `json:"properties"`
}

func pick(list []string, v, target string) (string, error) {
	i := slices.IndexFunc(list, func(s string) bool { return strings.EqualFold(s, v) })
	if i < 0 {
		return "", badProp(target, "The value '%s' of '%s' is not supported. Supported values: %s.", clip(v, 40), target, strings.Join(list, ", "))
	}
	return list[i], nil
}

func checkText(target string, s *string, n int) error {
	if s != nil && (len(*s) > n || strings.ContainsFunc(*s, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
		return badProp(target, "The property '%s' must be at most %d printable characters.", target, n)
	}
	return nil
}

// identityBody is the device's identity after a request: it must include
// SystemAssigned (the key vault integration is built on it); absent on
// create, it is SystemAssigned.
func identityBody(b *identityblock.Body, creating bool) (*identityblock.Body, error) {
	if b == nil {
		if creating {
			return &identityblock.Body{Type: identity.IdentitySystemAssigned}, nil
		}
		return nil, nil
	}
	if !strings.Contains(strings.ToLower(strings.ReplaceAll(b.Type, " ", "")), "systemassigned") {
		return nil, badProp("identity.type", "A Data Box Edge device needs its system-assigned identity (identity.type SystemAssigned): its key vault is accessed with it.")
	}
	return b, nil
}

func (p *Provider) putDevice(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name := req.ID.Name()
	if !deviceNameRe.MatchString(name) {
		return nil, arm.InvalidResourceName("The device name '%s' is invalid: use 2 to 50 letters, digits and hyphens, starting and ending with a letter or digit.", clip(name, 60))
	}
	var body deviceBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	loc, err := req.RequireLocation(body.Location, DeviceType)
	if err != nil {
		return nil, err
	}
	tags, err := arm.TagsOf(body.Tags)
	if err != nil {
		return nil, err
	}
	if body.SKU == nil || body.SKU.Name == "" {
		return nil, badProp("sku.name", "The property 'sku.name' is required, e.g. EdgeP_Base.")
	}
	skuName, err := pick(skuNames, body.SKU.Name, "sku.name")
	if err != nil {
		return nil, err
	}
	if body.SKU.Tier != "" && !strings.EqualFold(body.SKU.Tier, "Standard") {
		return nil, badProp("sku.tier", "The only sku tier is Standard.")
	}
	kind := "AzureStackEdge"
	if skuName == "Gateway" {
		kind = "AzureDataBoxGateway"
	}
	if body.Kind != nil && *body.Kind != "" {
		if kind, err = pick(kinds, *body.Kind, "kind"); err != nil {
			return nil, err
		}
	}
	if pr := body.Properties; pr != nil {
		for _, c := range []struct {
			t string
			s *string
		}{{"properties.description", pr.Description}, {"properties.friendlyName", pr.FriendlyName}, {"properties.modelDescription", pr.ModelDescription}} {
			if err := checkText(c.t, c.s, 1024); err != nil {
				return nil, err
			}
		}
		if dr := pr.DataResidency; dr != nil && dr.Type != "" {
			if dr.Type, err = pick([]string{"GeoZoneReplication", "ZoneReplication"}, dr.Type, "properties.dataResidency.type"); err != nil {
				return nil, err
			}
		}
	}
	id := req.ID
	cur, _, err := store.GetJSON[deviceRecord](ctx, p.st, keyOf(id))
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, azerr.Internal(err)
	}
	if exists && cur.Location != loc {
		return nil, azerr.New(http.StatusConflict, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
			cur.Name, cur.Location, cur.ResourceGroup, loc)
	}
	ib, err := identityBody(body.Identity, !exists)
	if err != nil {
		return nil, err
	}
	if _, err := identityblock.Apply(ctx, p.ids, req, req.Tenant(ctx), id.String(), ib, !exists); err != nil {
		return nil, err
	}
	var serial, rkey string
	if !exists {
		if serial, err = p.digits(12); err != nil {
			return nil, azerr.Internal(err)
		}
		if rkey, err = p.digits(19); err != nil {
			return nil, azerr.Internal(err)
		}
	}
	var out *deviceRecord
	err = p.st.Update(ctx, func(tx store.Tx) error {
		old, ver, err := store.GetJSON[deviceRecord](ctx, tx, keyOf(id))
		d := &deviceRecord{Name: name, SubscriptionID: strings.ToLower(id.SubscriptionID), ResourceGroup: id.ResourceGroup,
			SerialNumber: "KH" + serial, ResourceKey: rkey, SystemData: arm.NewSystemData(req.Principal, req.Now)}
		switch {
		case errors.Is(err, store.ErrNotFound):
			ver = store.Absent
		case err != nil:
			return err
		default:
			*d = *old
			d.SystemData = old.SystemData.Touched(req.Principal, req.Now)
		}
		d.Location, d.Tags, d.SKU, d.Kind, d.ProvisioningState = loc, tags, sku{Name: skuName, Tier: "Standard"}, kind, "Succeeded"
		d.Description, d.FriendlyName, d.ModelDescription, d.DataResidency = "", "", "", nil
		if pr := body.Properties; pr != nil {
			d.Description, d.FriendlyName, d.ModelDescription = deref(pr.Description), deref(pr.FriendlyName), deref(pr.ModelDescription)
			if pr.DataResidency != nil && pr.DataResidency.Type != "" {
				d.DataResidency = pr.DataResidency
			}
		}
		out = d
		_, err = store.PutJSON(ctx, tx, keyOf(id), d, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	res, err := p.render(ctx, out)
	if err != nil {
		return nil, err
	}
	if !exists {
		return arm.Created(res), nil
	}
	return arm.OK(res), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// digits returns n random decimal digits.
func (p *Provider) digits(n int) (string, error) {
	var b strings.Builder
	for range n {
		d, err := rand.Int(p.opts.Rand, big.NewInt(10))
		if err != nil {
			return "", err
		}
		b.WriteByte(byte('0' + d.Int64()))
	}
	return b.String(), nil
}

func (p *Provider) patchDevice(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body deviceBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	if body.Tags != nil && *body.Tags != nil {
		if err := arm.ValidateTags(*body.Tags); err != nil {
			return nil, err
		}
	}
	if _, err := p.load(ctx, req.ID); err != nil {
		return nil, err
	}
	ib, err := identityBody(body.Identity, false)
	if err != nil {
		return nil, err
	}
	if _, err := identityblock.Apply(ctx, p.ids, req, req.Tenant(ctx), req.ID.String(), ib, false); err != nil {
		return nil, err
	}
	d, err := p.update(ctx, req.ID, func(d *deviceRecord) error {
		if body.Tags != nil {
			d.Tags = map[string]string{}
			if *body.Tags != nil {
				d.Tags = *body.Tags
			}
		}
		d.SystemData = d.SystemData.Touched(req.Principal, req.Now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	res, err := p.render(ctx, d)
	if err != nil {
		return nil, err
	}
	return arm.OK(res), nil
}

// deleteDevice serves DELETE, with the keyhaven query parameter
// deleteKeyVault=true as the guide's consent to delete the device's vault
// too (its lock is removed and the vault soft-deleted; the audit-log
// storage account stays). Without consent the vault stays as it is. The
// device's system-assigned identity is removed.
func (p *Provider) deleteDevice(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	consent := false
	if v := queryGet(req, "deleteKeyVault"); v != "" {
		switch strings.ToLower(v) {
		case "true", "yes":
			consent = true
		case "false", "no":
		default:
			return nil, arm.BadRequest("InvalidParameter", "deleteKeyVault must be true or false.").WithTarget("deleteKeyVault")
		}
	}
	d, _, err := store.GetJSON[deviceRecord](ctx, p.st, keyOf(req.ID))
	if errors.Is(err, store.ErrNotFound) {
		return arm.NoContent(), nil
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	kv := d.KeyVault
	if consent && kv != nil {
		if err := p.needPlatform(); err != nil {
			return nil, err
		}
		if err := p.authorizeVault(ctx, req, "Microsoft.KeyVault/vaults/delete", kv.ResourceID); err != nil {
			return nil, err
		}
		if err := p.otherLocks(ctx, kv.ResourceID); err != nil {
			return nil, err
		}
	}
	if p.opts.Workloads != nil {
		if err := p.opts.Workloads.RevokeWorkloadSecretFor(ctx, d.id().String()); err != nil {
			p.log.Warn("databoxedge: revoke workload secret", "device", d.id().String(), "err", err)
		}
	}
	if err := p.ids.RemoveResource(ctx, d.id().String()); err != nil {
		return nil, azerr.From(err)
	}
	err = p.st.Update(ctx, func(tx store.Tx) error {
		if consent && kv != nil {
			vid, err := arm.ParseResourceID(kv.ResourceID)
			if err != nil {
				return err
			}
			if _, err := p.opts.Locks.DeleteLockTx(ctx, tx, vid, VaultLockName); err != nil && !isStatus(err, http.StatusNotFound) {
				return err
			}
			if _, err := p.opts.Vaults.SoftDeleteVaultTx(ctx, tx, vid.SubscriptionID, vid.ResourceGroup, kv.Name, req.Now); err != nil {
				return err
			}
		}
		return tx.Delete(ctx, keyOf(req.ID), store.Any)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return &arm.Response{Status: http.StatusOK}, nil
}

// otherLocks refuses deleting the vault when a lock other than the one the
// platform placed protects it (one the customer added, on the vault or
// above): only the platform's own lock is lifted with consent.
func (p *Provider) otherLocks(ctx context.Context, vaultID string) error {
	vid, err := arm.ParseResourceID(vaultID)
	if err != nil {
		return azerr.From(err)
	}
	locks, err := p.opts.Locks.ListLocks(ctx, vid, true)
	if err != nil {
		return azerr.From(err)
	}
	var scopes []string
	for _, l := range locks {
		if strings.EqualFold(l.Name, VaultLockName) && strings.EqualFold(l.ID, vid.Extend("Microsoft.Authorization", "locks", VaultLockName).String()) {
			continue
		}
		scopes = append(scopes, strings.TrimSuffix(l.ID, "/providers/Microsoft.Authorization/locks/"+l.Name))
	}
	if len(scopes) > 0 {
		return authorization.ScopeLocked(vaultID, "delete", scopes)
	}
	return nil
}

func queryGet(req *arm.Request, name string) string {
	for k, vs := range req.Query {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}

func isStatus(err error, status int) bool {
	var ae *azerr.Error
	return errors.As(err, &ae) && ae.Status == status
}

func (p *Provider) listDevices(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.ID.SubscriptionID == "" || len(req.ID.Providers[0].Types) != 1 {
		return nil, azerr.NotFound("NotFound", "Devices are listed per subscription or resource group.")
	}
	recs, err := p.list(ctx, req.ID.SubscriptionID, req.ID.ResourceGroup)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	items := make([]deviceResource, 0, len(recs))
	for _, d := range recs {
		r, err := p.render(ctx, d)
		if err != nil {
			return nil, err
		}
		items = append(items, r)
	}
	page, err := arm.Paginate(req, items, func(r deviceResource) string { return strings.ToLower(r.ID) })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}

func (p *Provider) list(ctx context.Context, sub, rg string) ([]*deviceRecord, error) {
	pfx := subPrefix(sub)
	if rg != "" {
		pfx = rgPrefix(sub, rg)
	}
	var out []*deviceRecord
	after := ""
	for {
		recs, err := p.st.List(ctx, pfx, store.ListOptions{After: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			d, err := store.DecodeJSON[deviceRecord](rec)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		if len(recs) < 500 {
			return out, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// render is the device as ARM shows it. Its status reflects activation and
// the alerts (a critical alert makes it NeedsAttention).
func (p *Provider) render(ctx context.Context, d *deviceRecord) (deviceResource, error) {
	id := d.id().String()
	blk, err := identityblock.Render(ctx, p.ids, id)
	if err != nil {
		return deviceResource{}, azerr.From(err)
	}
	status := StatusReadyToSetup
	if d.ActivatedAt != nil {
		status = StatusOnline
		alerts, err := p.alerts(ctx, d)
		if err != nil {
			return deviceResource{}, err
		}
		for _, a := range alerts {
			if a.Properties.Severity == "Critical" {
				status = StatusNeedsAttention
			}
		}
	}
	tags := d.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	res := deviceResource{ID: id, Name: d.Name, Type: DeviceType, Location: d.Location, Tags: tags, SKU: d.SKU, Kind: d.Kind,
		SystemData: d.SystemData, Properties: deviceProps{DataBoxEdgeDeviceStatus: status, SerialNumber: d.SerialNumber,
			Description: d.Description, ModelDescription: d.ModelDescription, DeviceType: "DataBoxEdgeDevice",
			FriendlyName: d.FriendlyName, ConfiguredRoleTypes: []string{}, NodeCount: 1, DataResidency: d.DataResidency,
			ProvisioningState: d.ProvisioningState}}
	if blk != nil {
		res.Identity = blk
	}
	return res, nil
}

// --- GroupResources ---

// ListResources lists devices for the generic resource lists.
func (p *Provider) ListResources(ctx context.Context, sub, rg string) ([]arm.GenericResource, error) {
	ds, err := p.list(ctx, sub, rg)
	if err != nil {
		return nil, err
	}
	out := make([]arm.GenericResource, 0, len(ds))
	for _, d := range ds {
		tags := d.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		out = append(out, arm.GenericResource{ID: d.id().String(), Name: d.Name, Type: DeviceType, Location: d.Location, Tags: tags})
	}
	return out, nil
}

// DeleteGroupResources deletes every device of a resource group without
// consent to delete their vaults (the group delete decides about those).
func (p *Provider) DeleteGroupResources(ctx context.Context, sub, rg string) error {
	ds, err := p.list(ctx, sub, rg)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if err := p.ids.RemoveResource(ctx, d.id().String()); err != nil {
			return fmt.Errorf("delete device %s: %w", d.Name, err)
		}
		if err := p.st.Update(ctx, func(tx store.Tx) error {
			return tx.Delete(ctx, keyOf(d.id()), store.Any)
		}); err != nil {
			return fmt.Errorf("delete device %s: %w", d.Name, err)
		}
	}
	return nil
}
