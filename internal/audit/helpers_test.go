package audit

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	testVault  = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v1"
	testVault2 = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v2"
	testTenant = "11111111-1111-1111-1111-111111111111"
	userOID    = "44444444-4444-4444-4444-444444444444"
	readerOID  = "55555555-5555-5555-5555-555555555555"
	testAud    = "https://localhost:8443"
)

var t0 = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)

func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newStore(t testing.TB) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyhaven.db")
	return openStore(t, path), path
}

func newSealer(t testing.TB, st store.Store) *seal.Envelope {
	t.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	root, err := seal.RootFromBytes(k)
	if err != nil {
		t.Fatal(err)
	}
	return seal.NewEnvelope(st, root)
}

// env is one audit log over a real SQLite store and a real envelope.
type env struct {
	st     store.Store
	path   string
	clk    *clock.Fake
	log    *Log
	key    []byte
	sealer *seal.Envelope
	logs   *syncBuffer
}

func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	st, path := newStore(t)
	e := &env{st: st, path: path, clk: clock.NewFake(t0), logs: &syncBuffer{}}
	e.sealer = newSealer(t, st)
	key, err := LoadOrCreateKey(context.Background(), st, e.sealer)
	if err != nil {
		t.Fatal(err)
	}
	e.key = key
	e.log = e.newLog(t, st, opts)
	return e
}

func (e *env) newLog(t testing.TB, st store.Store, opts Options) *Log {
	t.Helper()
	opts.Key = e.key
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(e.logs, nil))
	}
	if opts.APIAudience == "" {
		opts.APIAudience = testAud
	}
	l, err := New(st, e.clk, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// withInfo is the server's part: request info and the principal in context.
func withInfo(r *http.Request, info *principal.Info) *http.Request {
	if info == nil {
		info = &principal.Info{}
	}
	return r.WithContext(principal.WithInfo(r.Context(), info))
}

func userPrincipal() *principal.Principal {
	return &principal.Principal{TenantID: testTenant, ObjectID: userOID, AppID: "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
		Kind: principal.User, UPN: "alice@keyhaven.local", Audience: testAud}
}

// serve runs one request through the middleware.
func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// rawRecords returns every record under prefix.
func rawRecords(t testing.TB, st store.Store, prefix string) []store.Record {
	t.Helper()
	recs, err := st.List(context.Background(), prefix, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// events decodes every stored event of a stream in seq order.
func events(t testing.TB, st store.Store, stream string) []Event {
	t.Helper()
	var out []Event
	for _, rec := range rawRecords(t, st, prefixEvents+stream+"/") {
		e, ok, err := decode(rec.Value)
		if err != nil || !ok {
			t.Fatalf("event %s does not verify: %v", rec.Key, err)
		}
		out = append(out, e)
	}
	return out
}

func allEventCount(t testing.TB, st store.Store) int {
	return len(rawRecords(t, st, prefixEvents))
}

// failingStore fails every write while fail is set.
type failingStore struct {
	store.Store
	mu   sync.Mutex
	fail bool
}

var errDiskFull = errors.New("disk full (injected)")

func (f *failingStore) set(v bool) { f.mu.Lock(); f.fail = v; f.mu.Unlock() }

func (f *failingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	f.mu.Lock()
	fail := f.fail
	f.mu.Unlock()
	if fail {
		return errDiskFull
	}
	return f.Store.Update(ctx, fn)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.b.Bytes()...)
}

var _ io.Writer = (*syncBuffer)(nil)

// metricValue reads a counter or gauge.
func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	case d.Histogram != nil:
		return float64(d.Histogram.GetSampleCount())
	}
	return -1
}
