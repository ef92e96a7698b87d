package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Expiry enforcement: the value a target accepts may not be older than the
// credential's expirePeriodDays. See doc.go ("Expiry") for the rules.

// Expiry condition codes: an alert of their own (next to any condition
// alert) and, for CredentialExpired, the cluster's ClusterState.
const (
	CodeCredentialNearExpiry = "CredentialNearExpiry"
	CodeCredentialExpired    = "CredentialExpired"
)

// maxNearExpiryWindow caps the warning window (10% of the expire period).
const maxNearExpiryWindow = 7 * 24 * time.Hour

func expiryKey(t time.Time, credID string) string { return timeKey(kExpiry, t, credID) }

// nearExpiryWindow is how long before expiry CredentialNearExpiry is
// raised: 10% of the expire period or 7 days, whichever is smaller.
func nearExpiryWindow(period time.Duration) time.Duration {
	return min(period/10, maxNearExpiryWindow)
}

// valueSince is when the value the target accepts was set: the target
// change of an ArchivePending value (the target holds it already), else the
// last archived rotation, else the first rotation request of a credential
// never rotated (its initial value is in force since deployment). Zero:
// not tracked yet (registered, cluster not deployed). A SetIntent or Halted
// credential counts from its last known value: keyhaven cannot vouch for a
// younger one.
func (r *credRecord) valueSince() time.Time {
	switch {
	case r.Phase == phaseArchivePending && !r.RotatedAt.IsZero():
		return r.RotatedAt
	case r.LastRotation != nil:
		return *r.LastRotation
	}
	return r.TrackedSince
}

// track starts the age of a never-rotated credential at its first
// rotation request (the deployment's): before it, the cluster is not
// deployed and its initial values are not in service under keyhaven.
func (r *credRecord) track(now time.Time) {
	if r.LastRotation == nil && r.TrackedSince.IsZero() {
		r.TrackedSince = now
	}
}

// expiry returns the credential's expiry condition at now ("",
// CodeCredentialNearExpiry or CodeCredentialExpired), when its value
// reaches the maximum age (zero: not tracked), and when the condition next
// changes by the passing of time alone (zero: never).
func (r *credRecord) expiry(now time.Time) (code string, expiresAt, next time.Time) {
	since := r.valueSince()
	period := time.Duration(r.ExpirePeriodDays) * 24 * time.Hour
	if since.IsZero() || period <= 0 {
		return "", time.Time{}, time.Time{}
	}
	expiresAt = since.Add(period)
	nearAt := expiresAt.Add(-nearExpiryWindow(period))
	switch {
	case now.Before(nearAt):
		return "", expiresAt, nearAt
	case now.Before(expiresAt):
		return CodeCredentialNearExpiry, expiresAt, expiresAt
	}
	return CodeCredentialExpired, expiresAt, time.Time{}
}

// expiryMessage is the public text of an expiry condition. Times only: it
// never names a value.
func (r *credRecord) expiryMessage(code string, expiresAt time.Time) string {
	what := fmt.Sprintf("The %s of '%s'", r.Kind, clipStr(r.OwnerName, 80))
	var msg string
	if code == CodeCredentialExpired {
		msg = fmt.Sprintf("%s has reached its maximum age of %d days (at %s).", what, r.ExpirePeriodDays, expiresAt.UTC().Format(time.RFC3339))
	} else {
		msg = fmt.Sprintf("%s reaches its maximum age of %d days at %s.", what, r.ExpirePeriodDays, expiresAt.UTC().Format(time.RFC3339))
	}
	if r.Code != "" {
		return msg + " Rotation is blocked: " + r.Code + "."
	}
	return msg + " It has not been rotated in time (a cordoned machine is not rotated; rotationPeriodDays should be below expirePeriodDays)."
}

// syncExpiryAlert brings the credential's expiry alert and ExpiryCheckAt
// up to date for now: a rotation (a younger value) clears the alert at
// once. Raising or replacing one is left to the expiry check (raise), which
// RunOnce makes after its rotations: a write of a rotation in progress
// (e.g. its SetIntent step at the very start of the warning window) only
// marks the check due now, so a rotation completing in the same pass
// raises nothing.
func syncExpiryAlert(ctx context.Context, tx store.Tx, rec *credRecord, now time.Time, raise bool) error {
	code, expiresAt, next := rec.expiry(now)
	if code != "" && code != rec.ExpiryAlertCode && !raise {
		rec.ExpiryCheckAt = now
		return nil
	}
	rec.ExpiryCheckAt = next
	msg := ""
	if code != "" && rec.ExpiryAlertCode != code {
		msg = rec.expiryMessage(code, expiresAt)
	}
	return syncSlot(ctx, tx, rec, &rec.ExpiryAlertID, &rec.ExpiryAlertCode, code, msg, now)
}

// checkExpiries looks at the credentials whose expiry condition changes by
// now (index rotation/expiry/) and brings their expiry alert up to date.
// It never touches NextAt, Attempts or the phase, so a blocked rotation is
// not retried sooner because of it, and it needs no lease: each check is
// one transaction with a CAS on the record. A credential leased by a live
// worker is left alone (the worker's own writes sync the alert; writing
// under it would make its next save fail). It returns how many it checked.
func (e *Service) checkExpiries(ctx context.Context, now time.Time) (int, error) {
	recs, err := e.cfg.Store.List(ctx, kExpiry, store.ListOptions{Limit: e.cfg.BatchSize * 4})
	if err != nil {
		return 0, err
	}
	limit := expiryKey(now, "")
	n := 0
	var firstErr error
	for _, r := range recs {
		if r.Key > limit+"\xff" || n >= e.cfg.BatchSize || ctx.Err() != nil {
			break
		}
		credID := r.Key[strings.LastIndexByte(r.Key, '/')+1:]
		if !e.markInflight(credID) {
			continue
		}
		checked, err := e.checkExpiry(ctx, credID, r.Key, now)
		e.unmarkInflight(credID)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if checked {
			n++
		}
	}
	return n, firstErr
}

func (e *Service) checkExpiry(ctx context.Context, credID, listedKey string, now time.Time) (bool, error) {
	checked := false
	var raised *credRecord
	err := e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		checked, raised = false, nil
		rec, ver, err := getCred(ctx, tx, credID)
		if errors.Is(err, store.ErrNotFound) {
			return tx.Delete(ctx, listedKey, store.Any) // stale index entry
		}
		if err != nil {
			return err
		}
		if expiryKey(rec.ExpiryCheckAt, credID) != listedKey {
			if err := tx.Delete(ctx, listedKey, store.Any); err != nil {
				return err
			}
		}
		if rec.ExpiryCheckAt.IsZero() || rec.ExpiryCheckAt.After(now) {
			return nil
		}
		if lr, err := tx.Get(ctx, kLease+credID); err == nil {
			var l leaseRecord
			if json.Unmarshal(lr.Value, &l) == nil && l.Expires.After(now) {
				return nil
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		before := rec.ExpiryAlertCode
		if _, err := writeCredExpiry(ctx, tx, rec, ver, rec.NextAt, now, true); err != nil {
			return err
		}
		checked = true
		if rec.ExpiryAlertCode != before {
			raised = rec
		}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return false, nil // another writer won; its write synced the alert
	}
	if err == nil && raised != nil && raised.ExpiryAlertCode != "" {
		e.log.Warn("credential expiry", "cluster", raised.ClusterID, "owner", raised.OwnerID, "kind", raised.Kind,
			"code", raised.ExpiryAlertCode, "blockedBy", raised.Code)
	}
	return checked, err
}
