package rotation

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Store layout (everything under rotation/; hashes are hex SHA-256 prefixes
// of lower-cased resource IDs, so keys stay short and free of '/'):
//
//	rotation/cred/{credID}                       credRecord JSON
//	rotation/idx/cluster/{clusterHash}/{credID}  membership (empty value)
//	rotation/idx/owner/{ownerHash}/{credID}      membership (empty value)
//	rotation/due/{unix seconds, 20 digits}/{credID}  next time work is due
//	rotation/expiry/{unix seconds, 20 digits}/{credID}  next expiry check (expiry.go)
//	rotation/lease/{credID}                      leaseRecord JSON (claim)
//	rotation/alerts/{clusterHash}/{alertID}      Alert JSON; alertID sorts by time
const (
	kCred       = "rotation/cred/"
	kClusterIdx = "rotation/idx/cluster/"
	kOwnerIdx   = "rotation/idx/owner/"
	kDue        = "rotation/due/"
	kLease      = "rotation/lease/"
	kAlerts     = "rotation/alerts/"
	kExpiry     = "rotation/expiry/"
)

// sealScope is the seal data-key scope of every credential value.
const sealScope = "rotation"

// Limits.
const (
	maxTargetsPerCall   = 1000
	maxCredsPerCluster  = 5000
	maxIDLen            = 1024
	maxNameLen          = 256
	maxInitialLen       = 4096
	maxAlertsPerCluster = 500
	maxMessageLen       = 1024
)

// Phases of a credential's state machine.
const (
	phaseIdle           = "Idle"           // target holds Current; nothing in flight
	phaseSetIntent      = "SetIntent"      // Pending sealed; target may hold Current or Pending
	phaseArchivePending = "ArchivePending" // target holds Pending; delivery to the vault outstanding
	phaseHalted         = "Halted"         // ManualChangeDetected: never retried blindly
)

func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strings.ToLower(p)))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

func credIDOf(clusterID, ownerID string, kind Kind) string {
	return hashID(clusterID, ownerID, string(kind))
}

func dueKey(t time.Time, credID string) string { return timeKey(kDue, t, credID) }

// timeKey is a time-ordered index key ("" for the zero time).
func timeKey(prefix string, t time.Time, credID string) string {
	if t.IsZero() {
		return ""
	}
	sec := t.Unix()
	if sec < 0 {
		sec = 0
	}
	return fmt.Sprintf("%s%020d/%s", prefix, sec, credID)
}

// sealedValue is one credential value, sealed under scope "rotation" with
// AAD "rotation|{credID}|{value id}", so it opens only in its own record.
type sealedValue struct {
	ID     string `json:"id"`
	Sealed []byte `json:"sealed"`
}

// credRecord is the durable state of one managed credential.
type credRecord struct {
	ID                 string `json:"id"`
	ClusterID          string `json:"clusterId"`
	OwnerID            string `json:"ownerId"`
	OwnerName          string `json:"ownerName"`
	Kind               Kind   `json:"kind"`
	Endpoint           string `json:"endpoint,omitempty"`
	Username           string `json:"username,omitempty"`
	RotationPeriodDays int    `json:"rotationPeriodDays"`
	ExpirePeriodDays   int    `json:"expirePeriodDays"`

	Phase string `json:"phase"`
	// Current is the value the target accepts (the last archived one, or
	// the initial one); Pending the value being rotated in (write-ahead).
	Current *sealedValue `json:"current,omitempty"`
	Pending *sealedValue `json:"pending,omitempty"`
	// Requested: an on-demand rotation is outstanding.
	Requested bool `json:"requested,omitempty"`
	// RotatedAt is when the target accepted Pending (phase ArchivePending).
	RotatedAt time.Time `json:"rotatedAt,omitzero"`
	// DeliveryID names the delivery of Pending (tag "deliveryId" on the
	// secret version): a re-delivery after a crash carries the same id.
	DeliveryID string `json:"deliveryId,omitempty"`
	// LastRotation is the target-change time of the last archived value.
	LastRotation *time.Time        `json:"lastRotation,omitempty"`
	Ref          *ArchiveReference `json:"ref,omitempty"`
	SecretName   string            `json:"secretName,omitempty"`

	NextAt   time.Time `json:"nextAt,omitzero"` // zero: nothing scheduled
	Attempts int       `json:"attempts,omitempty"`
	// Code/Message: the condition blocking progress ("" = healthy).
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	// AlertID/AlertCode: the active alert for Code.
	AlertID   string `json:"alertId,omitempty"`
	AlertCode string `json:"alertCode,omitempty"`

	// TrackedSince: when a never-rotated credential's first rotation was
	// requested (the deployment); its value's age counts from then.
	TrackedSince time.Time `json:"trackedSince,omitzero"`
	// ExpiryCheckAt: when the expiry condition next changes (index
	// rotation/expiry/); zero when it cannot change without a write.
	ExpiryCheckAt time.Time `json:"expiryCheckAt,omitzero"`
	// ExpiryAlertID/ExpiryAlertCode: the active CredentialNearExpiry or
	// CredentialExpired alert, independent of the one for Code.
	ExpiryAlertID   string    `json:"expiryAlertId,omitempty"`
	ExpiryAlertCode string    `json:"expiryAlertCode,omitempty"`
	Updated         time.Time `json:"updated"`
}

func (r *credRecord) periodic() time.Duration {
	return time.Duration(r.RotationPeriodDays) * 24 * time.Hour
}

// leaseRecord is a claim on a credential by one replica.
type leaseRecord struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
}

// Alert is a durable notice that a credential cannot make progress.
type Alert struct {
	ID        string     `json:"id"`
	ClusterID string     `json:"clusterId"`
	OwnerID   string     `json:"ownerId"`
	Kind      Kind       `json:"kind"`
	Code      string     `json:"code"`
	Message   string     `json:"message"`
	RaisedAt  time.Time  `json:"raisedAt"`
	ClearedAt *time.Time `json:"clearedAt,omitempty"`
}

func getCred(ctx context.Context, r store.Reader, credID string) (*credRecord, int64, error) {
	rec, err := r.Get(ctx, kCred+credID)
	if err != nil {
		return nil, 0, err
	}
	var c credRecord
	if err := json.Unmarshal(rec.Value, &c); err != nil {
		return nil, 0, fmt.Errorf("rotation: decode %s: %w", rec.Key, err)
	}
	return &c, rec.Version, nil
}

func putJSON(ctx context.Context, tx store.Tx, key string, v any, ifVersion int64) (int64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	return tx.Put(ctx, key, b, ifVersion)
}

// writeCred stores rec (CAS on ifVersion), moves its due index entry from
// prevNext to rec.NextAt, raises or clears its alert to match rec.Code, and
// brings its expiry alert and expiry check entry up to date for now.
func writeCred(ctx context.Context, tx store.Tx, rec *credRecord, ifVersion int64, prevNext time.Time, now time.Time) (int64, error) {
	return writeCredExpiry(ctx, tx, rec, ifVersion, prevNext, now, false)
}

// writeCredExpiry is writeCred; raiseExpiry is set by the expiry check only
// (see syncExpiryAlert).
func writeCredExpiry(ctx context.Context, tx store.Tx, rec *credRecord, ifVersion int64, prevNext, now time.Time, raiseExpiry bool) (int64, error) {
	if err := syncAlert(ctx, tx, rec, now); err != nil {
		return 0, err
	}
	prevCheck := rec.ExpiryCheckAt // as stored: only writeCredExpiry changes it
	if err := syncExpiryAlert(ctx, tx, rec, now, raiseExpiry); err != nil {
		return 0, err
	}
	rec.Updated = now
	v, err := putJSON(ctx, tx, kCred+rec.ID, rec, ifVersion)
	if err != nil {
		return 0, err
	}
	if err := moveIndex(ctx, tx, dueKey(prevNext, rec.ID), dueKey(rec.NextAt, rec.ID)); err != nil {
		return 0, err
	}
	if err := moveIndex(ctx, tx, expiryKey(prevCheck, rec.ID), expiryKey(rec.ExpiryCheckAt, rec.ID)); err != nil {
		return 0, err
	}
	return v, nil
}

// moveIndex replaces index entry old with nw ("" = none).
func moveIndex(ctx context.Context, tx store.Tx, old, nw string) error {
	if old == nw {
		return nil
	}
	if old != "" {
		if err := tx.Delete(ctx, old, store.Any); err != nil {
			return err
		}
	}
	if nw != "" {
		if _, err := tx.Put(ctx, nw, nil, store.Any); err != nil {
			return err
		}
	}
	return nil
}

func alertPrefix(clusterID string) string { return kAlerts + hashID(clusterID) + "/" }

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand never fails (Go ≥ 1.24)
	return hex.EncodeToString(b)
}

func newAlertID(now time.Time) string { return fmt.Sprintf("%020d-%s", now.UnixNano(), randHex(4)) }

// syncAlert makes the credential's active alert match rec.Code: cleared
// when healthy, replaced when the code changed, kept when unchanged.
func syncAlert(ctx context.Context, tx store.Tx, rec *credRecord, now time.Time) error {
	return syncSlot(ctx, tx, rec, &rec.AlertID, &rec.AlertCode, rec.Code, rec.Message, now)
}

// syncSlot makes one of the credential's alert slots (id, code) match
// want: cleared when want is "", replaced when it changed, kept otherwise.
// A credential has two slots (its condition, its expiry), so a failure and
// an expiry alert are active side by side.
func syncSlot(ctx context.Context, tx store.Tx, rec *credRecord, id, code *string, want, msg string, now time.Time) error {
	if *id != "" && *code == want {
		return nil
	}
	if *id != "" {
		key := alertPrefix(rec.ClusterID) + *id
		if r, err := tx.Get(ctx, key); err == nil {
			var a Alert
			if json.Unmarshal(r.Value, &a) == nil && a.ClearedAt == nil {
				t := now
				a.ClearedAt = &t
				if _, err := putJSON(ctx, tx, key, &a, r.Version); err != nil {
					return err
				}
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		*id, *code = "", ""
	}
	if want == "" {
		return nil
	}
	if err := pruneAlerts(ctx, tx, rec.ClusterID); err != nil {
		return err
	}
	a := Alert{ID: newAlertID(now), ClusterID: rec.ClusterID, OwnerID: rec.OwnerID, Kind: rec.Kind,
		Code: want, Message: clipStr(msg, maxMessageLen), RaisedAt: now}
	if _, err := putJSON(ctx, tx, alertPrefix(rec.ClusterID)+a.ID, &a, store.Absent); err != nil {
		return err
	}
	*id, *code = a.ID, want
	return nil
}

// pruneAlerts drops the oldest cleared alerts of a cluster beyond the cap.
func pruneAlerts(ctx context.Context, tx store.Tx, clusterID string) error {
	recs, err := tx.List(ctx, alertPrefix(clusterID), store.ListOptions{Limit: maxAlertsPerCluster + 50})
	if err != nil || len(recs) < maxAlertsPerCluster {
		return err
	}
	excess := len(recs) - maxAlertsPerCluster + 1
	for _, r := range recs {
		if excess == 0 {
			break
		}
		var a Alert
		if json.Unmarshal(r.Value, &a) == nil && a.ClearedAt != nil {
			if err := tx.Delete(ctx, r.Key, r.Version); err != nil {
				return err
			}
			excess--
		}
	}
	return nil
}

// credIDs lists the credentials indexed under prefix.
func credIDs(ctx context.Context, r store.Reader, prefix string) ([]string, error) {
	recs, err := r.List(ctx, prefix, store.ListOptions{Limit: maxCredsPerCluster})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(recs))
	for _, rec := range recs {
		out = append(out, strings.TrimPrefix(rec.Key, prefix))
	}
	return out, nil
}
