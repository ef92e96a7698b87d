package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Every statement the store runs after Open is one of the texts below,
// prepared once on each pool at Open. database/sql keeps one prepared driver
// statement per connection, and the driver keeps the compiled SQLite
// statement between executions (reset, not finalized), so a Put costs a bind
// and a step instead of parsing and planning its SQL every time.
const (
	qGet      = `SELECT value, version FROM kv WHERE key = ?`
	qSnapshot = `SELECT value FROM meta WHERE name = 'revision'`
	qRevision = `UPDATE meta SET value = value + 1 WHERE name = 'revision' RETURNING value`
	qPutAny   = `INSERT INTO kv (key, value, version, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, version = excluded.version, updated_at = excluded.updated_at`
	qPutAbsent = `INSERT INTO kv (key, value, version, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO NOTHING`
	qPutVersion = `UPDATE kv SET value = ?, version = ?, updated_at = ? WHERE key = ? AND version = ?`
	qDelAny     = `DELETE FROM kv WHERE key = ?`
	qDelVersion = `DELETE FROM kv WHERE key = ? AND version = ?`
)

// List statement variants, indexed by listVariant's bits.
const (
	listBounded = 1 << iota // the prefix has an end: AND key < end
	listAfter               // opts.After is set
	listReverse             // opts.Reverse
	listVariants
)

// listQuery is the text of one List variant. Its parameters are, in order:
// prefix, end (if listBounded), after (if listAfter), and the limit (-1 for
// none, which SQLite reads as no limit).
func listQuery(v int) string {
	q := `SELECT key, value, version FROM kv WHERE key >= ?`
	if v&listBounded != 0 {
		q += ` AND key < ?`
	}
	switch {
	case v&listAfter != 0 && v&listReverse != 0:
		q += ` AND key < ?`
	case v&listAfter != 0:
		q += ` AND key > ?`
	}
	if v&listReverse != 0 {
		q += ` ORDER BY key DESC`
	} else {
		q += ` ORDER BY key`
	}
	return q + ` LIMIT ?`
}

// readStmts are the statements a read-only connection runs.
type readStmts struct {
	get      *sql.Stmt
	snapshot *sql.Stmt
	list     [listVariants]*sql.Stmt
}

// writeStmts are the statements Update runs on the writer connection.
type writeStmts struct {
	readStmts
	revision   *sql.Stmt
	putAny     *sql.Stmt
	putAbsent  *sql.Stmt
	putVersion *sql.Stmt
	delAny     *sql.Stmt
	delVersion *sql.Stmt
}

// preparer prepares statements on one pool, remembering them for closeAll.
type preparer struct {
	db   *sql.DB
	all  []*sql.Stmt
	errs []error
}

func (p *preparer) prepare(ctx context.Context, query string) *sql.Stmt {
	s, err := p.db.PrepareContext(ctx, query)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("sqlite: prepare %q: %w", query, err))
		return nil
	}
	p.all = append(p.all, s)
	return s
}

func (p *preparer) readStmts(ctx context.Context) readStmts {
	r := readStmts{get: p.prepare(ctx, qGet), snapshot: p.prepare(ctx, qSnapshot)}
	for v := range r.list {
		r.list[v] = p.prepare(ctx, listQuery(v))
	}
	return r
}

// done returns the statements to close with the pool, or closes them and
// returns the first preparation error.
func (p *preparer) done() ([]*sql.Stmt, error) {
	if len(p.errs) > 0 {
		return nil, errors.Join(append(p.errs, closeStmts(p.all))...)
	}
	return p.all, nil
}

func prepareRead(ctx context.Context, db *sql.DB) (readStmts, []*sql.Stmt, error) {
	p := &preparer{db: db}
	r := p.readStmts(ctx)
	all, err := p.done()
	return r, all, err
}

func prepareWrite(ctx context.Context, db *sql.DB) (writeStmts, []*sql.Stmt, error) {
	p := &preparer{db: db}
	w := writeStmts{
		readStmts:  p.readStmts(ctx),
		revision:   p.prepare(ctx, qRevision),
		putAny:     p.prepare(ctx, qPutAny),
		putAbsent:  p.prepare(ctx, qPutAbsent),
		putVersion: p.prepare(ctx, qPutVersion),
		delAny:     p.prepare(ctx, qDelAny),
		delVersion: p.prepare(ctx, qDelVersion),
	}
	all, err := p.done()
	return w, all, err
}

func closeStmts(ss []*sql.Stmt) error {
	var errs []error
	for _, s := range ss {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// runner runs the pool's prepared statements either directly on the pool
// (tx nil: each call takes any connection, where database/sql prepares the
// statement once if it has not yet) or inside one transaction, binding each
// statement to it on first use.
type runner struct {
	tx    *sql.Tx
	mu    sync.Mutex
	bound map[*sql.Stmt]*sql.Stmt
}

func (r *runner) stmt(ctx context.Context, s *sql.Stmt) *sql.Stmt {
	if r.tx == nil {
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.bound[s]; ok {
		return b
	}
	// The statement is already prepared on the transaction's connection, so
	// binding it prepares nothing. A failure (the context ended) is kept in
	// the returned Stmt and reported when it runs; it is not remembered, so
	// a later call with a live context binds again.
	b := r.tx.StmtContext(ctx, s)
	if ctx.Err() == nil {
		if r.bound == nil {
			r.bound = make(map[*sql.Stmt]*sql.Stmt)
		}
		r.bound[s] = b
	}
	return b
}
