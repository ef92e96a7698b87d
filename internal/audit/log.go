package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Store keys.
const (
	prefix        = "audit/"
	prefixHeads   = "audit/heads/"
	prefixEvents  = "audit/events/"
	prefixSTime   = "audit/stime/"
	prefixTime    = "audit/time/"
	prefixCursors = "audit/cursors/"
	leaseKey      = "audit/lease/shipper"
)

func headKey(stream string) string { return prefixHeads + stream }
func eventKey(stream string, seq int64) string {
	return fmt.Sprintf("%s%s/%020d", prefixEvents, stream, seq)
}
func streamTimeKey(stream string, ns, seq int64) string {
	return fmt.Sprintf("%s%s/%020d-%020d", prefixSTime, stream, ns, seq)
}
func timeKey(stream string, ns, seq int64) string {
	return fmt.Sprintf("%s%020d-%s-%020d", prefixTime, ns, stream, seq)
}

// Defaults.
const (
	DefaultMaxBufferBytes = 4 << 20
	DefaultShipInterval   = 2 * time.Second
	DefaultShipBatch      = 500
	appendAttempts        = 8
	appendTimeout         = 15 * time.Second
)

// Options configure a Log.
type Options struct {
	// Key is the HMAC key (see LoadOrCreateKey), at least MinKeySize bytes.
	Key []byte
	// FailOpen serves the response even when its event cannot be written,
	// counting keyhaven_audit_fail_open_total and logging a warning. The
	// default (false) answers 500 instead: no response without a record.
	FailOpen bool
	// Sinks receive every event after it is stored (diagnostic settings).
	// A sink's cursor is keyed by its SinkName (see Namer), else its index.
	Sinks []Sink
	// Logger receives warnings; never event contents beyond ids.
	Logger *slog.Logger
	// Auditable selects the requests that get an event; nil means
	// DefaultAuditable.
	Auditable func(*http.Request) bool
	// MaxBufferBytes bounds the response body held back until the event is
	// written (DefaultMaxBufferBytes when 0). A larger response has its event
	// written when it crosses the bound, then streams.
	MaxBufferBytes int
	// APIAudience is the token audience Handler accepts (the ARM audience,
	// i.e. the base URL). Handler refuses every call while it is empty.
	APIAudience string
	// ShipInterval is how often the shipper looks for new events written by
	// other replicas (DefaultShipInterval when 0); local appends wake it.
	ShipInterval time.Duration
	// ShipBatch caps the events one stream ships per round.
	ShipBatch int
	// ReplicaID names this process for the shipper lease (random when empty).
	ReplicaID string
	// MaxBatch caps the events one transaction writes (DefaultMaxBatch
	// when 0, at most 4096).
	MaxBatch int
	// BatchWindow is how long the committer may hold a follow-up batch
	// open for more events once MaxBatch is not reached (at most 100ms).
	// 0 (the default) adds no wait: events that arrive while a transaction
	// is in flight form the next batch. A lone request never waits.
	BatchWindow time.Duration
}

// Log is the audit log of one deployment.
type Log struct {
	st     store.Store
	clk    clock.Clock
	key    []byte
	opts   Options
	log    *slog.Logger
	notify chan struct{}
	m      metrics
	ship   shipState
	gc     groupCommit
}

// String never shows the key.
func (l *Log) String() string { return "audit.Log" }

// GoString never shows the key.
func (l *Log) GoString() string { return "audit.Log" }

type metrics struct {
	writeLatency  prometheus.Histogram
	writeFailures prometheus.Counter
	failOpen      prometheus.Counter
	events        prometheus.Counter
	backlog       prometheus.Gauge
	shipFailures  prometheus.Counter
	batchSize     prometheus.Histogram
}

// New returns the audit log over st.
func New(st store.Store, clk clock.Clock, opts Options) (*Log, error) {
	if st == nil || clk == nil {
		return nil, errors.New("audit: a store and a clock are required")
	}
	if len(opts.Key) < MinKeySize {
		return nil, fmt.Errorf("audit: the HMAC key must be at least %d bytes", MinKeySize)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Auditable == nil {
		opts.Auditable = DefaultAuditable
	}
	if opts.MaxBufferBytes <= 0 {
		opts.MaxBufferBytes = DefaultMaxBufferBytes
	}
	if opts.ShipInterval <= 0 {
		opts.ShipInterval = DefaultShipInterval
	}
	if opts.ShipBatch <= 0 {
		opts.ShipBatch = DefaultShipBatch
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	opts.MaxBatch = min(opts.MaxBatch, maxMaxBatch)
	opts.BatchWindow = min(max(opts.BatchWindow, 0), maxBatchWindow)
	if opts.ReplicaID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		opts.ReplicaID = hex.EncodeToString(b)
	}
	key := append([]byte(nil), opts.Key...)
	opts.Key = nil
	l := &Log{st: st, clk: clk, key: key, opts: opts, log: opts.Logger, notify: make(chan struct{}, 1),
		ship: shipState{backoff: map[string]*backoff{}}, gc: groupCommit{full: make(chan struct{}, 1)}}
	l.m = metrics{
		writeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyhaven_audit_write_duration_seconds",
			Help:    "Time to append one audit event durably (waiting for its group commit included).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
		writeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhaven_audit_write_failures_total",
			Help: "Audit events that could not be written.",
		}),
		failOpen: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhaven_audit_fail_open_total",
			Help: "Responses served without an audit event because the log is configured to fail open.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhaven_audit_events_total",
			Help: "Audit events written.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keyhaven_audit_backlog_events",
			Help: "Audit events written but not yet delivered to every sink (as of the last shipper round).",
		}),
		shipFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keyhaven_audit_ship_failures_total",
			Help: "Failed attempts to deliver audit events to a sink.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "keyhaven_audit_batch_events",
			Help:    "Audit events per group-commit transaction.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096},
		}),
	}
	return l, nil
}

// Collectors are the log's Prometheus series, for the server's registry.
func (l *Log) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.m.writeLatency, l.m.writeFailures, l.m.failOpen, l.m.events, l.m.backlog, l.m.shipFailures, l.m.batchSize}
}

// head is the last event of a stream.
type head struct {
	Seq        int64  `json:"seq"`
	Hash       string `json:"hash"`
	ResourceID string `json:"resourceId"`
}

func readHead(ctx context.Context, r store.Reader, stream string) (head, int64, error) {
	rec, err := r.Get(ctx, headKey(stream))
	if errors.Is(err, store.ErrNotFound) {
		return head{}, store.Absent, nil
	}
	if err != nil {
		return head{}, 0, err
	}
	var h head
	if err := json.Unmarshal(rec.Value, &h); err != nil {
		return head{}, 0, fmt.Errorf("audit: stream head %s is corrupt: %w", stream, err)
	}
	return h, rec.Version, nil
}

// Append chains e onto its stream and stores it durably, returning it with
// seq, prevHash and hash set. Concurrent appends share one transaction
// (group commit, see commit.go); Append returns only after the transaction
// holding e committed, or with the error that failed it. Each head record is
// updated with a version precondition in that transaction, so concurrent
// appends from another replica never fork a chain: a loser retries its
// whole batch on the new heads.
func (l *Log) Append(ctx context.Context, e Event) (Event, error) {
	start := time.Now()
	p, err := l.prepare(e)
	var out Event
	if err == nil {
		out, err = l.submit(ctx, p)
	}
	l.m.writeLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		l.m.writeFailures.Inc()
		return Event{}, err
	}
	l.m.events.Inc()
	return out, nil
}
