package sqlite

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

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
		q    querier
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

	// An older binary's data dir: schema 1 only, holding a record.
	old, err := Open(ctx, path, withTargetVersion(1))
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, old); v != 1 {
		t.Fatalf("schema at %d, want 1", v)
	}
	if _, err := old.w.ExecContext(ctx, `INSERT INTO kv (key, value, version) VALUES (?, ?, 7)`, []byte("old/key"), []byte("old\x00value")); err != nil {
		t.Fatal(err)
	}
	if _, err := old.w.ExecContext(ctx, `UPDATE meta SET value = 7 WHERE name = 'revision'`); err != nil {
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
