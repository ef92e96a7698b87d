package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/storetest"
)

const dsnEnv = "KEYHAVEN_TEST_POSTGRES_DSN"

func testDSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(dsnEnv)
	if dsn == "" {
		t.Skipf("%s is not set; skipping PostgreSQL tests (e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", dsnEnv, dsnEnv)
	}
	return dsn
}

// freshSchema returns a new schema name that is dropped when the test ends.
func freshSchema(t testing.TB, dsn string) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	schema := "kh_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Errorf("cleanup connect: %v", err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	return schema
}

func openFresh(t testing.TB, opts ...Option) *Store {
	t.Helper()
	dsn := testDSN(t)
	s, err := Open(context.Background(), dsn, append([]Option{WithSchema(freshSchema(t, dsn))}, opts...)...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fresh(t *testing.T) func() store.Store {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	return func() store.Store {
		s, err := Open(context.Background(), dsn, WithSchema(schema))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return s
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
}

func TestPersistence(t *testing.T) { storetest.RunPersistence(t, fresh) }

// TestShared: two Stores (two replicas) on one schema; concurrent CAS
// increments across them must end at the exact count.
func TestShared(t *testing.T) { storetest.RunShared(t, fresh) }

func TestOpen(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	cases := []struct {
		name string
		dsn  string
		opts []Option
		ok   bool
	}{
		{name: "ok/schema", dsn: dsn, opts: []Option{WithSchema(freshSchema(t, dsn))}, ok: true},
		{name: "fail/schema-with-quote", dsn: dsn, opts: []Option{WithSchema(`x"; DROP TABLE kv; --`)}},
		{name: "fail/schema-upper-case", dsn: dsn, opts: []Option{WithSchema("Public")}},
		{name: "fail/zero-conns", dsn: dsn, opts: []Option{WithMaxConns(0)}},
		{name: "fail/bad-dsn", dsn: "postgres://u:sekrit@[::1", opts: nil},
		{name: "fail/unreachable", dsn: "postgres://postgres:sekrit@127.0.0.1:1/test?sslmode=disable&connect_timeout=2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(ctx, c.dsn, c.opts...)
			if c.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				if msg := err.Error(); contains(msg, "sekrit") {
					t.Fatalf("error leaks the password: %s", msg)
				}
				return
			}
			s.Close()
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestMigrations(t *testing.T) {
	dsn := testDSN(t)
	ctx := context.Background()
	latest := SchemaVersion()
	if latest < 2 {
		t.Fatalf("SchemaVersion() = %d, want >= 2", latest)
	}
	schema := freshSchema(t, dsn)

	// An older binary's database: schema 1 only, holding a record.
	old, err := Open(ctx, dsn, WithSchema(schema), withTargetVersion(1))
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, old); v != 1 {
		t.Fatalf("schema at %d, want 1", v)
	}
	if _, err := old.pool.Exec(ctx, `INSERT INTO kv (key, value, version) VALUES ($1, $2, nextval('revision_seq'))`,
		[]byte("old/key"), []byte("old\x00value")); err != nil {
		t.Fatal(err)
	}
	old.Close()

	s, err := Open(ctx, dsn, WithSchema(schema))
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if v := schemaVersion(t, s); v != latest {
		t.Fatalf("schema at %d after upgrade, want %d", v, latest)
	}
	rec, err := s.Get(ctx, "old/key")
	if err != nil || string(rec.Value) != "old\x00value" || rec.Version != 1 {
		t.Fatalf("old record after upgrade: {%q %d} %v", rec.Value, rec.Version, err)
	}
	var v int64
	if err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		v, err = tx.Put(ctx, "old/key", []byte("new"), rec.Version)
		return err
	}); err != nil || v <= rec.Version {
		t.Fatalf("write after upgrade: version %d, err %v", v, err)
	}

	// A database from a newer binary is refused.
	if _, err := s.pool.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'future', now())`, latest+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, dsn, WithSchema(schema)); !errors.Is(err, store.ErrSchemaTooNew) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("open newer schema = %v, want ErrSchemaTooNew", err)
	}
}

func schemaVersion(t *testing.T, s *Store) int {
	t.Helper()
	var v int
	if err := s.pool.QueryRow(context.Background(), `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestConcurrentOpen: replicas starting together on an empty schema must
// apply each migration once (the advisory lock serializes them).
func TestConcurrentOpen(t *testing.T) {
	dsn := testDSN(t)
	schema := freshSchema(t, dsn)
	const n = 6
	type result struct {
		s   *Store
		err error
	}
	res := make(chan result, n)
	for range n {
		go func() {
			s, err := Open(context.Background(), dsn, WithSchema(schema), WithMaxConns(2))
			res <- result{s, err}
		}()
	}
	var first *Store
	for range n {
		r := <-res
		if r.err != nil {
			t.Fatalf("open: %v", r.err)
		}
		defer r.s.Close()
		first = r.s
	}
	var rows int
	if err := first.pool.QueryRow(context.Background(), `SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != SchemaVersion() {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", rows, err, SchemaVersion())
	}
}

// TestRetryOnSerializationFailure: fn sees a 40001 it swallows; Update must
// still re-run it rather than commit a doomed transaction.
func TestRetryOnSerializationFailure(t *testing.T) {
	s := openFresh(t, WithMaxAttempts(5))
	ctx := context.Background()
	cases := []struct {
		name     string
		failures int
		wantRuns int
		ok       bool
	}{
		{name: "ok/one-failure", failures: 1, wantRuns: 2, ok: true},
		{name: "ok/four-failures", failures: 4, wantRuns: 5, ok: true},
		{name: "fail/attempts-exhausted", failures: 100, wantRuns: 5},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			runs := 0
			key := fmt.Sprintf("retry/%d", i)
			err := s.Update(ctx, func(tx store.Tx) error {
				runs++
				if _, err := tx.Put(ctx, key, []byte("x"), store.Any); err != nil {
					return err
				}
				if runs <= c.failures {
					// Simulate what PostgreSQL does to a conflicting
					// transaction; fn swallows the error.
					w := tx.(*writer)
					_, err := w.q.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'simulated' USING ERRCODE = '40001'; END $$`)
					_ = w.note(err)
				}
				return nil
			})
			if runs != c.wantRuns {
				t.Fatalf("fn ran %d times, want %d", runs, c.wantRuns)
			}
			if c.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, c.ok)
			}
			_, gerr := s.Get(ctx, key)
			if c.ok != (gerr == nil) {
				t.Fatalf("get after update: %v", gerr)
			}
		})
	}
}

func BenchmarkPut(b *testing.B)  { storetest.BenchPut(b, openFresh(b)) }
func BenchmarkGet(b *testing.B)  { storetest.BenchGet(b, openFresh(b)) }
func BenchmarkList(b *testing.B) { storetest.BenchList(b, openFresh(b)) }
