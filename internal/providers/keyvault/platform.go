package keyvault

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// Go API for platform callers (other providers creating a vault on a
// caller's behalf, e.g. Stack Edge activation). These functions do not
// authorize: the calling provider does, as the ARM route would.

// VaultSpec describes a vault created by CreateVaultTx: a standard-tier
// vault using the access-policy model, soft delete on with the default
// retention, public network access enabled.
type VaultSpec struct {
	Name           string
	SubscriptionID string
	ResourceGroup  string
	Location       string
	TenantID       string
	Tags           map[string]string
	AccessPolicies []authz.AccessPolicy
	// By is who the systemData names (may be nil).
	By *principal.Principal
}

// VaultState is what VaultStatus reports of a vault name.
type VaultState struct {
	// Info is the vault as the data plane sees it (also for a deleted one).
	Info *vault.VaultInfo
	// Deleted is true for a soft-deleted vault (recoverable until
	// ScheduledPurgeDate unless it is being purged).
	Deleted            bool
	Purging            bool
	DeletionDate       *time.Time
	ScheduledPurgeDate *time.Time
}

// VaultURI is the data-plane URI of the vault named name.
func (p *Provider) VaultURI(name string) string { return p.vaultURI(name) }

// CreateVaultTx creates the vault spec describes inside the caller's
// transaction (so a lock can be written with it). A name held by any vault,
// active or soft-deleted, is refused with Key Vault's VaultAlreadyExists or
// ConflictError.
func (p *Provider) CreateVaultTx(ctx context.Context, tx store.Tx, spec VaultSpec, now time.Time) (*vault.VaultInfo, error) {
	if err := ValidateVaultName(spec.Name); err != nil {
		return nil, err
	}
	if err := validatePolicies(spec.AccessPolicies); err != nil {
		return nil, err
	}
	cur, _, err := p.get(ctx, tx, spec.Name)
	switch {
	case err == nil && cur.Deleted:
		return nil, nameHeldByDeleted(cur.Name)
	case err == nil:
		return nil, nameTaken(spec.Name)
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	tags := spec.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	if err := arm.ValidateTags(tags); err != nil {
		return nil, err
	}
	pols := normalizePolicies(spec.AccessPolicies)
	if pols == nil {
		pols = []authz.AccessPolicy{}
	}
	v := &record{InternalID: strings.ToLower(p.opts.NewID()), Name: spec.Name, SubscriptionID: strings.ToLower(spec.SubscriptionID),
		ResourceGroup: spec.ResourceGroup, Location: arm.NormalizeLocation(spec.Location), Tags: tags,
		Props: props{TenantID: spec.TenantID, SKUName: "standard", AccessPolicies: pols,
			SoftDeleteRetentionInDays: DefaultRetentionDay, PublicNetworkAccess: "Enabled"},
		SystemData: arm.NewSystemData(spec.By, now)}
	if err := insertVault(ctx, tx, v); err != nil {
		return nil, err
	}
	return info(v), nil
}

// VaultStatus reports the vault named name, active or soft-deleted; a name
// no vault holds (never created, or purged) is a 404 VaultNotFound.
func (p *Provider) VaultStatus(ctx context.Context, name string) (*VaultState, error) {
	v, err := p.byName(ctx, name)
	if err != nil {
		return nil, err
	}
	return &VaultState{Info: info(v), Deleted: v.Deleted, Purging: v.Purging, DeletionDate: v.DeletionDate,
		ScheduledPurgeDate: v.ScheduledPurgeDate}, nil
}

// RecoverVaultTx recovers the soft-deleted vault name of subscription sub
// and resource group rg inside the caller's transaction, as a PUT with
// createMode recover does: same internal id, data and properties.
func (p *Provider) RecoverVaultTx(ctx context.Context, tx store.Tx, sub, rg, name string, by *principal.Principal, now time.Time) (*vault.VaultInfo, error) {
	cur, ver, err := p.get(ctx, tx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, azerr.NotFound("DeletedVaultNotFound", "No deleted vault named '%s' exists in subscription '%s' to recover.", name, sub)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case !cur.Deleted:
		return nil, azerr.Conflict("The vault '%s' is not in a deleted state; there is nothing to recover.", name)
	case !strings.EqualFold(cur.SubscriptionID, sub) || !strings.EqualFold(cur.ResourceGroup, rg):
		return nil, nameHeldByDeleted(name)
	case cur.Purging:
		return nil, azerr.Conflict("The deleted vault '%s' is being purged and cannot be recovered.", name)
	}
	cur.Deleted, cur.DeletionDate, cur.ScheduledPurgeDate = false, nil, nil
	cur.SystemData = cur.SystemData.Touched(by, now)
	if err := put(ctx, tx, cur, ver); err != nil {
		return nil, err
	}
	if err := tx.Delete(ctx, deletedKey(cur.SubscriptionID, name), store.Any); err != nil {
		return nil, err
	}
	if _, err := tx.Put(ctx, scopeKey(cur.SubscriptionID, cur.ResourceGroup, name), []byte(cur.Name), store.Any); err != nil {
		return nil, err
	}
	return info(cur), nil
}

// SoftDeleteVaultTx soft-deletes the active vault name of sub/rg inside the
// caller's transaction (as a DELETE of the vault would). It reports false
// when there is no such active vault.
func (p *Provider) SoftDeleteVaultTx(ctx context.Context, tx store.Tx, sub, rg, name string, now time.Time) (bool, error) {
	cur, ver, err := p.get(ctx, tx, name)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if cur.Deleted || !strings.EqualFold(cur.SubscriptionID, sub) || !strings.EqualFold(cur.ResourceGroup, rg) {
		return false, nil
	}
	return true, softDelete(ctx, tx, cur, ver, now)
}

// AddAccessPolicy merges ap into the access policies of the active vault
// name (as PUT .../accessPolicies/add does) and returns the vault.
func (p *Provider) AddAccessPolicy(ctx context.Context, name string, ap authz.AccessPolicy, by *principal.Principal) (*vault.VaultInfo, error) {
	in := []authz.AccessPolicy{ap}
	if err := validatePolicies(in); err != nil {
		return nil, err
	}
	var out *record
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, name)
		if errors.Is(err, store.ErrNotFound) || err == nil && cur.Deleted {
			return azerr.NotFound("VaultNotFound", "The vault '%s' was not found.", clip(name, 40))
		}
		if err != nil {
			return err
		}
		pols, err := editPolicies(cur.Props.AccessPolicies, in, "add")
		if err != nil {
			return err
		}
		cur.Props.AccessPolicies = pols
		cur.SystemData = cur.SystemData.Touched(by, p.clk.Now())
		out = cur
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return info(out), nil
}
