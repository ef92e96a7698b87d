package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"

	"modernc.org/sqlite" // also registers driver "sqlite"
)

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	w     *sql.DB // exactly one connection: the writer
	r     *sql.DB // query-only readers
	ws    writeStmts
	rs    readStmts
	stmts []*sql.Stmt // every prepared statement, closed with the pools
	clock clock.Clock
}

var _ store.Store = (*Store)(nil)

type config struct {
	busyTimeout time.Duration
	maxReaders  int
	clock       clock.Clock
}

// Option configures Open.
type Option func(*config)

// WithBusyTimeout sets how long a connection waits for a lock held by another
// process sharing the file before failing (default 10s).
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) { c.busyTimeout = d }
}

// WithMaxReaders caps the read connection pool (default max(4, GOMAXPROCS)).
func WithMaxReaders(n int) Option {
	return func(c *config) { c.maxReaders = n }
}

// WithClock sets the clock used for the updated_at column (default wall clock).
func WithClock(c clock.Clock) Option {
	return func(cfg *config) { cfg.clock = c }
}

// Open opens (creating if needed) the database file at path and migrates its
// schema to the latest version this binary knows.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{
		busyTimeout: 10 * time.Second,
		maxReaders:  max(4, runtime.GOMAXPROCS(0)),
		clock:       clock.Real{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		// The driver splits the DSN at '?' and SQLite treats "file:" names
		// as URIs; refuse rather than open some other file.
		return nil, fmt.Errorf("sqlite: unsupported database path %q", path)
	}
	if cfg.maxReaders < 1 || cfg.busyTimeout < 0 {
		return nil, errors.New("sqlite: invalid options")
	}

	w, err := sql.Open("sqlite", dsn(path, cfg.busyTimeout, "immediate", false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	// One writer connection: database/sql queues Updates on it, and BEGIN
	// IMMEDIATE serializes against other processes.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := ping(ctx, w, cfg.busyTimeout); err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, w, 0, cfg.clock); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite", dsn(path, cfg.busyTimeout, "deferred", true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(cfg.maxReaders)
	r.SetMaxIdleConns(cfg.maxReaders)
	if err := ping(ctx, r, cfg.busyTimeout); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	s := &Store{w: w, r: r, clock: cfg.clock}
	// Prepared after migrating, so they compile against the final schema
	// (SQLite recompiles a prepared statement itself if the schema changes
	// later, e.g. a newer binary migrating the shared file).
	ws, wall, err := prepareWrite(ctx, w)
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	rs, rall, err := prepareRead(ctx, r)
	if err != nil {
		closeStmts(wall) //nolint:errcheck // already failing
		r.Close()
		w.Close()
		return nil, err
	}
	s.ws, s.rs, s.stmts = ws, rs, append(wall, rall...)
	return s, nil
}

// ping opens db's first connection, retrying while the file is locked until
// timeout: a new connection's switch to WAL takes SQLITE_BUSY at once,
// without the busy handler, while another connection (or process) is
// creating or opening the same file.
func ping(ctx context.Context, db *sql.DB, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		err := db.PingContext(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// isBusy reports SQLITE_BUSY or SQLITE_LOCKED (any extended code).
func isBusy(err error) bool {
	const busy, locked = 5, 6
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == busy || c == locked
}

func dsn(path string, busy time.Duration, txlock string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "journal_mode(WAL)")
	// FULL: the WAL is fsynced on every commit, so an acknowledged Update
	// survives power loss, not only a process crash.
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(ON)")
	if readOnly {
		q.Add("_pragma", "query_only(ON)")
	}
	q.Set("_txlock", txlock)
	return path + "?" + q.Encode()
}

// Close closes both pools. Pending transactions fail.
func (s *Store) Close() error {
	return errors.Join(closeStmts(s.stmts), s.r.Close(), s.w.Close())
}

// Get reads one record outside any transaction.
func (s *Store) Get(ctx context.Context, key string) (store.Record, error) {
	return get(ctx, &runner{}, &s.rs, key)
}

// List lists records outside any transaction; the single statement sees one
// snapshot.
func (s *Store) List(ctx context.Context, prefix string, opts store.ListOptions) ([]store.Record, error) {
	return list(ctx, &runner{}, &s.rs, prefix, opts)
}

// View runs fn in a read transaction on one WAL snapshot.
func (s *Store) View(ctx context.Context, fn func(r store.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("sqlite: begin view: %w", err)
	}
	defer t.Rollback() //nolint:errcheck // read-only; nothing to lose
	// A deferred transaction takes its snapshot at the first read; read now
	// so the snapshot is the state when View started, not when fn first reads.
	v := &reader{run: &runner{tx: t}, st: &s.rs}
	var rev int64
	if err := v.run.stmt(ctx, s.rs.snapshot).QueryRowContext(ctx).Scan(&rev); err != nil {
		return fmt.Errorf("sqlite: begin view: %w", err)
	}
	defer func() { v.done = true }()
	return fn(v)
}

// Update runs fn in one BEGIN IMMEDIATE transaction on the writer
// connection. SQLite serializes writers, so fn never needs re-running.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	committed := false
	w := &writer{reader: reader{run: &runner{tx: t}, st: &s.ws.readStmts}, ws: &s.ws, now: s.clock.Now}
	defer func() {
		w.done = true
		if !committed {
			_ = t.Rollback()
		}
	}()
	if err := fn(w); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	committed = true
	return nil
}
