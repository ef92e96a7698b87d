package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Group commit: Append queues its event and waits; one committer goroutine
// at a time takes everything queued (up to MaxBatch) and writes it in one
// store transaction, then wakes each waiter with its own outcome. The
// committer starts when an event arrives while none runs (that event is
// written at once: a lone request waits for one transaction, as before) and
// exits when the queue is empty, so nothing needs stopping for correctness:
// every queued event belongs to a caller blocked in Append, and the server's
// graceful shutdown waits for those callers. Close is there to refuse late
// appends and to bound the wait.
//
// Events queue while a transaction is in flight, so batches grow with load
// by themselves; BatchWindow optionally holds a follow-up batch open a
// little longer to gather more.

// Batching defaults and bounds.
const (
	DefaultMaxBatch = 256
	maxMaxBatch     = 4096
	maxBatchWindow  = 100 * time.Millisecond
)

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit: the log is closed")

// pending is one event waiting for its batch.
type pending struct {
	e      Event // category and time set
	ns     int64
	stream string

	claimed bool // taken into a batch (guarded by groupCommit.mu)
	done    chan struct{}
	out     Event
	err     error
}

type groupCommit struct {
	mu      sync.Mutex
	queue   []*pending
	running bool
	closed  bool
	drained chan struct{} // closed when the running committer exits
	full    chan struct{} // a window wait ends early: MaxBatch reached
}

// prepare checks and completes e before it joins a batch, so one bad event
// never fails the others it would share a transaction with.
func (l *Log) prepare(e Event) (*pending, error) {
	if e.Category == "" {
		e.Category = Category
	}
	if e.Time == "" {
		e.Time = l.clk.Now().UTC().Format(TimeFormat)
	}
	at, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return nil, fmt.Errorf("audit: event time %q: %w", e.Time, err)
	}
	e.Seq, e.PrevHash, e.Hash = 0, "", ""
	if maxEncodedSize(e) > store.MaxValueLen {
		// Rare (the middleware clips every field): measure exactly, with
		// the widest chain fields the transaction could add.
		probe := e
		probe.Seq, probe.PrevHash = 1<<62, strings.Repeat("0", 64)
		raw, _, err := encode(probe)
		if err != nil {
			return nil, fmt.Errorf("audit: encode event: %w", err)
		}
		if len(raw) > store.MaxValueLen {
			return nil, fmt.Errorf("audit: event of %d bytes exceeds the store's value limit: %w", len(raw), store.ErrTooLarge)
		}
	}
	return &pending{e: e, ns: max(at.UnixNano(), 0), stream: StreamOf(e.ResourceID), done: make(chan struct{})}, nil
}

// maxEncodedSize bounds the JSON size of e with chain fields and hash: each
// string byte takes at most 6 bytes escaped, the rest is a fixed frame.
func maxEncodedSize(e Event) int {
	n := len(e.Time) + len(e.ResourceID) + len(e.OperationName) + len(e.OperationVersion) + len(e.Category) +
		len(e.ResultType) + len(e.ResultSignature) + len(e.ResultDescription) + len(e.CallerIPAddress) +
		len(e.CorrelationID) + len(e.Properties.ID) + len(e.Properties.RequestURI) + len(e.Properties.ClientInfo) +
		len(e.Properties.TLSVersion) + len(e.Properties.RequestID) + len(e.Properties.ValueHMAC)
	if id := e.Identity; id != nil {
		n += len(id.Claim.OID) + len(id.Claim.AppID) + len(id.Claim.UPN) + len(id.Claim.TID) + len(id.Claim.XMSMIRID)
	}
	return 6*n + 2048
}

// submit queues p and waits for the transaction that holds it. A caller
// whose ctx ends before its event is taken into a batch withdraws it (not
// written); once taken, the batch's outcome is the answer, so a reported
// failure never hides a stored event and a success is never a guess.
func (l *Log) submit(ctx context.Context, p *pending) (Event, error) {
	g := &l.gc
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return Event{}, ErrClosed
	}
	g.queue = append(g.queue, p)
	if !g.running {
		g.running = true
		g.drained = make(chan struct{})
		go l.commitLoop(g.drained)
	} else if len(g.queue) >= l.opts.MaxBatch {
		select {
		case g.full <- struct{}{}:
		default:
		}
	}
	g.mu.Unlock()

	select {
	case <-p.done:
		return p.out, p.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !p.claimed {
		for i, q := range g.queue {
			if q == p {
				g.queue = append(g.queue[:i:i], g.queue[i+1:]...)
				break
			}
		}
		g.mu.Unlock()
		return Event{}, fmt.Errorf("audit: event not written: %w", ctx.Err())
	}
	g.mu.Unlock()
	<-p.done
	return p.out, p.err
}

// commitLoop writes batches until the queue is empty. The first batch goes
// at once; later ones (events that queued during a transaction) may wait up
// to BatchWindow for more.
func (l *Log) commitLoop(drained chan struct{}) {
	g := &l.gc
	first := true
	for {
		g.mu.Lock()
		if !first && l.opts.BatchWindow > 0 && len(g.queue) > 0 && len(g.queue) < l.opts.MaxBatch {
			g.mu.Unlock()
			// Real time, not l.clk: this is a throughput knob, and a test's
			// fake clock must not stall the log.
			t := time.NewTimer(l.opts.BatchWindow)
			select {
			case <-t.C:
			case <-g.full:
			}
			t.Stop()
			g.mu.Lock()
		}
		if len(g.queue) == 0 {
			g.running = false
			close(drained)
			g.mu.Unlock()
			return
		}
		n := min(len(g.queue), l.opts.MaxBatch)
		batch := make([]*pending, n)
		copy(batch, g.queue)
		rest := copy(g.queue, g.queue[n:])
		clear(g.queue[rest:])
		g.queue = g.queue[:rest]
		for _, p := range batch {
			p.claimed = true
		}
		select { // a stale "full" must not cut the next window short
		case <-g.full:
		default:
		}
		g.mu.Unlock()
		l.commitBatch(batch)
		first = false
	}
}

// commitBatch writes batch in one transaction and wakes every waiter. On a
// head conflict (another replica appended to one of the streams) the whole
// batch is rebuilt on the new heads; any other failure fails every event.
func (l *Log) commitBatch(batch []*pending) {
	l.m.batchSize.Observe(float64(len(batch)))
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	defer cancel()
	outs := make([]Event, len(batch))
	var err error
	for attempt := 0; attempt < appendAttempts; attempt++ {
		err = l.updateBatch(ctx, batch, outs)
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	for i, p := range batch {
		if err != nil {
			p.err = fmt.Errorf("audit: append to stream %s: %w", p.stream, err)
		} else {
			p.out = outs[i]
		}
		close(p.done)
	}
	if err == nil {
		select {
		case l.notify <- struct{}{}:
		default:
		}
	}
}

// updateBatch runs one transaction; a panic in it fails the batch instead of
// stranding its waiters.
func (l *Log) updateBatch(ctx context.Context, batch []*pending, outs []Event) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("audit: batch write panicked: %v", v)
		}
	}()
	return l.st.Update(ctx, func(tx store.Tx) error { return writeBatch(ctx, tx, batch, outs) })
}

// streamHead is a stream's head as read in this transaction, and how far
// the batch has moved it.
type streamHead struct {
	h   head
	ver int64
}

// writeBatch chains every event of batch onto its stream in batch order and
// writes each touched head once, with the version read in this transaction
// as precondition: a concurrent writer (another replica) makes it
// ErrConflict, never a fork. It has no effect outside tx (the store may run
// it again): outs is overwritten in full.
func writeBatch(ctx context.Context, tx store.Tx, batch []*pending, outs []Event) error {
	heads := make(map[string]*streamHead, 4)
	var order []string
	for i, p := range batch {
		sh := heads[p.stream]
		if sh == nil {
			h, ver, err := readHead(ctx, tx, p.stream)
			if err != nil {
				return err
			}
			sh = &streamHead{h: h, ver: ver}
			heads[p.stream] = sh
			order = append(order, p.stream)
		}
		ev := p.e
		ev.Seq, ev.PrevHash = sh.h.Seq+1, sh.h.Hash
		raw, hash, err := encode(ev)
		if err != nil {
			return err
		}
		ev.Hash = hash
		key := eventKey(p.stream, ev.Seq)
		if _, err := tx.Put(ctx, key, raw, store.Absent); err != nil {
			return err
		}
		if _, err := tx.Put(ctx, streamTimeKey(p.stream, p.ns, ev.Seq), []byte(key), store.Absent); err != nil {
			return err
		}
		if _, err := tx.Put(ctx, timeKey(p.stream, p.ns, ev.Seq), []byte(key), store.Absent); err != nil {
			return err
		}
		if sh.h.ResourceID == "" {
			sh.h.ResourceID = p.e.ResourceID
		}
		sh.h.Seq, sh.h.Hash = ev.Seq, hash
		outs[i] = ev
	}
	for _, s := range order {
		sh := heads[s]
		hb, _ := json.Marshal(sh.h)
		if _, err := tx.Put(ctx, headKey(s), hb, sh.ver); err != nil {
			return err
		}
	}
	return nil
}

// Close refuses further appends (they fail, so the middleware fails closed)
// and waits until every event already submitted is committed or has failed,
// or ctx ends. It is safe to call more than once. The server calls it after
// its HTTP servers have shut down and before the store closes.
func (l *Log) Close(ctx context.Context) error {
	g := &l.gc
	g.mu.Lock()
	g.closed = true
	var drained chan struct{}
	if g.running {
		drained = g.drained
	}
	g.mu.Unlock()
	if drained == nil {
		return nil
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: close: events still being written: %w", ctx.Err())
	}
}
