package audit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// gateStore counts transactions, can hold the first one until released
// (so later events queue behind it deterministically) and can fail chosen
// ones.
type gateStore struct {
	store.Store
	mu      sync.Mutex
	updates int
	gate    chan struct{} // when set, Update number 1 waits for it
	entered chan struct{} // closed once Update number 1 is waiting
	failIf  func(n int) bool
}

func newGateStore(st store.Store) *gateStore {
	return &gateStore{Store: st, gate: make(chan struct{}), entered: make(chan struct{})}
}

func (g *gateStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	g.mu.Lock()
	g.updates++
	n, gate, fail := g.updates, g.gate, g.failIf
	g.mu.Unlock()
	if n == 1 && gate != nil {
		close(g.entered)
		<-gate
	}
	if fail != nil && fail(n) {
		return errDiskFull
	}
	return g.Store.Update(ctx, fn)
}

func (g *gateStore) count() int { g.mu.Lock(); defer g.mu.Unlock(); return g.updates }

// waitQueued waits until n events wait for the next batch.
func waitQueued(t *testing.T, l *Log, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.gc.mu.Lock()
		got := len(l.gc.queue)
		l.gc.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// requestHandler names the resource by the request's index: three streams
// interleave within every batch.
func requestHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := principal.InfoFrom(r.Context())
		info.OperationName = "SecretGet"
		i, _ := strconv.Atoi(strings.TrimPrefix(info.RequestID, "req-"))
		switch i % 3 {
		case 0:
			info.ResourceID = testVault
		case 1:
			info.ResourceID = testVault2
		}
		_, _ = w.Write([]byte(`{"value":"x"}`))
	})
}

func requestFor(i int) *http.Request {
	return withInfo(httptest.NewRequest("GET", "https://v1.vault.localhost/secrets/a?api-version=7.5", nil),
		&principal.Info{RequestID: fmt.Sprintf("req-%d", i)})
}

// checkOneEventPerRequest asserts that request i of 0..n-1 has exactly one
// stored event when stored(i), none otherwise, and that every stream
// verifies as one unbroken chain.
func checkOneEventPerRequest(t *testing.T, l *Log, st store.Store, n int, stored func(i int) bool) {
	t.Helper()
	seen := map[string]int{}
	total := 0
	for _, s := range []string{GlobalStream, StreamOf(testVault), StreamOf(testVault2)} {
		for _, ev := range events(t, st, s) {
			seen[ev.Properties.RequestID]++
			total++
		}
	}
	want := 0
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("req-%d", i)
		switch {
		case stored(i) && seen[id] != 1:
			t.Fatalf("request %s has %d events, want 1", id, seen[id])
		case !stored(i) && seen[id] != 0:
			t.Fatalf("refused request %s has %d events, want 0", id, seen[id])
		}
		if stored(i) {
			want++
		}
	}
	if total != want {
		t.Fatalf("%d events stored, want %d", total, want)
	}
	rep, err := l.VerifyAll(context.Background())
	if err != nil || !rep.OK || rep.Checked != int64(want) {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func TestGroupCommitBatchesConcurrentRequests(t *testing.T) {
	const n = 60
	tests := []struct {
		name     string
		maxBatch int
		wantTx   int // the held first transaction, then the queue in MaxBatch slices
	}{
		{name: "ok/one-batch", wantTx: 2},
		{name: "ok/capped-batches", maxBatch: 8, wantTx: 1 + (n-1+7)/8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			gs := newGateStore(e.st)
			l := e.newLog(t, gs, Options{MaxBatch: tc.maxBatch})
			h := l.Middleware(requestHandler())
			codes := make([]int, n)
			var wg sync.WaitGroup
			serveOne := func(i int) {
				defer wg.Done()
				codes[i] = serve(h, requestFor(i)).Code
			}
			wg.Add(1)
			go serveOne(0)
			<-gs.entered // request 0's lone event is in its own transaction
			for i := 1; i < n; i++ {
				wg.Add(1)
				go serveOne(i)
			}
			waitQueued(t, l, n-1)
			for i, c := range codes[1:] {
				if c != 0 {
					t.Fatalf("request %d answered (%d) before its event was committed", i+1, c)
				}
			}
			close(gs.gate)
			wg.Wait()
			for i, c := range codes {
				if c != 200 {
					t.Fatalf("request %d: status %d", i, c)
				}
			}
			if got := gs.count(); got != tc.wantTx {
				t.Fatalf("%d transactions for %d events, want %d", got, n, tc.wantTx)
			}
			checkOneEventPerRequest(t, l, e.st, n, func(int) bool { return true })
			if got := metricValue(l.m.batchSize); got != float64(tc.wantTx) {
				t.Fatalf("batch-size histogram has %v samples, want %d", got, tc.wantTx)
			}
			if got := metricValue(l.m.events); got != n {
				t.Fatalf("events counter %v want %d", got, n)
			}
		})
	}
}

func TestGroupCommitFailedBatchFailsEveryRequest(t *testing.T) {
	const n = 20
	tests := []struct {
		name       string
		failOpen   bool
		wantStatus int
	}{
		{name: "fail/closed-every-request-refused", wantStatus: 500},
		{name: "ok/open-every-request-served", failOpen: true, wantStatus: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			gs := newGateStore(e.st)
			gs.failIf = func(n int) bool { return n == 2 } // the batch behind the held one
			l := e.newLog(t, gs, Options{FailOpen: tc.failOpen})
			h := l.Middleware(requestHandler())
			recs := make([]*httptest.ResponseRecorder, n)
			var wg sync.WaitGroup
			serveOne := func(i int) { defer wg.Done(); recs[i] = serve(h, requestFor(i)) }
			wg.Add(1)
			go serveOne(0)
			<-gs.entered
			for i := 1; i < n; i++ {
				wg.Add(1)
				go serveOne(i)
			}
			waitQueued(t, l, n-1)
			close(gs.gate)
			wg.Wait()
			if recs[0].Code != 200 {
				t.Fatalf("request 0 (its own, successful batch): %d", recs[0].Code)
			}
			for i, rec := range recs[1:] {
				if rec.Code != tc.wantStatus || strings.Contains(rec.Body.String(), `"value"`) != tc.failOpen {
					t.Fatalf("request %d: %d %s", i+1, rec.Code, rec.Body)
				}
			}
			if got := gs.count(); got != 2 {
				t.Fatalf("%d transactions, want 2", got)
			}
			if got := metricValue(l.m.writeFailures); got != n-1 {
				t.Fatalf("write failures %v want %d", got, n-1)
			}
			wantOpen := 0.0
			if tc.failOpen {
				wantOpen = n - 1
			}
			if got := metricValue(l.m.failOpen); got != wantOpen {
				t.Fatalf("fail-open counter %v want %v", got, wantOpen)
			}
			checkOneEventPerRequest(t, l, e.st, n, func(i int) bool { return i == 0 })
		})
	}
}

// staleStore makes the first transaction see the stream heads as they were
// before another replica appended: the head precondition must turn that
// into a conflict and the batch must be rebuilt on the new heads.
type staleStore struct {
	store.Store
	mu       sync.Mutex
	attempts int
	other    func()
}

func (s *staleStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	s.mu.Lock()
	s.attempts++
	first := s.attempts == 1
	s.mu.Unlock()
	if !first {
		return s.Store.Update(ctx, fn)
	}
	snap := map[string]store.Record{}
	recs, err := s.Store.List(ctx, prefixHeads, store.ListOptions{})
	if err != nil {
		return err
	}
	for _, r := range recs {
		snap[r.Key] = r
	}
	s.other()
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(staleTx{Tx: tx, heads: snap}) })
}

type staleTx struct {
	store.Tx
	heads map[string]store.Record
}

func (s staleTx) Get(ctx context.Context, key string) (store.Record, error) {
	if strings.HasPrefix(key, prefixHeads) {
		if r, ok := s.heads[key]; ok {
			return r, nil
		}
		return store.Record{}, store.ErrNotFound
	}
	return s.Tx.Get(ctx, key)
}

func TestGroupCommitRetriesBatchOnHeadConflict(t *testing.T) {
	e := newEnv(t, Options{})
	appendN(t, e.log, testVault, 2)
	other := e.newLog(t, openStore(t, e.path), Options{})
	ss := &staleStore{Store: e.st, other: func() { appendN(t, other, testVault, 3) }}
	l := e.newLog(t, ss, Options{})
	out, err := l.Append(context.Background(), Event{ResourceID: testVault, OperationName: "SecretSet"})
	if err != nil {
		t.Fatal(err)
	}
	if ss.attempts != 2 || out.Seq != 6 {
		t.Fatalf("attempts %d, seq %d: want a retry landing at seq 6", ss.attempts, out.Seq)
	}
	evs := events(t, e.st, StreamOf(testVault))
	if len(evs) != 6 || evs[5].OperationName != "SecretSet" || evs[5].PrevHash != evs[4].Hash {
		t.Fatalf("chain after retry: %d events", len(evs))
	}
	if rep, err := l.Verify(context.Background(), StreamOf(testVault)); err != nil || !rep.OK || rep.Checked != 6 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// TestGroupCommitTwoLogsOneFile runs two Logs over two SQLite handles on
// one file (as two replicas would share a database), each batching.
func TestGroupCommitTwoLogsOneFile(t *testing.T) {
	e := newEnv(t, Options{})
	c1 := &gateStore{Store: e.st}
	c2 := &gateStore{Store: openStore(t, e.path)}
	logs := []*Log{e.newLog(t, c1, Options{}), e.newLog(t, c2, Options{})}
	const workers, per = 16, 12
	n := workers * per
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			h := logs[w%2].Middleware(requestHandler())
			for i := 0; i < per; i++ {
				if rec := serve(h, requestFor(w*per+i)); rec.Code != 200 {
					t.Errorf("status %d", rec.Code)
				}
			}
		}(w)
	}
	wg.Wait()
	checkOneEventPerRequest(t, logs[0], e.st, n, func(int) bool { return true })
	if tx := c1.count() + c2.count(); tx >= n {
		t.Fatalf("%d transactions for %d events: nothing was batched", tx, n)
	}
}

func TestCloseFlushesPendingEvents(t *testing.T) {
	const n = 12
	e := newEnv(t, Options{})
	gs := newGateStore(e.st)
	l := e.newLog(t, gs, Options{})
	h := l.Middleware(requestHandler())
	codes := make([]int, n)
	var wg sync.WaitGroup
	serveOne := func(i int) { defer wg.Done(); codes[i] = serve(h, requestFor(i)).Code }
	wg.Add(1)
	go serveOne(0)
	<-gs.entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go serveOne(i)
	}
	waitQueued(t, l, n-1)

	// A deadline passes while the events are still being written.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Close(ctx); err == nil {
		t.Fatal("Close returned before the pending events were written")
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close(context.Background()) }()
	close(gs.gate)
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	// Close returned: every event submitted before it is on record.
	if got := allEventCount(t, e.st); got != n {
		t.Fatalf("%d events stored at close, want %d", got, n)
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	// After Close nothing is answered without a record.
	if _, err := l.Append(context.Background(), Event{OperationName: "Late"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if rec := serve(h, requestFor(n)); rec.Code != 500 || strings.Contains(rec.Body.String(), `"value"`) {
		t.Fatalf("request after close: %d %s", rec.Code, rec.Body)
	}
	checkOneEventPerRequest(t, l, e.st, n+1, func(i int) bool { return i < n })
	if err := l.Close(context.Background()); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestAppendWithdrawnBeforeItsBatch(t *testing.T) {
	e := newEnv(t, Options{})
	gs := newGateStore(e.st)
	l := e.newLog(t, gs, Options{})
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), Event{OperationName: "First"})
		first <- err
	}()
	<-gs.entered
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, Event{OperationName: "Withdrawn"})
		second <- err
	}()
	waitQueued(t, l, 1)
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("withdrawn append: %v", err)
	}
	waitQueued(t, l, 0)
	close(gs.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	evs := events(t, e.st, GlobalStream)
	if len(evs) != 1 || evs[0].OperationName != "First" || gs.count() != 1 {
		t.Fatalf("events %+v after %d transactions", evs, gs.count())
	}
}

func TestAppendRejectsBadEventAlone(t *testing.T) {
	tests := []struct {
		name    string
		ev      Event
		wantErr error
	}{
		{name: "ok/plain", ev: Event{OperationName: "SecretGet"}},
		{name: "fail/too-large", ev: Event{OperationName: "SecretGet", ResultDescription: strings.Repeat("x", store.MaxValueLen)}, wantErr: store.ErrTooLarge},
		{name: "fail/escaped-too-large", ev: Event{OperationName: "SecretGet", ResultDescription: strings.Repeat("<", store.MaxValueLen/5)}, wantErr: store.ErrTooLarge},
		{name: "fail/bad-time", ev: Event{OperationName: "SecretGet", Time: "yesterday"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			_, err := e.log.Append(context.Background(), tc.ev)
			ok := strings.HasPrefix(tc.name, "ok/")
			if (err == nil) != ok || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("append: %v", err)
			}
			// The log goes on: a refused event never reaches a batch.
			if _, err := e.log.Append(context.Background(), Event{OperationName: "Next"}); err != nil {
				t.Fatal(err)
			}
			want := 1
			if ok {
				want = 2
			}
			if got := allEventCount(t, e.st); got != want {
				t.Fatalf("%d events want %d", got, want)
			}
		})
	}
}
