package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/keyhaven/keyhaven/internal/store"
)

// querier is what *pgxpool.Pool and pgx.Tx share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// errTxDone: a Reader or Tx was used after its View or Update returned.
var errTxDone = errors.New("postgres: transaction already finished")

// blob converts a key to a non-nil []byte: pgx sends a nil slice as NULL.
func blob(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return []byte(s)
}

func get(ctx context.Context, q querier, key string) (store.Record, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Record{}, err
	}
	rec := store.Record{Key: key}
	err := q.QueryRow(ctx, `SELECT value, version FROM kv WHERE key = $1`, blob(key)).Scan(&rec.Value, &rec.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("postgres: get: %w", err)
	}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	return rec, nil
}

func list(ctx context.Context, q querier, prefix string, opts store.ListOptions) ([]store.Record, error) {
	if err := store.CheckList(prefix, opts); err != nil {
		return nil, err
	}
	var b strings.Builder
	args := []any{blob(prefix)}
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	b.WriteString(`SELECT key, value, version FROM kv WHERE key >= $1`)
	if end, ok := store.PrefixEnd(prefix); ok {
		b.WriteString(` AND key < ` + arg(blob(end)))
	}
	if opts.After != "" {
		if opts.Reverse {
			b.WriteString(` AND key < ` + arg(blob(opts.After)))
		} else {
			b.WriteString(` AND key > ` + arg(blob(opts.After)))
		}
	}
	if opts.Reverse {
		b.WriteString(` ORDER BY key DESC`)
	} else {
		b.WriteString(` ORDER BY key`)
	}
	if opts.Limit > 0 {
		b.WriteString(` LIMIT ` + arg(int64(opts.Limit)))
	}
	rows, err := q.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		var k []byte
		var rec store.Record
		if err := rows.Scan(&k, &rec.Value, &rec.Version); err != nil {
			return nil, fmt.Errorf("postgres: list: %w", err)
		}
		rec.Key = string(k)
		if rec.Value == nil {
			rec.Value = []byte{}
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	return out, nil
}

// reader is the store.Reader handed to View (and embedded in writer).
type reader struct {
	q       querier
	done    bool
	aborted error // first serialization failure/deadlock seen by a statement
}

// note remembers an error that aborted the transaction, so Update re-runs
// fn even if fn swallowed the error.
func (r *reader) note(err error) error {
	if err != nil && r.aborted == nil && retryable(err) {
		r.aborted = err
	}
	return err
}

func (r *reader) Get(ctx context.Context, key string) (store.Record, error) {
	if r.done {
		return store.Record{}, errTxDone
	}
	if err := ctx.Err(); err != nil {
		return store.Record{}, err
	}
	rec, err := get(ctx, r.q, key)
	return rec, r.note(err)
}

func (r *reader) List(ctx context.Context, prefix string, opts store.ListOptions) ([]store.Record, error) {
	if r.done {
		return nil, errTxDone
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs, err := list(ctx, r.q, prefix, opts)
	return recs, r.note(err)
}

// writer is the store.Tx handed to Update.
type writer struct {
	reader
	now func() time.Time
	rev int64 // this transaction's revision, 0 until the first Put
}

func (w *writer) revision(ctx context.Context) (int64, error) {
	if w.rev != 0 {
		return w.rev, nil
	}
	var rev int64
	if err := w.q.QueryRow(ctx, `SELECT nextval('revision_seq')`).Scan(&rev); err != nil {
		return 0, w.note(fmt.Errorf("postgres: allocate revision: %w", err))
	}
	w.rev = rev
	return rev, nil
}

func (w *writer) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if w.done {
		return 0, errTxDone
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := store.CheckPut(key, value, ifVersion); err != nil {
		return 0, err
	}
	rev, err := w.revision(ctx)
	if err != nil {
		return 0, err
	}
	val := value
	if val == nil {
		val = []byte{} // NOT NULL column; nil means empty here
	}
	now := w.now()
	var tag pgconn.CommandTag
	switch {
	case ifVersion == store.Any:
		// ON CONFLICT makes the upsert atomic; under SERIALIZABLE a conflict
		// with a row this snapshot cannot see aborts with 40001 (retried).
		tag, err = w.q.Exec(ctx, `INSERT INTO kv (key, value, version, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at`,
			blob(key), val, rev, now)
	case ifVersion == store.Absent:
		tag, err = w.q.Exec(ctx, `INSERT INTO kv (key, value, version, updated_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key) DO NOTHING`, blob(key), val, rev, now)
	default:
		tag, err = w.q.Exec(ctx, `UPDATE kv SET value = $1, version = $2, updated_at = $3 WHERE key = $4 AND version = $5`,
			val, rev, now, blob(key), ifVersion)
	}
	if err != nil {
		return 0, w.note(fmt.Errorf("postgres: put: %w", err))
	}
	if err := store.PutOutcome(tag.RowsAffected()); err != nil {
		return 0, err
	}
	return rev, nil
}

func (w *writer) Delete(ctx context.Context, key string, ifVersion int64) error {
	if w.done {
		return errTxDone
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := store.CheckDelete(key, ifVersion); err != nil {
		return err
	}
	query, args := `DELETE FROM kv WHERE key = $1`, []any{blob(key)}
	if ifVersion != store.Any {
		query += ` AND version = $2`
		args = append(args, ifVersion)
	}
	tag, err := w.q.Exec(ctx, query, args...)
	if err != nil {
		return w.note(fmt.Errorf("postgres: delete: %w", err))
	}
	return store.DeleteOutcome(ifVersion, tag.RowsAffected())
}
