package storage

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// AccountSpec describes an account created by CreateAccountTx for a
// platform caller (e.g. the audit-log account of a Stack Edge device's
// vault). It does not authorize: the calling provider does.
type AccountSpec struct {
	Name           string
	SubscriptionID string
	ResourceGroup  string
	Location       string
	// SKU is e.g. "Standard_ZRS"; Kind e.g. "StorageV2".
	SKU  string
	Kind string
	Tags map[string]string
	By   *principal.Principal
}

// CreateAccountTx creates the account spec describes inside the caller's
// transaction (so a lock can be written with it) and returns its resource
// ID. A name taken by any account is refused with
// StorageAccountAlreadyTaken.
func (p *Provider) CreateAccountTx(ctx context.Context, tx store.Tx, spec AccountSpec, now time.Time) (string, error) {
	if err := ValidateAccountName(spec.Name); err != nil {
		return "", err
	}
	skuName, ok := skus[strings.ToLower(spec.SKU)]
	if !ok {
		return "", arm.BadRequest("InvalidValuesForRequestParameters", "Values for request parameters are invalid: sku.name '%s'.", clip(spec.SKU, 40))
	}
	kind, ok := kinds[strings.ToLower(spec.Kind)]
	if !ok {
		return "", arm.BadRequest("InvalidValuesForRequestParameters", "Values for request parameters are invalid: kind '%s'.", clip(spec.Kind, 40))
	}
	tags := spec.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	if err := arm.ValidateTags(tags); err != nil {
		return "", err
	}
	_, _, err := p.get(ctx, tx, spec.Name)
	if err == nil {
		return "", azerr.New(http.StatusConflict, "StorageAccountAlreadyTaken", "The storage account named %s is already taken.", spec.Name)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	a := &record{InternalID: strings.ToLower(p.opts.NewID()), Name: spec.Name, SubscriptionID: strings.ToLower(spec.SubscriptionID),
		ResourceGroup: spec.ResourceGroup, Location: arm.NormalizeLocation(spec.Location), SKU: skuName, Kind: kind, Tags: tags,
		CreationTime: now, SystemData: arm.NewSystemData(spec.By, now)}
	if err := put(ctx, tx, a, store.Absent); err != nil {
		return "", err
	}
	if _, err := tx.Put(ctx, scopeKey(a.SubscriptionID, a.ResourceGroup, a.Name), []byte(a.Name), store.Any); err != nil {
		return "", err
	}
	return a.id().String(), nil
}
