package e2e

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // the driver behind database/sql "sqlite"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// rawStore reads and rewrites a stopped server's store directly, as someone
// with access to the database file or tables (but not to the root key, the
// audit key or the server) could. Both backends keep one table kv(key,
// value, version).
type rawStore struct {
	table string
	ph    func(i int) string // the i-th (1-based) placeholder
	exec  func(q string, args ...any) (int64, error)
	col   func(q string, args ...any) ([][]byte, error) // first column of every row
}

// openRaw opens the store the server with opts and data directory dataDir
// used; the server must be stopped.
func openRaw(t *testing.T, opts khtest.Options, dataDir string) *rawStore {
	t.Helper()
	if opts.Store == "" {
		db, err := sql.Open("sqlite", filepath.Join(dataDir, "keyhaven.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return &rawStore{
			table: "kv",
			ph:    func(int) string { return "?" },
			exec: func(q string, args ...any) (int64, error) {
				res, err := db.Exec(q, args...)
				if err != nil {
					return 0, err
				}
				return res.RowsAffected()
			},
			col: func(q string, args ...any) ([][]byte, error) {
				rows, err := db.Query(q, args...)
				if err != nil {
					return nil, err
				}
				defer rows.Close()
				return firstColumn(rows)
			},
		}
	}
	schema := ""
	for i, a := range opts.Args {
		if a == "--store-schema" && i+1 < len(opts.Args) {
			schema = opts.Args[i+1]
		}
	}
	if schema == "" {
		t.Fatal("postgres options name no --store-schema")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, opts.Store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return &rawStore{
		table: pgx.Identifier{schema, "kv"}.Sanitize(),
		ph:    func(i int) string { return "$" + strconv.Itoa(i) },
		exec: func(q string, args ...any) (int64, error) {
			tag, err := conn.Exec(ctx, q, args...)
			return tag.RowsAffected(), err
		},
		col: func(q string, args ...any) ([][]byte, error) {
			rows, err := conn.Query(ctx, q, args...)
			if err != nil {
				return nil, err
			}
			defer rows.Close()
			return firstColumn(rows)
		},
	}
}

// firstColumn reads the first column of every row (database/sql and pgx
// rows alike).
func firstColumn(rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}) ([][]byte, error) {
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// keys lists the keys starting with prefix ("" for all), in key order.
func (r *rawStore) keys(t *testing.T, prefix string) []string {
	t.Helper()
	rows, err := r.col("SELECT key FROM "+r.table+" WHERE key >= "+r.ph(1)+" ORDER BY key", []byte(prefix))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range rows {
		if !strings.HasPrefix(string(k), prefix) {
			break
		}
		out = append(out, string(k))
	}
	return out
}

func (r *rawStore) get(t *testing.T, key string) []byte {
	t.Helper()
	rows, err := r.col("SELECT value FROM "+r.table+" WHERE key = "+r.ph(1), []byte(key))
	if err != nil || len(rows) != 1 {
		t.Fatalf("read %s: %v (%d rows)", key, err, len(rows))
	}
	return rows[0]
}

// put overwrites an existing record.
func (r *rawStore) put(t *testing.T, key string, value []byte) {
	t.Helper()
	r.mustChangeOne(t, "write "+key, "UPDATE "+r.table+" SET value = "+r.ph(1)+" WHERE key = "+r.ph(2), value, []byte(key))
}

// insert adds a record, at the store's current revision.
func (r *rawStore) insert(t *testing.T, key string, value []byte) {
	t.Helper()
	if value == nil {
		value = []byte{} // an empty value, not NULL (the column is NOT NULL)
	}
	r.mustChangeOne(t, "insert "+key, "INSERT INTO "+r.table+" (key, value, version) SELECT "+r.ph(1)+", "+r.ph(2)+", MAX(version) FROM "+r.table,
		[]byte(key), value)
}

func (r *rawStore) del(t *testing.T, key string) {
	t.Helper()
	r.mustChangeOne(t, "delete "+key, "DELETE FROM "+r.table+" WHERE key = "+r.ph(1), []byte(key))
}

func (r *rawStore) mustChangeOne(t *testing.T, what, q string, args ...any) {
	t.Helper()
	if n, err := r.exec(q, args...); err != nil || n != 1 {
		t.Fatalf("%s: %v (%d rows)", what, err, n)
	}
}
