package audit

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type shipped struct {
	resourceID, category string
	event                []byte
	at                   time.Time
}

// fakeSink records deliveries; while failures > 0 it refuses them.
type fakeSink struct {
	mu       sync.Mutex
	name     string
	failures int
	calls    int
	events   []shipped
}

func (s *fakeSink) SinkName() string { return s.name }

func (s *fakeSink) Ship(_ context.Context, resourceID, category string, event []byte, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failures > 0 {
		s.failures--
		return errors.New("storage account unavailable (injected)")
	}
	s.events = append(s.events, shipped{resourceID, category, append([]byte(nil), event...), at})
	return nil
}

func (s *fakeSink) got() []shipped {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]shipped(nil), s.events...)
}

func (s *fakeSink) seqs(t *testing.T) []int64 {
	var out []int64
	for _, ev := range s.got() {
		e, ok, err := decode(ev.event)
		if err != nil || !ok {
			t.Fatalf("shipped event does not verify: %v", err)
		}
		out = append(out, e.Seq)
	}
	return out
}

func TestShipperDeliversWithRetryAndPersistedCursor(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{})
	sink := &fakeSink{name: "diag", failures: 2}
	l := e.newLog(t, e.st, Options{Sinks: []Sink{sink}, ShipBatch: 3})
	appendN(t, l, testVault, 4)
	appendN(t, l, "", 2) // global: never shipped

	steps := []struct {
		name      string
		advance   time.Duration
		wantN     int
		wantErr   bool
		wantSeqs  []int64
		wantCalls int
		backlog   float64
	}{
		{name: "fail/storage-down", wantErr: true, wantCalls: 1, backlog: 4},
		{name: "fail/still-backing-off", advance: 500 * time.Millisecond, wantCalls: 1, backlog: 4},
		{name: "fail/down-again", advance: time.Second, wantErr: true, wantCalls: 2, backlog: 4},
		{name: "ok/recovered-first-batch", advance: 2 * time.Second, wantN: 3, wantSeqs: []int64{1, 2, 3}, wantCalls: 5, backlog: 1},
		{name: "ok/rest", wantN: 1, wantSeqs: []int64{1, 2, 3, 4}, wantCalls: 6, backlog: 0},
		{name: "ok/nothing-new", wantSeqs: []int64{1, 2, 3, 4}, wantCalls: 6, backlog: 0},
	}
	for _, st := range steps {
		e.clk.Advance(st.advance)
		n, err := l.ShipOnce(ctx)
		if (err != nil) != st.wantErr || n != st.wantN {
			t.Fatalf("%s: shipped %d err %v", st.name, n, err)
		}
		if got := sink.seqs(t); !equalInts(got, st.wantSeqs) || sink.calls != st.wantCalls {
			t.Fatalf("%s: seqs %v calls %d, want %v %d", st.name, got, sink.calls, st.wantSeqs, st.wantCalls)
		}
		if b := metricValue(l.m.backlog); b != st.backlog {
			t.Fatalf("%s: backlog %v want %v", st.name, b, st.backlog)
		}
	}
	for _, s := range sink.got() {
		if s.resourceID != testVault || s.category != "AuditEvent" || !s.at.Equal(t0) {
			t.Fatalf("delivery %s %s %v", s.resourceID, s.category, s.at)
		}
	}
	if metricValue(l.m.shipFailures) != 2 {
		t.Fatalf("ship failures %v", metricValue(l.m.shipFailures))
	}

	// Restart: a new process (new Log, new sink value, same name) resumes
	// from the persisted cursor and ships only what is new.
	appendN(t, l, testVault, 2)
	e.clk.Advance(time.Minute) // the old lease expires
	sink2 := &fakeSink{name: "diag"}
	l2 := e.newLog(t, openStore(t, e.path), Options{Sinks: []Sink{sink2}})
	if n, err := l2.ShipOnce(ctx); err != nil || n != 2 {
		t.Fatalf("after restart: shipped %d err %v", n, err)
	}
	if got := sink2.seqs(t); !equalInts(got, []int64{5, 6}) {
		t.Fatalf("after restart shipped %v, want [5 6]", got)
	}
}

func TestShipperLeaseOneReplica(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{})
	a, b := &fakeSink{name: "diag"}, &fakeSink{name: "diag"}
	la := e.newLog(t, e.st, Options{Sinks: []Sink{a}, ReplicaID: "a"})
	lb := e.newLog(t, openStore(t, e.path), Options{Sinks: []Sink{b}, ReplicaID: "b"})
	appendN(t, la, testVault, 3)
	if n, _ := la.ShipOnce(ctx); n != 3 {
		t.Fatalf("holder shipped %d", n)
	}
	appendN(t, la, testVault, 1)
	if n, _ := lb.ShipOnce(ctx); n != 0 || len(b.got()) != 0 {
		t.Fatalf("a second replica shipped while the lease is held: %d", n)
	}
	e.clk.Advance(2 * minLease) // replica a is gone
	if n, _ := lb.ShipOnce(ctx); n != 1 || !equalInts(b.seqs(t), []int64{4}) {
		t.Fatalf("takeover shipped %v", b.seqs(t))
	}
}

func TestRunShipperWakesOnAppend(t *testing.T) {
	e := newEnv(t, Options{})
	sink := &fakeSink{name: "diag"}
	l := e.newLog(t, e.st, Options{Sinks: []Sink{sink}, ShipInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.RunShipper(ctx) }()
	appendN(t, l, testVault, 1)
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.got()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("RunShipper returned %v", err)
	}
	if len(sink.got()) != 1 {
		t.Fatalf("shipped %d", len(sink.got()))
	}
}

func equalInts(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
