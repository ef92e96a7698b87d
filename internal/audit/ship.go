package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Sink receives stored events, one at a time, in seq order per stream. The
// Microsoft.Insights provider implements it: it ships a vault's events to
// the storage account of its diagnostic setting and returns nil (shipping
// nothing) for a resource without one. event is the stored JSON of the event
// (the AuditEvent shape plus seq, prevHash and hash); at is its time.
// A returned error is retried later with backoff; delivery is at least once.
type Sink interface {
	Ship(ctx context.Context, resourceID, category string, event []byte, at time.Time) error
}

// Namer is implemented by sinks that name their persisted cursor; other
// sinks are named by their index in Options.Sinks, so keep their order.
type Namer interface {
	SinkName() string
}

const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
	minLease   = 30 * time.Second
)

type backoff struct {
	failures int
	next     time.Time
}

// shipState is the in-memory part of shipping: per sink and stream backoff.
type shipState struct {
	mu      sync.Mutex
	backoff map[string]*backoff
}

func (l *Log) sinkName(i int) string {
	if n, ok := l.opts.Sinks[i].(Namer); ok {
		name := n.SinkName()
		if name != "" && len(name) <= 64 && !strings.ContainsFunc(name, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
		}) {
			return name
		}
	}
	return "sink" + strconv.Itoa(i)
}

func cursorKey(sink, stream string) string { return prefixCursors + sink + "/" + stream }

// RunShipper delivers stored events to the sinks until ctx is done: after
// every local append (promptly) and every ShipInterval (events other
// replicas wrote). Progress is a persisted cursor per sink and stream, so a
// sink outage or a restart delays delivery but loses nothing. With several
// replicas one holds a lease and ships. It returns at once without sinks.
func (l *Log) RunShipper(ctx context.Context) error {
	if len(l.opts.Sinks) == 0 {
		return nil
	}
	t := time.NewTicker(l.opts.ShipInterval)
	defer t.Stop()
	for {
		if _, err := l.ShipOnce(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("audit: shipping round failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-l.notify:
		}
	}
}

// ShipOnce runs one shipping round and returns how many events it delivered.
func (l *Log) ShipOnce(ctx context.Context) (int, error) {
	if len(l.opts.Sinks) == 0 {
		l.m.backlog.Set(0)
		return 0, nil
	}
	held, err := l.takeLease(ctx)
	if err != nil || !held {
		return 0, err
	}
	streams, err := l.Streams(ctx)
	if err != nil {
		return 0, err
	}
	st := &l.ship
	var backlog int64
	shipped := 0
	var errs []error
	for i, sink := range l.opts.Sinks {
		name := l.sinkName(i)
		for _, s := range streams {
			// No resource, no diagnostic setting: the global stream
			// (sign-ins, unrouted requests) stays in keyhaven's own log.
			if s.Stream == GlobalStream {
				continue
			}
			n, left, err := l.shipStream(ctx, st, sink, name, s)
			shipped += n
			backlog += left
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	l.m.backlog.Set(float64(backlog))
	return shipped, errors.Join(errs...)
}

// shipStream delivers up to one batch of a stream to a sink and returns the
// number delivered and the number still waiting.
func (l *Log) shipStream(ctx context.Context, st *shipState, sink Sink, name string, s StreamInfo) (int, int64, error) {
	ck := cursorKey(name, s.Stream)
	cursor, err := l.readCursor(ctx, ck)
	if err != nil {
		return 0, 0, err
	}
	if cursor >= s.Seq {
		return 0, 0, nil
	}
	bkey := name + "/" + s.Stream
	now := l.clk.Now()
	st.mu.Lock()
	b := st.backoff[bkey]
	waiting := b != nil && now.Before(b.next)
	st.mu.Unlock()
	if waiting {
		return 0, s.Seq - cursor, nil
	}
	pfx := prefixEvents + s.Stream + "/"
	recs, err := l.st.List(ctx, pfx, store.ListOptions{After: eventKey(s.Stream, cursor), Limit: l.opts.ShipBatch})
	if err != nil {
		return 0, s.Seq - cursor, err
	}
	shipped := 0
	var shipErr error
	for _, rec := range recs {
		seq, err := strconv.ParseInt(strings.TrimPrefix(rec.Key, pfx), 10, 64)
		if err != nil || seq <= cursor {
			continue
		}
		var e Event
		_ = json.Unmarshal(rec.Value, &e)
		at := e.At()
		if at.IsZero() {
			at = now
		}
		rid := e.ResourceID
		if rid == "" {
			rid = s.ResourceID
		}
		if err := sink.Ship(ctx, rid, Category, rec.Value, at); err != nil {
			shipErr = fmt.Errorf("audit: sink %s, stream %s, event %d: %w", name, s.Stream, seq, err)
			break
		}
		cursor = seq
		shipped++
	}
	if shipped > 0 {
		if err := l.writeCursor(ctx, ck, cursor); err != nil {
			return shipped, s.Seq - cursor, err
		}
	}
	st.mu.Lock()
	if shipErr != nil {
		b := st.backoff[bkey]
		if b == nil {
			b = &backoff{}
			st.backoff[bkey] = b
		}
		b.failures++
		d := minBackoff << min(b.failures-1, 16)
		b.next = now.Add(min(d, maxBackoff))
		l.m.shipFailures.Inc()
	} else {
		delete(st.backoff, bkey)
	}
	st.mu.Unlock()
	return shipped, s.Seq - cursor, shipErr
}

func (l *Log) readCursor(ctx context.Context, key string) (int64, error) {
	rec, err := l.st.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(rec.Value), 10, 64)
}

func (l *Log) writeCursor(ctx context.Context, key string, seq int64) error {
	return l.st.Update(ctx, func(tx store.Tx) error {
		cur, err := l.readCursorTx(ctx, tx, key)
		if err != nil {
			return err
		}
		if cur >= seq {
			return nil // never move a cursor back
		}
		_, err = tx.Put(ctx, key, []byte(strconv.FormatInt(seq, 10)), store.Any)
		return err
	})
}

func (l *Log) readCursorTx(ctx context.Context, r store.Reader, key string) (int64, error) {
	rec, err := r.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(rec.Value), 10, 64)
}

type lease struct {
	Holder string `json:"holder"`
	Until  int64  `json:"until"` // unix nanoseconds
}

// takeLease makes this replica the shipper while nobody else holds an
// unexpired lease, and renews it while it does.
func (l *Log) takeLease(ctx context.Context) (bool, error) {
	held := false
	err := l.st.Update(ctx, func(tx store.Tx) error {
		held = false
		now := l.clk.Now()
		rec, err := tx.Get(ctx, leaseKey)
		ver := store.Absent
		if err == nil {
			var cur lease
			if json.Unmarshal(rec.Value, &cur) == nil && cur.Holder != l.opts.ReplicaID && now.UnixNano() < cur.Until {
				return nil
			}
			ver = rec.Version
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		d := max(3*l.opts.ShipInterval, minLease)
		b, _ := json.Marshal(lease{Holder: l.opts.ReplicaID, Until: now.Add(d).UnixNano()})
		if _, err := tx.Put(ctx, leaseKey, b, ver); err != nil {
			return err
		}
		held = true
		return nil
	})
	if errors.Is(err, store.ErrConflict) {
		return false, nil
	}
	return held, err
}
