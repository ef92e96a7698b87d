package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/storetest"
)

func openTemp(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "keyhaven.db"), opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// fresh makes a new database file and returns an opener for it.
func fresh(t *testing.T) func() store.Store {
	path := filepath.Join(t.TempDir(), "keyhaven.db")
	return func() store.Store {
		s, err := Open(context.Background(), path)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
}

func TestPersistence(t *testing.T) { storetest.RunPersistence(t, fresh) }

// TestShared: two Stores on one file stand in for two processes.
func TestShared(t *testing.T) { storetest.RunShared(t, fresh) }

func TestOpen(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		path string
		ok   bool
	}{
		{name: "ok/plain-path", path: filepath.Join(t.TempDir(), "a.db"), ok: true},
		{name: "ok/path-with-spaces-and-percent", path: filepath.Join(t.TempDir(), "my data %20.db"), ok: true},
		{name: "fail/empty", path: ""},
		{name: "fail/question-mark", path: filepath.Join(t.TempDir(), "a?mode=memory")},
		{name: "fail/uri", path: "file:x.db"},
		{name: "fail/missing-dir", path: filepath.Join(t.TempDir(), "no", "such", "dir", "a.db")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(ctx, c.path)
			if c.ok != (err == nil) {
				t.Fatalf("open %q: err %v, want ok=%v", c.path, err, c.ok)
			}
			if err == nil {
				s.Close()
			}
		})
	}
}

func TestPragmas(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	for _, db := range []struct {
		name string
		q    *sql.DB
	}{{"writer", s.w}, {"reader", s.r}} {
		var mode string
		var sync, fk int
		if err := db.q.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := db.q.QueryRowContext(ctx, `PRAGMA synchronous`).Scan(&sync); err != nil {
			t.Fatal(err)
		}
		if err := db.q.QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || sync != 2 || fk != 1 {
			t.Fatalf("%s: journal_mode=%s synchronous=%d foreign_keys=%d, want wal 2 (FULL) 1", db.name, mode, sync, fk)
		}
	}
	if _, err := s.r.ExecContext(ctx, `DELETE FROM kv`); err == nil {
		t.Fatal("reader connection accepted a write; want query_only")
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	latest := SchemaVersion()
	if latest < 2 {
		t.Fatalf("SchemaVersion() = %d, want >= 2", latest)
	}
	path := filepath.Join(t.TempDir(), "old.db")

	// An older binary's data dir: schema 1 only, holding a record. Open
	// always migrates to the latest schema, so build it with migrate.
	old, err := sql.Open("sqlite", dsn(path, time.Second, "immediate", false))
	if err != nil {
		t.Fatal(err)
	}
	if err := migrate(ctx, old, 1, clock.Real{}); err != nil {
		t.Fatal(err)
	}
	var v1 int
	if err := old.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v1); err != nil || v1 != 1 {
		t.Fatalf("schema at %d (%v), want 1", v1, err)
	}
	if _, err := old.ExecContext(ctx, `INSERT INTO kv (key, value, version) VALUES (?, ?, 7)`, []byte("old/key"), []byte("old\x00value")); err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(ctx, `UPDATE meta SET value = 7 WHERE name = 'revision'`); err != nil {
		t.Fatal(err)
	}
	old.Close()

	// The current binary upgrades it and keeps the data.
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if v := schemaVersion(t, s); v != latest {
		t.Fatalf("schema at %d after upgrade, want %d", v, latest)
	}
	rec, err := s.Get(ctx, "old/key")
	if err != nil || string(rec.Value) != "old\x00value" || rec.Version != 7 {
		t.Fatalf("old record after upgrade: {%q %d} %v", rec.Value, rec.Version, err)
	}
	var v int64
	if err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		v, err = tx.Put(ctx, "old/key", []byte("new"), 7)
		return err
	}); err != nil || v != 8 {
		t.Fatalf("write after upgrade: version %d, err %v; want 8", v, err)
	}
	var applied int
	if err := s.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&applied); err != nil || applied != latest {
		t.Fatalf("schema_migrations rows %d (%v), want %d", applied, err, latest)
	}
	// Reopening an up-to-date database is a no-op.
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}

	// A database from a newer binary is refused.
	if _, err := s.w.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future', 0)`, latest+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path); !errors.Is(err, store.ErrSchemaTooNew) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open newer schema = %v, want ErrSchemaTooNew", err)
	}
}

// TestStatementsSurviveSchemaChange: the statements prepared at Open keep
// working after another process (here: a raw connection) changes the schema,
// as a newer binary's migration on a shared file would.
func TestStatementsSurviveSchemaChange(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyhaven.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(key string) {
		t.Helper()
		if err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, key, []byte("v"), store.Absent)
			return err
		}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	put("sc/a")
	if _, err := s.List(ctx, "sc/", store.ListOptions{}); err != nil {
		t.Fatal(err)
	}

	other, err := sql.Open("sqlite", dsn(path, time.Second, "immediate", false))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, `ALTER TABLE kv ADD COLUMN extra INTEGER NOT NULL DEFAULT 0`); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ExecContext(ctx, `CREATE INDEX kv_version ON kv (version)`); err != nil {
		t.Fatal(err)
	}

	put("sc/b")
	if err := s.View(ctx, func(r store.Reader) error {
		recs, err := r.List(ctx, "sc/", store.ListOptions{})
		if err != nil || len(recs) != 2 {
			return fmt.Errorf("list after schema change: %d records, %v", len(recs), err)
		}
		_, err = r.Get(ctx, "sc/b")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func schemaVersion(t *testing.T, s *Store) int {
	t.Helper()
	var v int
	if err := s.w.QueryRowContext(context.Background(), `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestConcurrentOpen: several processes (here: Stores) opening a fresh file
// at once must apply each migration exactly once.
func TestConcurrentOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "race.db")
	const n = 6
	errs := make(chan error, n)
	stores := make(chan *Store, n)
	for range n {
		go func() {
			s, err := Open(context.Background(), path)
			errs <- err
			stores <- s
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("open: %v", err)
		}
		s := <-stores
		defer s.Close()
	}
}

func BenchmarkPut(b *testing.B)  { storetest.BenchPut(b, openTemp(b)) }
func BenchmarkGet(b *testing.B)  { storetest.BenchGet(b, openTemp(b)) }
func BenchmarkList(b *testing.B) { storetest.BenchList(b, openTemp(b)) }

// BenchmarkPutInBatch is the cost of one Put inside a transaction of 100
// Puts: the commit's fsync is amortized, so the per-statement CPU shows.
func BenchmarkPutInBatch(b *testing.B) {
	s := openTemp(b)
	ctx := context.Background()
	val := make([]byte, 512)
	b.ResetTimer()
	for n := 0; n < b.N; {
		k := min(100, b.N-n)
		if err := s.Update(ctx, func(tx store.Tx) error {
			for j := range k {
				if _, err := tx.Put(ctx, fmt.Sprintf("bench/%08d", n+j), val, store.Any); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		n += k
	}
}
