package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// serveDeletedList is GET /subscriptions/{s}/providers/Microsoft.KeyVault/deletedVaults.
func (p *Provider) serveDeletedList(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Kind != arm.KindCollection || req.ID.SubscriptionID == "" || req.ID.ResourceGroup != "" || len(req.ID.Providers) != 1 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	var items []deletedOut
	err := p.st.View(ctx, func(r store.Reader) error {
		idx, err := r.List(ctx, deletedSubPrefix(req.ID.SubscriptionID), store.ListOptions{})
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
			if v.Deleted {
				items = append(items, renderDeleted(v))
			}
		}
		return nil
	})
	if err != nil {
		return nil, azerr.Internal(err)
	}
	page, err := arm.Paginate(req, items, func(d deletedOut) string { return strings.ToLower(d.Name) })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}

// serveDeleted is GET .../locations/{loc}/deletedVaults/{name} and POST
// .../purge.
func (p *Provider) serveDeleted(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	t := req.Target
	if req.ID.SubscriptionID == "" || req.ID.ResourceGroup != "" || len(t.Providers) != 1 || len(t.Providers[0].Names) != 2 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	loc, name := arm.NormalizeLocation(t.Providers[0].Names[0]), t.Providers[0].Names[1]
	missing := azerr.NotFound("ResourceNotFound", "The deleted vault '%s' was not found in location '%s' of subscription '%s'.",
		clip(name, 40), clip(loc, 40), req.ID.SubscriptionID)
	v, _, err := p.get(ctx, p.st, name)
	if errors.Is(err, store.ErrNotFound) || err == nil && (!v.Deleted || v.Location != loc || !strings.EqualFold(v.SubscriptionID, req.ID.SubscriptionID)) {
		return nil, missing
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	switch {
	case req.Kind == arm.KindResource && req.Method == http.MethodGet:
		return arm.OK(renderDeleted(v)), nil
	case req.Kind == arm.KindAction && strings.EqualFold(req.ActionName, "purge"):
		return p.startPurge(ctx, req, v)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

// startPurge accepts a purge (refused while purge protection holds) and runs
// it as a long-running operation.
func (p *Provider) startPurge(ctx context.Context, req *arm.Request, v *record) (*arm.Response, error) {
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, v.Name)
		if errors.Is(err, store.ErrNotFound) || err == nil && (!cur.Deleted || cur.InternalID != v.InternalID) {
			return azerr.NotFound("ResourceNotFound", "The deleted vault '%s' was not found.", v.Name)
		}
		if err != nil {
			return err
		}
		if cur.Props.EnablePurgeProtection && cur.ScheduledPurgeDate != nil && req.Now.Before(*cur.ScheduledPurgeDate) {
			return azerr.New(http.StatusConflict, "Conflict",
				"The deleted vault '%s' has purge protection enabled and cannot be purged before its scheduled purge date %s.",
				cur.Name, cur.ScheduledPurgeDate.UTC().Format("2006-01-02T15:04:05Z"))
		}
		if cur.Purging {
			return nil
		}
		cur.Purging = true
		return put(ctx, tx, cur, ver)
	})
	if err != nil {
		return nil, storeErr(err)
	}
	name, internalID := v.Name, v.InternalID
	return req.StartOperation(ctx, arm.OperationSpec{Location: v.Location}, func(ctx context.Context) (any, error) {
		return nil, p.purge(ctx, name, internalID)
	})
}

// purge removes the vault's data first, then its record, so a failure
// leaves a deleted vault that can be purged again rather than orphaned data.
func (p *Provider) purge(ctx context.Context, name, internalID string) error {
	p.mu.RLock()
	dp := p.purger
	p.mu.RUnlock()
	if dp != nil {
		if err := dp.PurgeVaultData(ctx, internalID); err != nil {
			return azerr.Internal(fmt.Errorf("purge data of vault %s: %w", name, err))
		}
	}
	err := p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := p.get(ctx, tx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.InternalID != internalID || !cur.Deleted {
			return nil
		}
		if err := tx.Delete(ctx, nameKey(name), ver); err != nil {
			return err
		}
		return tx.Delete(ctx, deletedKey(cur.SubscriptionID, name), store.Any)
	})
	if err != nil {
		return azerr.Internal(fmt.Errorf("purge vault record %s: %w", name, err))
	}
	return nil
}

// PurgeExpired purges every deleted vault whose scheduled purge date has
// passed (the end of retention; purge protection does not stop it). The
// server calls it periodically. It returns how many vaults it purged.
func (p *Provider) PurgeExpired(ctx context.Context) (int, error) {
	now := p.clk.Now()
	type due struct{ name, id string }
	var todo []due
	after := ""
	for {
		idx, err := p.st.List(ctx, deletedPrefix, store.ListOptions{After: after, Limit: 500})
		if err != nil {
			return 0, err
		}
		for _, e := range idx {
			v, _, err := p.get(ctx, p.st, string(e.Value))
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return 0, err
			}
			if v.Deleted && v.ScheduledPurgeDate != nil && !now.Before(*v.ScheduledPurgeDate) {
				todo = append(todo, due{v.Name, v.InternalID})
			}
		}
		if len(idx) < 500 {
			break
		}
		after = idx[len(idx)-1].Key
	}
	n := 0
	var errs []error
	for _, d := range todo {
		if err := p.purge(ctx, d.name, d.id); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// serveCheckName is POST /subscriptions/{s}/providers/Microsoft.KeyVault/checkNameAvailability.
func (p *Provider) serveCheckName(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	body, err := arm.DecodeCheckName(req)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(body.Type, VaultType) {
		return nil, badProp("type", "The type '%s' is invalid; the only valid value is '%s'.", clip(body.Type, 60), VaultType)
	}
	lookup := func(name string) error {
		_, _, err := p.get(ctx, p.st, name)
		return err
	}
	return arm.AnswerCheckName(body.Name, ValidateVaultName, lookup, azerr.From(nameTaken(body.Name)).Message)
}
