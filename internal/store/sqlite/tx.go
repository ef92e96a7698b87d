package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

// errTxDone: a Reader or Tx was used after its View or Update returned.
var errTxDone = errors.New("sqlite: transaction already finished")

// blob converts a key to a non-nil []byte: the driver binds a nil slice as
// NULL and a string as TEXT, and only BLOBs compare byte-wise.
func blob(s string) []byte {
	if s == "" {
		return []byte{}
	}
	return []byte(s)
}

func get(ctx context.Context, run *runner, st *readStmts, key string) (store.Record, error) {
	if err := store.CheckKey(key); err != nil {
		return store.Record{}, err
	}
	rec := store.Record{Key: key}
	err := run.stmt(ctx, st.get).QueryRowContext(ctx, blob(key)).Scan(&rec.Value, &rec.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Record{}, store.ErrNotFound
	}
	if err != nil {
		return store.Record{}, fmt.Errorf("sqlite: get: %w", err)
	}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	return rec, nil
}

func list(ctx context.Context, run *runner, st *readStmts, prefix string, opts store.ListOptions) ([]store.Record, error) {
	if err := store.CheckList(prefix, opts); err != nil {
		return nil, err
	}
	v, args := 0, []any{blob(prefix)}
	if end, ok := store.PrefixEnd(prefix); ok {
		v |= listBounded
		args = append(args, blob(end))
	}
	if opts.After != "" {
		v |= listAfter
		args = append(args, blob(opts.After))
	}
	if opts.Reverse {
		v |= listReverse
	}
	limit := -1 // SQLite: no limit
	if opts.Limit > 0 {
		limit = opts.Limit
	}
	args = append(args, limit)
	rows, err := run.stmt(ctx, st.list[v]).QueryContext(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	defer rows.Close()
	var out []store.Record
	for rows.Next() {
		var k []byte
		var rec store.Record
		if err := rows.Scan(&k, &rec.Value, &rec.Version); err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", err)
		}
		rec.Key = string(k)
		if rec.Value == nil {
			rec.Value = []byte{}
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return out, nil
}

// reader is the store.Reader handed to View (and embedded in writer).
type reader struct {
	run  *runner
	st   *readStmts
	done bool
}

func (r *reader) Get(ctx context.Context, key string) (store.Record, error) {
	if r.done {
		return store.Record{}, errTxDone
	}
	return get(ctx, r.run, r.st, key)
}

func (r *reader) List(ctx context.Context, prefix string, opts store.ListOptions) ([]store.Record, error) {
	if r.done {
		return nil, errTxDone
	}
	return list(ctx, r.run, r.st, prefix, opts)
}

// writer is the store.Tx handed to Update.
type writer struct {
	reader
	ws  *writeStmts
	now func() time.Time
	rev int64 // this transaction's revision, 0 until the first Put
}

// revision allocates the transaction's revision on first use. The writer
// holds SQLite's write lock, so read-increment cannot race.
func (w *writer) revision(ctx context.Context) (int64, error) {
	if w.rev != 0 {
		return w.rev, nil
	}
	var rev int64
	err := w.run.stmt(ctx, w.ws.revision).QueryRowContext(ctx).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("sqlite: allocate revision: %w", err)
	}
	w.rev = rev
	return rev, nil
}

func (w *writer) Put(ctx context.Context, key string, value []byte, ifVersion int64) (int64, error) {
	if w.done {
		return 0, errTxDone
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
	now := w.now().UnixMilli()
	var res sql.Result
	switch {
	case ifVersion == store.Any:
		res, err = w.run.stmt(ctx, w.ws.putAny).ExecContext(ctx, blob(key), val, rev, now)
	case ifVersion == store.Absent:
		res, err = w.run.stmt(ctx, w.ws.putAbsent).ExecContext(ctx, blob(key), val, rev, now)
	default:
		res, err = w.run.stmt(ctx, w.ws.putVersion).ExecContext(ctx, val, rev, now, blob(key), ifVersion)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: put: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: put: %w", err)
	}
	if err := store.PutOutcome(n); err != nil {
		return 0, err
	}
	return rev, nil
}

func (w *writer) Delete(ctx context.Context, key string, ifVersion int64) error {
	if w.done {
		return errTxDone
	}
	if err := store.CheckDelete(key, ifVersion); err != nil {
		return err
	}
	var res sql.Result
	var err error
	if ifVersion == store.Any {
		res, err = w.run.stmt(ctx, w.ws.delAny).ExecContext(ctx, blob(key))
	} else {
		res, err = w.run.stmt(ctx, w.ws.delVersion).ExecContext(ctx, blob(key), ifVersion)
	}
	if err != nil {
		return fmt.Errorf("sqlite: delete: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: delete: %w", err)
	}
	return store.DeleteOutcome(ifVersion, n)
}
