package rotation

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// retryingStore runs every transaction's fn twice while armed: the first
// attempt is rolled back as if its commit had failed (a PostgreSQL
// serialization failure at COMMIT), then fn runs again, as the store
// contract allows.
type retryingStore struct {
	store.Store
	armed atomic.Bool
}

var errCommitFailed = errors.New("injected commit failure")

func (s *retryingStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	if s.armed.Load() {
		err := s.Store.Update(ctx, func(tx store.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return errCommitFailed // roll back what fn wrote
		})
		if !errors.Is(err, errCommitFailed) {
			return err
		}
	}
	return s.Store.Update(ctx, fn)
}

// TestAlertsSurviveRetriedCommits: an alert raised or cleared by a
// transaction whose first commit failed is raised or cleared by the retry.
// (save once copied the rolled-back attempt's alert IDs into the record the
// retry started from: the retry then raised no alert, or cleared none, and
// the record and its alerts disagreed for good.)
func TestAlertsSurviveRetriedCommits(t *testing.T) {
	e := newEnv(t)
	cid := e.healthyCluster()
	e.res.setErr(cid, azerr.New(http.StatusBadRequest, CodeSecretArchiveNotConfigured, "The cluster has no secret archive."))
	rs := &retryingStore{Store: e.st}
	s := e.engine("r1", func(c *Config) { c.Store = rs })
	tg := e.bmcTargets(cid, 1)
	if err := e.deploy(s, tg); err != nil {
		t.Fatal(err)
	}
	rs.armed.Store(true)
	e.runOnce(s)
	wantCode(t, e.cred(s, cid, tg[0].OwnerID, KindBMC), phaseIdle, CodeSecretArchiveNotConfigured)
	if act, err := s.Alerts(e.ctx, cid, false); err != nil || len(act) != 1 || act[0].Code != CodeSecretArchiveNotConfigured {
		t.Fatalf("blocked after a retried commit: active alerts %+v %v, want one %s", act, err, CodeSecretArchiveNotConfigured)
	}

	e.res.set(cid, e.cmArchive())
	e.clk.Advance(2 * time.Minute)
	e.runOnce(s)
	wantCode(t, e.cred(s, cid, tg[0].OwnerID, KindBMC), phaseIdle, "")
	if act, err := s.Alerts(e.ctx, cid, false); err != nil || len(act) != 0 {
		t.Fatalf("delivered after retried commits: active alerts %+v %v, want none", act, err)
	}
	if e.bmc.Patches() != 1 {
		t.Fatalf("BMC changed %d times, want 1", e.bmc.Patches())
	}
}
