package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Store is a store.Store backed by a PostgreSQL database.
type Store struct {
	pool        *pgxpool.Pool
	clock       clock.Clock
	maxAttempts int
}

var _ store.Store = (*Store)(nil)

type config struct {
	schema        string
	maxConns      int32
	maxAttempts   int
	clock         clock.Clock
	targetVersion int // 0 = latest; tests set it to build old databases
}

// Option configures Open.
type Option func(*config)

// WithSchema keeps all of the store's tables in the named schema, creating
// it if needed (it becomes the connections' search_path). Names are limited
// to lower-case letters, digits and '_' so they need no quoting games.
func WithSchema(name string) Option {
	return func(c *config) { c.schema = name }
}

// WithMaxConns caps the connection pool (default max(4, GOMAXPROCS)).
func WithMaxConns(n int32) Option {
	return func(c *config) { c.maxConns = n }
}

// WithMaxAttempts bounds how often Update runs fn when PostgreSQL aborts the
// transaction with a serialization failure or deadlock (default 30).
func WithMaxAttempts(n int) Option {
	return func(c *config) { c.maxAttempts = n }
}

// WithClock sets the clock used for the updated_at column (default wall clock).
func WithClock(c clock.Clock) Option {
	return func(cfg *config) { cfg.clock = c }
}

// withTargetVersion stops migrating at version v; tests use it to create a
// database as an older binary would have left it.
func withTargetVersion(v int) Option {
	return func(c *config) { c.targetVersion = v }
}

var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Open connects to dsn (a libpq URL or key=value string) and migrates the
// schema to the latest version this binary knows.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg := config{
		maxConns:    int32(max(4, runtime.GOMAXPROCS(0))),
		maxAttempts: 30,
		clock:       clock.Real{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.schema != "" && !schemaName.MatchString(cfg.schema) {
		return nil, fmt.Errorf("postgres: invalid schema name %q", cfg.schema)
	}
	if cfg.maxConns < 1 || cfg.maxAttempts < 1 {
		return nil, errors.New("postgres: invalid options")
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx redacts the password in parse errors; never echo dsn ourselves.
		return nil, fmt.Errorf("postgres: parse DSN: %w", err)
	}
	pcfg.MaxConns = cfg.maxConns
	if cfg.schema != "" {
		pcfg.ConnConfig.RuntimeParams["search_path"] = pgx.Identifier{cfg.schema}.Sanitize()
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	if err := migrate(ctx, pool, cfg.schema, cfg.targetVersion, cfg.clock); err != nil {
		pool.Close()
		return nil, err
	}
	return &Store{pool: pool, clock: cfg.clock, maxAttempts: cfg.maxAttempts}, nil
}

// Close closes the pool, waiting for acquired connections to be released.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Get reads one record outside any transaction.
func (s *Store) Get(ctx context.Context, key string) (store.Record, error) {
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	return get(ctx, s.pool, key)
}

// List lists records in one statement, hence one snapshot.
func (s *Store) List(ctx context.Context, prefix string, opts store.ListOptions) ([]store.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return list(ctx, s.pool, prefix, opts)
}

// View runs fn in a REPEATABLE READ, READ ONLY transaction: one snapshot,
// and PostgreSQL never aborts such a transaction for serialization.
func (s *Store) View(ctx context.Context, fn func(r store.Reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return fmt.Errorf("postgres: begin view: %w", err)
	}
	defer t.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	// The snapshot is taken by the first statement; take it now so it is the
	// state when View started.
	if _, err := t.Exec(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("postgres: begin view: %w", err)
	}
	r := &reader{q: t}
	defer func() { r.done = true }()
	return fn(r)
}

// Update runs fn in a SERIALIZABLE transaction, re-running it after
// serialization failures and deadlocks.
func (s *Store) Update(ctx context.Context, fn func(tx store.Tx) error) error {
	var last error
	for attempt := range s.maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return err
			}
		}
		err := s.updateOnce(ctx, fn)
		if !retryable(err) {
			return err
		}
		last = err
	}
	return fmt.Errorf("postgres: transaction not committed after %d attempts: %w", s.maxAttempts, last)
}

// errRetry marks an attempt whose transaction PostgreSQL aborted; it wraps
// the server's error so retryable can see the SQLSTATE.
type errRetry struct{ err error }

func (e errRetry) Error() string { return e.err.Error() }
func (e errRetry) Unwrap() error { return e.err }

func (s *Store) updateOnce(ctx context.Context, fn func(tx store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pt, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	w := &writer{reader: reader{q: pt}, now: s.clock.Now}
	committed := false
	defer func() {
		w.done = true
		if !committed {
			// Roll back even if ctx is cancelled, so the connection returns
			// to the pool clean.
			_ = pt.Rollback(context.WithoutCancel(ctx))
		}
	}()
	ferr := fn(w)
	// A statement that hit a serialization failure aborted the transaction;
	// whatever fn made of that error, the attempt must be re-run.
	if w.aborted != nil {
		return errRetry{w.aborted}
	}
	if ferr != nil {
		if retryable(ferr) {
			return errRetry{ferr}
		}
		return ferr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := pt.Commit(ctx); err != nil {
		if retryable(err) {
			return errRetry{err}
		}
		return fmt.Errorf("postgres: commit: %w", err)
	}
	committed = true
	return nil
}

// retryable reports SQLSTATE 40001 (serialization_failure) and 40P01
// (deadlock_detected): PostgreSQL rolled the transaction back and running
// it again may succeed.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return false
}

// backoff sleeps a jittered, exponentially growing delay (capped) so that
// contending transactions spread out instead of colliding again.
func backoff(ctx context.Context, attempt int) error {
	ceiling := time.Millisecond << min(attempt, 6) // 2ms .. 64ms
	d := time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
