package arm

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/postgres"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

// testLeaseTTL is short in real time because renewals run on a real
// ticker (every TTL/3); lease expiry itself follows the fake clock.
const testLeaseTTL = 300 * time.Millisecond

// sharedBackend opens two independent handles on one store, as two
// replicas have.
type sharedBackend struct {
	name string
	open func(t *testing.T) (store.Store, store.Store)
}

func sharedBackends(t *testing.T) []sharedBackend {
	bs := []sharedBackend{{name: "sqlite", open: func(t *testing.T) (store.Store, store.Store) {
		path := filepath.Join(t.TempDir(), "kh.db")
		var out [2]store.Store
		for i := range out {
			st, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			out[i] = st
		}
		return out[0], out[1]
	}}}
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Log("KEYHAVEN_TEST_POSTGRES_DSN is unset: PostgreSQL variants are skipped")
		return bs
	}
	return append(bs, sharedBackend{name: "postgres", open: func(t *testing.T) (store.Store, store.Store) {
		schema := "kh_arm_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
		t.Cleanup(func() {
			conn, err := pgx.Connect(context.Background(), dsn)
			if err != nil {
				t.Logf("cleanup: %v", err)
				return
			}
			defer conn.Close(context.Background())
			_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
		})
		var out [2]store.Store
		for i := range out {
			st, err := postgres.Open(t.Context(), dsn, postgres.WithSchema(schema))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			out[i] = st
		}
		return out[0], out[1]
	}})
}

var errPaused = errors.New("test: store unreachable")

// pausableStore makes a replica lose its store: while paused every Update
// fails, as for a replica partitioned from its database or frozen.
type pausableStore struct {
	store.Store
	mu     sync.RWMutex
	paused bool
}

func (p *pausableStore) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.paused {
		return errPaused
	}
	return p.Store.Update(ctx, fn)
}

// setPaused waits for writes in flight, so none lands after a pause.
func (p *pausableStore) setPaused(v bool) {
	p.mu.Lock()
	p.paused = v
	p.mu.Unlock()
}

// replicas is two ARM servers (A runs the work, B only polls and sweeps)
// on one store and one clock.
type replicas struct {
	a, b *env
	pa   *pausableStore
	w    *widgets // A's provider: its gate stalls A's operations
	clk  *clock.Fake
}

func newReplicas(t *testing.T, be sharedBackend) *replicas {
	t.Helper()
	st1, st2 := be.open(t)
	pa := &pausableStore{Store: st1}
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	dec := &fakeDecider{deny: map[string]bool{}, denyAt: map[string]bool{}}
	p := &principal.Principal{TenantID: testTenant, ObjectID: testOID, Kind: principal.User, UPN: "admin@keyhaven.local", Audience: testBase}
	mk := func(st store.Store, id string) *env {
		srv := New(st, dec, clk, Options{BaseURL: testBase, TenantID: testTenant, ReplicaID: id, OperationLeaseTTL: testLeaseTTL})
		t.Cleanup(srv.Wait)
		return &env{t: t, srv: srv, st: st, dec: dec, clk: clk, p: p}
	}
	r := &replicas{a: mk(pa, "replica-a"), b: mk(st2, "replica-b"), pa: pa, w: newWidgets(), clk: clk}
	r.a.srv.Register(r.w)
	r.b.srv.Register(newWidgets())
	if _, err := r.a.srv.CreateSubscription(t.Context(), sub1, "Default", testTenant); err != nil {
		t.Fatal(err)
	}
	r.a.must("PUT", rgP+rgV, map[string]any{"location": "eastus"}, 201)
	return r
}

// startGated starts a widget operation on A that runs until the returned
// release is called (also at cleanup), and returns its poll URLs.
func (r *replicas) startGated(t *testing.T) (status, result string, release func()) {
	t.Helper()
	gate := make(chan struct{})
	r.w.mu.Lock()
	r.w.gate = gate
	r.w.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	resp := r.a.must("POST", widgP+"/slowop"+wV, nil, 202)
	return resp.Header().Get("Azure-AsyncOperation"), resp.Header().Get("Location"), release
}

func readOp(t *testing.T, st store.Store, statusURL string) opRecord {
	t.Helper()
	id := statusURL[strings.LastIndex(statusURL, "/")+1:]
	id = strings.SplitN(id, "?", 2)[0]
	rec, err := st.Get(t.Context(), opKey(id))
	if err != nil {
		t.Fatal(err)
	}
	var op opRecord
	if err := json.Unmarshal(rec.Value, &op); err != nil {
		t.Fatal(err)
	}
	return op
}

// waitRenewed waits (in real time) until the owner has renewed the lease
// at the fake clock's current time.
func (r *replicas) waitRenewed(t *testing.T, statusURL string) {
	t.Helper()
	want := r.clk.Now().Add(testLeaseTTL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if op := readOp(t, r.b.st, statusURL); op.LeaseExpires != nil && !op.LeaseExpires.Before(want) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("lease not renewed to %v: %+v", want, readOp(t, r.b.st, statusURL))
}

func sweep(t *testing.T, e *env, want int) {
	t.Helper()
	if n, err := e.srv.SweepOperations(t.Context()); err != nil || n != want {
		t.Fatalf("SweepOperations on %s = %d, %v; want %d", e.srv.ReplicaID(), n, err, want)
	}
}

func assertInterrupted(t *testing.T, e *env, status, result string) {
	t.Helper()
	m := e.must("GET", status, nil, 200).json(t)
	errObj, _ := m["error"].(map[string]any)
	if m["status"] != StatusFailed || errObj["code"] != "OperationInterrupted" || m["endTime"] == nil ||
		!strings.Contains(errObj["message"].(string), "Retry the request") {
		t.Fatalf("status poll %v", m)
	}
	if r := e.do("GET", result, nil); r.Code != 500 || r.errCode(t) != "OperationInterrupted" {
		t.Fatalf("result poll = %d %s", r.Code, r.Body.String())
	}
}

func TestOperationLeases(t *testing.T) {
	for _, be := range sharedBackends(t) {
		t.Run(be.name, func(t *testing.T) {
			t.Run("ok/owner renews its lease and is never swept while alive", func(t *testing.T) {
				r := newReplicas(t, be)
				status, result, release := r.startGated(t)
				op := readOp(t, r.b.st, status)
				if op.Owner != "replica-a" || op.LeaseExpires == nil || !op.LeaseExpires.Equal(r.clk.Now().Add(testLeaseTTL)) {
					t.Fatalf("new operation %+v", op)
				}
				// Ten half-TTL steps: five TTLs of fake time, every lease renewed.
				for range 10 {
					r.clk.Advance(testLeaseTTL / 2)
					r.waitRenewed(t, status)
					sweep(t, r.b, 0)
					sweep(t, r.a, 0)
					if m := r.b.must("GET", status, nil, 200).json(t); m["status"] != StatusInProgress {
						t.Fatalf("status %v", m)
					}
				}
				release()
				r.a.srv.Wait()
				if m := r.b.must("GET", status, nil, 200).json(t); m["status"] != StatusSucceeded {
					t.Fatalf("status %v", m)
				}
				if m := r.b.must("GET", result, nil, 200).json(t); m["result"] != "done" {
					t.Fatalf("result %v", m)
				}
				if op := readOp(t, r.b.st, status); op.LeaseExpires != nil {
					t.Fatalf("finished operation keeps a lease: %+v", op)
				}
			})
			t.Run("fail/owner stops renewing: another replica fails it, the late outcome is discarded", func(t *testing.T) {
				r := newReplicas(t, be)
				status, result, release := r.startGated(t)
				r.pa.setPaused(true) // A can no longer write: no renewals
				r.clk.Advance(testLeaseTTL / 2)
				sweep(t, r.b, 0) // lease still valid
				if m := r.b.must("GET", status, nil, 200).json(t); m["status"] != StatusInProgress {
					t.Fatalf("status %v", m)
				}
				r.clk.Advance(testLeaseTTL)
				sweep(t, r.b, 1)
				sweep(t, r.b, 0) // once
				assertInterrupted(t, r.b, status, result)
				// A comes back and its work finishes: the client keeps the one
				// answer it may already have seen.
				r.pa.setPaused(false)
				release()
				r.a.srv.Wait()
				assertInterrupted(t, r.b, status, result)
				assertInterrupted(t, r.a, status, result)
				if op := readOp(t, r.b.st, status); op.Owner != "replica-a" {
					t.Fatalf("owner %q", op.Owner)
				}
			})
			t.Run("fail/owner fails before the sweep: its own outcome stands", func(t *testing.T) {
				r := newReplicas(t, be)
				r.w.mu.Lock()
				r.w.failOp = true
				r.w.mu.Unlock()
				status, result, release := r.startGated(t)
				release()
				r.a.srv.Wait()
				r.clk.Advance(10 * testLeaseTTL)
				sweep(t, r.b, 0)
				m := r.b.must("GET", status, nil, 200).json(t)
				if m["status"] != StatusFailed || m["error"].(map[string]any)["code"] != "WidgetBusy" {
					t.Fatalf("status %v", m)
				}
				if r := r.b.do("GET", result, nil); r.Code != 409 {
					t.Fatalf("result poll = %d", r.Code)
				}
			})
			t.Run("ok/every replica sweeps at once, each operation is failed once", func(t *testing.T) {
				r := newReplicas(t, be)
				const n = 12
				for i := range n {
					putOp(t, r.b.st, opRecord{ID: guidN(i), Owner: "dead-replica",
						LeaseExpires: ptr(r.clk.Now().Add(-time.Second))})
				}
				var wg sync.WaitGroup
				counts := make([]int, 4)
				errs := make([]error, 4)
				for i := range counts {
					e := r.a
					if i%2 == 1 {
						e = r.b
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						counts[i], errs[i] = e.srv.SweepOperations(context.Background())
					}()
				}
				wg.Wait()
				total := 0
				for i := range counts {
					if errs[i] != nil {
						t.Fatalf("sweep %d: %v", i, errs[i])
					}
					total += counts[i]
				}
				if total != n {
					t.Fatalf("sweeps marked %v = %d operations, want %d", counts, total, n)
				}
				for i := range n {
					if op := readOp(t, r.b.st, guidN(i)); op.Status != StatusFailed || op.ErrCode != "OperationInterrupted" {
						t.Fatalf("operation %d: %+v", i, op)
					}
				}
			})
			t.Run("ok/lease-less records count from their start", func(t *testing.T) {
				r := newReplicas(t, be)
				putOp(t, r.b.st, opRecord{ID: guidN(1)})
				r.clk.Advance(testLeaseTTL)
				sweep(t, r.b, 0)
				r.clk.Advance(time.Millisecond)
				sweep(t, r.b, 1)
			})
			t.Run("ok/FailInterrupted spares only its own operations", func(t *testing.T) {
				r := newReplicas(t, be)
				status, _, release := r.startGated(t)
				putOp(t, r.b.st, opRecord{ID: guidN(1), Owner: "dead-replica", LeaseExpires: ptr(r.clk.Now().Add(time.Hour))})
				sweep(t, r.a, 0) // unexpired leases: the sweep leaves both
				if n, err := r.a.srv.FailInterrupted(t.Context()); err != nil || n != 1 {
					t.Fatalf("FailInterrupted = %d, %v", n, err)
				}
				if op := readOp(t, r.b.st, guidN(1)); op.Status != StatusFailed {
					t.Fatalf("foreign operation %+v", op)
				}
				release()
				r.a.srv.Wait()
				if op := readOp(t, r.b.st, status); op.Status != StatusSucceeded {
					t.Fatalf("own operation %+v", op)
				}
			})
		})
	}
}

func TestReplicaIDDefault(t *testing.T) {
	a, b := New(nil, nil, nil, Options{}), New(nil, nil, nil, Options{})
	if a.ReplicaID() == "" || a.ReplicaID() == b.ReplicaID() || !strings.Contains(a.ReplicaID(), "-") {
		t.Fatalf("replica ids %q %q", a.ReplicaID(), b.ReplicaID())
	}
	if a.OperationLeaseTTL() != DefaultOperationLeaseTTL {
		t.Fatalf("lease TTL %v", a.OperationLeaseTTL())
	}
}

func ptr[T any](v T) *T { return &v }

func guidN(i int) string {
	return "00000000-0000-0000-0000-0000000000" + string(rune('a'+i/16)) + string("0123456789abcdef"[i%16])
}

// putOp writes an InProgress operation record as another replica would.
func putOp(t *testing.T, st store.Store, op opRecord) {
	t.Helper()
	op.Name, op.SubscriptionID, op.Namespace, op.Location, op.APIVersion = "Test.Widgets/widgets/slowop/action", sub1, "Test.Widgets", "eastus", "2024-01-01"
	op.Status = StatusInProgress
	if op.StartTime.IsZero() {
		op.StartTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	b, _ := json.Marshal(op)
	if err := st.Update(t.Context(), func(tx store.Tx) error {
		_, err := tx.Put(t.Context(), opKey(op.ID), b, store.Absent)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
