package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/rotation/drivers"
	"github.com/keyhaven/keyhaven/internal/store"
)

var knownKinds = []Kind{KindBMC, KindConsoleUser, KindStorageAdmin, KindLocalPathStorage}

func validTarget(t *Target) error {
	bad := func(f string, a ...any) error { return azerr.BadParameter(f, a...) }
	switch {
	case t.ClusterID == "" || len(t.ClusterID) > maxIDLen:
		return bad("A rotation target needs a cluster ID of at most %d characters.", maxIDLen)
	case t.OwnerID == "" || len(t.OwnerID) > maxIDLen:
		return bad("A rotation target needs an owner ID of at most %d characters.", maxIDLen)
	case len(t.OwnerName) > maxNameLen || len(t.Username) > drivers.MaxUsernameLen:
		return bad("The owner name or user name of a rotation target is too long.")
	case !slices.Contains(knownKinds, t.Kind):
		return bad("Unknown credential kind '%s'.", clipStr(string(t.Kind), 64))
	case len(t.Initial) > maxInitialLen:
		return bad("The initial credential is longer than %d bytes.", maxInitialLen)
	case t.RotationPeriodDays < 0 || t.RotationPeriodDays > 3650 || t.ExpirePeriodDays < 0 || t.ExpirePeriodDays > 3650:
		return bad("rotationPeriodDays and expirePeriodDays must be between 1 and 3650.")
	}
	if t.Endpoint != "" {
		if _, err := drivers.Scheme(t.Endpoint); err != nil {
			return bad("The endpoint of %s on '%s' is not supported.", t.Kind, clipStr(t.OwnerName, 80))
		}
		if t.Username == "" {
			return bad("A rotation target with an endpoint needs a user name.")
		}
	}
	return nil
}

// UpsertTargets registers or updates credentials (idempotent). A new
// credential is due at once (rotation at deployment). Initial is taken for
// a new credential, for one that has no value yet, and for one halted by
// ManualChangeDetected (the operator supplies the credential now in force);
// otherwise keyhaven's own value stays authoritative.
func (e *Service) UpsertTargets(ctx context.Context, targets []Target) error {
	if len(targets) > maxTargetsPerCall {
		return azerr.BadParameter("At most %d rotation targets per call.", maxTargetsPerCall)
	}
	for i := range targets {
		t := &targets[i]
		if t.RotationPeriodDays == 0 {
			t.RotationPeriodDays = 60
		}
		if t.ExpirePeriodDays == 0 {
			t.ExpirePeriodDays = 90
		}
		if t.OwnerName == "" {
			t.OwnerName = lastSegment(t.OwnerID)
		}
		if err := validTarget(t); err != nil {
			return err
		}
	}
	for _, t := range targets {
		id := credIDOf(t.ClusterID, t.OwnerID, t.Kind)
		var initial *sealedValue
		if t.Initial != nil {
			// Sealed outside the transaction: Update may run fn again.
			var err error
			if initial, err = e.sealValue(ctx, id, initialMaterial(t.Kind, t.Initial)); err != nil {
				return err
			}
		}
		now := e.clk.Now().UTC()
		err := e.cfg.Store.Update(ctx, func(tx store.Tx) error {
			rec, ver, err := getCred(ctx, tx, id)
			var prev time.Time // a new record has no due entry yet
			if err == nil {
				prev = rec.NextAt
			}
			if errors.Is(err, store.ErrNotFound) {
				// Registered, not scheduled: the first rotation is the one the
				// deployment requests (RequestRotation). Scheduling here too
				// would rotate a credential twice when an engine picks it up
				// between registration and that request.
				rec = &credRecord{ID: id, Phase: phaseIdle, ClusterID: t.ClusterID, OwnerID: t.OwnerID, Kind: t.Kind,
					Current: initial}
				ver = store.Absent
				if _, err := tx.Put(ctx, kClusterIdx+hashID(t.ClusterID)+"/"+id, nil, store.Any); err != nil {
					return err
				}
				if _, err := tx.Put(ctx, kOwnerIdx+hashID(t.OwnerID)+"/"+id, nil, store.Any); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			rec.OwnerName, rec.Endpoint, rec.Username = t.OwnerName, t.Endpoint, t.Username
			rec.RotationPeriodDays, rec.ExpirePeriodDays = t.RotationPeriodDays, t.ExpirePeriodDays
			if initial != nil && ver != store.Absent && (rec.Current == nil || rec.Phase == phaseHalted) {
				rec.Current, rec.Pending = initial, nil
				rec.Phase, rec.Requested, rec.Attempts = phaseIdle, true, 0
				rec.Code, rec.Message = "", ""
				rec.NextAt = now
				rec.track(now)
			}
			if rec.Phase == phaseIdle && rec.Code == "" && !rec.Requested && rec.LastRotation != nil {
				rec.NextAt = rec.LastRotation.Add(rec.periodic())
			}
			_, err = writeCred(ctx, tx, rec, ver, prev, now)
			return err
		})
		if err != nil {
			return err
		}
	}
	e.Wake()
	return nil
}

// RemoveCluster forgets a deleted cluster's credentials (including values
// not yet delivered: the cluster and its machines are gone) and clears its
// active alerts; the alert history stays readable.
func (e *Service) RemoveCluster(ctx context.Context, clusterID string) error {
	now := e.clk.Now().UTC()
	return e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		idxPrefix := kClusterIdx + hashID(clusterID) + "/"
		ids, err := credIDs(ctx, tx, idxPrefix)
		if err != nil {
			return err
		}
		for _, id := range ids {
			rec, _, err := getCred(ctx, tx, id)
			if err == nil {
				rec.Code = ""
				if err := syncAlert(ctx, tx, rec, now); err != nil {
					return err
				}
				if err := syncSlot(ctx, tx, rec, &rec.ExpiryAlertID, &rec.ExpiryAlertCode, "", "", now); err != nil {
					return err
				}
				for _, k := range []string{kCred + id, kOwnerIdx + hashID(rec.OwnerID) + "/" + id, kLease + id,
					dueKey(rec.NextAt, id), expiryKey(rec.ExpiryCheckAt, id)} {
					if k != "" {
						if err := tx.Delete(ctx, k, store.Any); err != nil {
							return err
						}
					}
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.Delete(ctx, idxPrefix+id, store.Any); err != nil {
				return err
			}
		}
		return nil
	})
}

// RequestRotation queues an on-demand rotation of kinds (all when empty).
// A credential halted by ManualChangeDetected is probed once more (the
// operator's acknowledgement); one in flight is retried now.
func (e *Service) RequestRotation(ctx context.Context, clusterID string, kinds []Kind) error {
	for _, k := range kinds {
		if !slices.Contains(knownKinds, k) {
			return azerr.BadParameter("Unknown credential kind '%s'.", clipStr(string(k), 64))
		}
	}
	now := e.clk.Now().UTC()
	err := e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		ids, err := credIDs(ctx, tx, kClusterIdx+hashID(clusterID)+"/")
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return azerr.NotFound("CredentialsNotFound", "The cluster has no managed credentials.")
		}
		for _, id := range ids {
			rec, ver, err := getCred(ctx, tx, id)
			if err != nil {
				return err
			}
			if len(kinds) > 0 && !slices.Contains(kinds, rec.Kind) {
				continue
			}
			prev := rec.NextAt
			switch rec.Phase {
			case phaseIdle:
				rec.Requested = true
			case phaseHalted:
				rec.Phase = phaseSetIntent
			}
			rec.Attempts = 0
			rec.NextAt = now
			rec.track(now)
			if _, err := writeCred(ctx, tx, rec, ver, prev, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		e.Wake()
	}
	return err
}

// Status returns an owner's secretRotationStatus entries, ordered by type.
func (e *Service) Status(ctx context.Context, ownerID string) ([]Status, error) {
	recs, err := e.load(ctx, kOwnerIdx+hashID(ownerID)+"/")
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(recs))
	for _, r := range recs {
		s := Status{SecretType: string(r.Kind), RotationPeriodDays: r.RotationPeriodDays, ExpirePeriodDays: r.ExpirePeriodDays}
		if r.LastRotation != nil {
			t := *r.LastRotation
			s.LastRotationTime = &t
		}
		if r.Ref != nil {
			ref := *r.Ref
			s.SecretArchiveReference = &ref
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SecretType < out[j].SecretType })
	return out, nil
}

func (e *Service) load(ctx context.Context, idxPrefix string) ([]*credRecord, error) {
	var out []*credRecord
	err := e.cfg.Store.View(ctx, func(r store.Reader) error {
		out = out[:0]
		ids, err := credIDs(ctx, r, idxPrefix)
		if err != nil {
			return err
		}
		for _, id := range ids {
			rec, _, err := getCred(ctx, r, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	return out, err
}

// CredentialState is the full rotation state of one credential (for the
// CLI, the portal and tests); it never carries a value.
type CredentialState struct {
	ClusterID        string            `json:"clusterId"`
	OwnerID          string            `json:"ownerId"`
	OwnerName        string            `json:"ownerName"`
	Kind             Kind              `json:"kind"`
	Phase            string            `json:"phase"`
	Code             string            `json:"code,omitempty"`
	Message          string            `json:"message,omitempty"`
	Attempts         int               `json:"attempts,omitempty"`
	NextAttempt      *time.Time        `json:"nextAttempt,omitempty"`
	LastRotationTime *time.Time        `json:"lastRotationTime,omitempty"`
	SecretName       string            `json:"secretName,omitempty"`
	Reference        *ArchiveReference `json:"secretArchiveReference,omitempty"`
	// ExpiresAt is when the value in force reaches expirePeriodDays (unset
	// until the credential is deployed); Expiry is CredentialNearExpiry or
	// CredentialExpired from then on.
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
	Expiry    string     `json:"expiry,omitempty"`
}

// Credentials returns the state of every credential of a cluster, ordered
// by owner then kind.
func (e *Service) Credentials(ctx context.Context, clusterID string) ([]CredentialState, error) {
	recs, err := e.load(ctx, kClusterIdx+hashID(clusterID)+"/")
	if err != nil {
		return nil, err
	}
	now := e.clk.Now().UTC()
	out := make([]CredentialState, 0, len(recs))
	for _, r := range recs {
		s := CredentialState{ClusterID: r.ClusterID, OwnerID: r.OwnerID, OwnerName: r.OwnerName, Kind: r.Kind,
			Phase: r.Phase, Code: r.Code, Message: r.Message, Attempts: r.Attempts, LastRotationTime: r.LastRotation,
			SecretName: r.SecretName, Reference: r.Ref}
		if !r.NextAt.IsZero() {
			t := r.NextAt
			s.NextAttempt = &t
		}
		if code, at, _ := r.expiry(now); !at.IsZero() {
			s.ExpiresAt, s.Expiry = &at, code
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].OwnerID != out[j].OwnerID {
			return out[i].OwnerID < out[j].OwnerID
		}
		return out[i].Kind < out[j].Kind
	})
	return out, nil
}

// ClusterState summarises a cluster's rotation health: the most serious
// condition wins (CredentialExpired, then ManualChangeDetected, then a
// condition that keeps rotations from starting, then ArchivePending with
// its reason, then a target problem). Expiry is computed at the engine's
// clock, so it shows even before the expiry check has raised the alert; a
// blocked credential near expiry says when it expires.
func (e *Service) ClusterState(ctx context.Context, clusterID string) (ClusterState, error) {
	recs, err := e.load(ctx, kClusterIdx+hashID(clusterID)+"/")
	if err != nil {
		return ClusterState{}, err
	}
	now := e.clk.Now().UTC()
	best, rank, expired := ClusterState{Healthy: true}, 0, 0
	for _, r := range recs {
		exp, expiresAt, _ := r.expiry(now)
		if exp == CodeCredentialExpired {
			expired++
			if rank < 5 {
				best, rank = ClusterState{Code: CodeCredentialExpired, Message: r.expiryMessage(exp, expiresAt)}, 5
			}
			continue
		}
		if r.Code == "" {
			continue
		}
		var st ClusterState
		var k int
		switch {
		case r.Phase == phaseHalted:
			st, k = ClusterState{Code: r.Code, Message: r.Message}, 4
		case r.Phase == phaseArchivePending:
			st, k = ClusterState{Code: CodeArchivePending, Message: "Rotated credentials are held sealed by keyhaven until they can be delivered to the secret archive: " +
				r.Code + ": " + r.Message}, 2
		case isTargetCode(r.Code):
			st, k = ClusterState{Code: r.Code, Message: r.Message}, 1
		default:
			st, k = ClusterState{Code: r.Code, Message: r.Message}, 3
		}
		if exp == CodeCredentialNearExpiry {
			st.Message += fmt.Sprintf(" %s: the %s of '%s' reaches its maximum age at %s.", CodeCredentialNearExpiry, r.Kind,
				clipStr(r.OwnerName, 80), expiresAt.Format(time.RFC3339))
		}
		if k > rank {
			best, rank = st, k
		}
	}
	if expired > 1 {
		best.Message = fmt.Sprintf("%d credentials have reached their maximum age. %s", expired, best.Message)
	}
	return best, nil
}

// Alerts returns a cluster's alerts, newest first; cleared ones only when
// includeCleared.
func (e *Service) Alerts(ctx context.Context, clusterID string, includeCleared bool) ([]Alert, error) {
	recs, err := e.cfg.Store.List(ctx, alertPrefix(clusterID), store.ListOptions{Reverse: true, Limit: maxAlertsPerCluster + 50})
	if err != nil {
		return nil, err
	}
	out := []Alert{}
	for _, r := range recs {
		var a Alert
		if err := json.Unmarshal(r.Value, &a); err != nil {
			return nil, err
		}
		if a.ClearedAt != nil && !includeCleared {
			continue
		}
		out = append(out, a)
	}
	return out, nil
}

func lastSegment(id string) string {
	id = strings.TrimRight(id, "/")
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}
