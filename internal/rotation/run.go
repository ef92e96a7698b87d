package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

func randFloat() float64 { return rand.Float64() }

// errLeaseLost: another replica took the credential (our lease expired).
var errLeaseLost = errors.New("rotation: lease lost")

// claim is this replica's lease on one credential.
type claim struct {
	credID   string
	leaseVer int64
}

// Run looks for due work every PollInterval (or when woken) until ctx ends.
func (e *Service) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		n, checked, err := e.runOnce(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("rotation pass failed", "err", err)
		}
		if (n >= e.cfg.BatchSize || checked >= e.cfg.BatchSize) && ctx.Err() == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-e.wake:
		}
	}
}

// RunOnce claims the credentials due now (up to BatchSize), runs each to
// its next resting point with up to Workers at a time, and returns how many
// it claimed. Several replicas may call it concurrently on one store: a
// claim is a lease record written under a precondition, so each due
// credential is worked by one replica; a lease left by a dead replica is
// taken over once it expires. Then it checks the credentials whose expiry
// condition changes by now (checkExpiries), which rotates nothing; after
// the rotations, so one due at the same moment pre-empts the alert.
func (e *Service) RunOnce(ctx context.Context) (int, error) {
	n, _, err := e.runOnce(ctx)
	return n, err
}

// runOnce is RunOnce, also returning how many expiry checks it made.
func (e *Service) runOnce(ctx context.Context) (int, int, error) {
	now := e.clk.Now().UTC()
	n, err := e.rotateDue(ctx, now)
	checked, checkErr := e.checkExpiries(ctx, e.clk.Now().UTC())
	if err == nil {
		err = checkErr
	}
	return n, checked, err
}

// rotateDue claims the credentials due at now and works them.
func (e *Service) rotateDue(ctx context.Context, now time.Time) (int, error) {
	recs, err := e.cfg.Store.List(ctx, kDue, store.ListOptions{Limit: e.cfg.BatchSize * 4})
	if err != nil {
		return 0, err
	}
	limit := dueKey(now, "")
	sem := make(chan struct{}, e.cfg.Workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	n := 0
	for _, r := range recs {
		if r.Key > limit+"\xff" || n >= e.cfg.BatchSize || ctx.Err() != nil {
			break
		}
		credID := r.Key[strings.LastIndexByte(r.Key, '/')+1:]
		if !e.markInflight(credID) {
			continue
		}
		c, err := e.claim(ctx, credID, r.Key, now)
		if err != nil || c == nil {
			e.unmarkInflight(credID)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			continue
		}
		n++
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { e.unmarkInflight(c.credID); <-sem; wg.Done() }()
			if err := e.work(ctx, c); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n, firstErr
}

func (e *Service) markInflight(id string) bool {
	e.inflightMu.Lock()
	defer e.inflightMu.Unlock()
	if e.inflight[id] {
		return false
	}
	e.inflight[id] = true
	return true
}

func (e *Service) unmarkInflight(id string) {
	e.inflightMu.Lock()
	delete(e.inflight, id)
	e.inflightMu.Unlock()
}

// claim takes the lease on credID if the credential is still due and no
// live lease is held, in one serializable transaction.
func (e *Service) claim(ctx context.Context, credID, listedKey string, now time.Time) (*claim, error) {
	var c *claim
	err := e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		c = nil
		rec, _, err := getCred(ctx, tx, credID)
		if errors.Is(err, store.ErrNotFound) {
			return tx.Delete(ctx, listedKey, store.Any) // stale index entry
		}
		if err != nil {
			return err
		}
		if dueKey(rec.NextAt, credID) != listedKey {
			if err := tx.Delete(ctx, listedKey, store.Any); err != nil {
				return err
			}
		}
		if rec.NextAt.IsZero() || rec.NextAt.After(now) {
			return nil
		}
		ifVer := store.Absent
		if lr, err := tx.Get(ctx, kLease+credID); err == nil {
			var l leaseRecord
			if json.Unmarshal(lr.Value, &l) == nil && l.Expires.After(now) {
				return nil // held by a live replica
			}
			ifVer = lr.Version
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		v, err := putJSON(ctx, tx, kLease+credID, leaseRecord{Owner: e.cfg.Owner, Expires: now.Add(e.cfg.LeaseTTL)}, ifVer)
		if err != nil {
			return err
		}
		c = &claim{credID: credID, leaseVer: v}
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return nil, nil // another replica won the race
	}
	return c, err
}

// checkLease verifies, inside tx, that c still holds its lease and renews it.
func (e *Service) checkLease(ctx context.Context, tx store.Tx, c *claim, now time.Time) (int64, error) {
	lr, err := tx.Get(ctx, kLease+c.credID)
	if errors.Is(err, store.ErrNotFound) {
		return 0, errLeaseLost
	}
	if err != nil {
		return 0, err
	}
	var l leaseRecord
	if json.Unmarshal(lr.Value, &l) != nil || l.Owner != e.cfg.Owner || lr.Version != c.leaseVer {
		return 0, errLeaseLost
	}
	return putJSON(ctx, tx, kLease+c.credID, leaseRecord{Owner: e.cfg.Owner, Expires: now.Add(e.cfg.LeaseTTL)}, lr.Version)
}

// renew extends the lease before an external step; errLeaseLost means
// another replica owns the credential now and this one must stop.
func (e *Service) renew(ctx context.Context, c *claim) error {
	now := e.clk.Now().UTC()
	var v int64
	err := e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		v, err = e.checkLease(ctx, tx, c, now)
		return err
	})
	if err == nil {
		c.leaseVer = v
	}
	return err
}

// save persists rec (CAS on ver) together with a lease renewal.
func (e *Service) save(ctx context.Context, c *claim, rec *credRecord, ver int64, prevNext time.Time) error {
	now := e.clk.Now().UTC()
	var lv int64
	var saved credRecord
	err := e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		var err error
		if lv, err = e.checkLease(ctx, tx, c, now); err != nil {
			return err
		}
		// writeCred mutates alert fields; keep retries clean. rec takes the
		// result only once committed: a store may run fn again after a
		// failed commit (PostgreSQL serialization failure), and an attempt
		// that was rolled back must not leave its alert IDs in rec.
		r := *rec
		if _, err := writeCred(ctx, tx, &r, ver, prevNext, now); err != nil {
			return err
		}
		saved = r
		return nil
	})
	if err == nil {
		*rec = saved
		c.leaseVer = lv
	}
	if errors.Is(err, store.ErrConflict) {
		return errLeaseLost
	}
	return err
}

func (e *Service) release(c *claim) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.cfg.Store.Update(ctx, func(tx store.Tx) error {
		lr, err := tx.Get(ctx, kLease+c.credID)
		if err != nil {
			return nil
		}
		var l leaseRecord
		if json.Unmarshal(lr.Value, &l) != nil || l.Owner != e.cfg.Owner || lr.Version != c.leaseVer {
			return nil
		}
		return tx.Delete(ctx, kLease+c.credID, lr.Version)
	})
}

// backoff is the delay before attempt n+1 (n ≥ 1): exponential, capped,
// jittered.
func (e *Service) backoff(n int) time.Duration {
	b := e.cfg.Backoff
	d := b.Initial
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	f := 1 - b.Jitter + 2*b.Jitter*e.jitter()
	return time.Duration(float64(d) * f)
}
