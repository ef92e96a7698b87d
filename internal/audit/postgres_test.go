package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/postgres"
)

// TestPostgresReplicasKeepOneChain appends from two replicas (separate
// PostgreSQL pools) at once: serializable transactions and the head
// precondition must still give one unbroken chain per stream.
func TestPostgresReplicasKeepOneChain(t *testing.T) {
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is not set; skipping the PostgreSQL replica test")
	}
	ctx := context.Background()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "kh_audit_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	open := func() store.Store {
		st, err := postgres.Open(ctx, dsn, postgres.WithSchema(schema))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	clk := clock.NewFake(t0)
	var logs []*Log
	for i := 0; i < 2; i++ {
		l, err := New(open(), clk, Options{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		logs = append(logs, l)
	}
	const workers, per = 6, 10
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(l *Log) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if _, err := l.Append(ctx, Event{ResourceID: testVault, OperationName: "SecretGet", ResultType: "Success"}); err != nil {
					t.Error(err)
					return
				}
			}
		}(logs[w%2])
	}
	wg.Wait()
	rep, err := logs[0].Verify(ctx, StreamOf(testVault))
	if err != nil || !rep.OK || rep.Checked != workers*per {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// pgStores opens n stores (separate pools, as separate replicas) on one new
// schema, or skips without a DSN.
func pgStores(t testing.TB, n int) []store.Store {
	t.Helper()
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is not set; skipping the PostgreSQL replica test")
	}
	ctx := context.Background()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	schema := "kh_audit_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
	})
	var out []store.Store
	for i := 0; i < n; i++ {
		st, err := postgres.Open(ctx, dsn, postgres.WithSchema(schema))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		out = append(out, st)
	}
	return out
}

// TestPostgresReplicasGroupCommit runs requests through two replicas' Logs
// at once, each batching: serializable transactions, the head precondition
// and whole-batch retries must leave one unbroken chain per stream with
// exactly one event per request.
func TestPostgresReplicasGroupCommit(t *testing.T) {
	sts := pgStores(t, 2)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	clk := clock.NewFake(t0)
	var logs []*Log
	var counters []*gateStore
	for _, st := range sts {
		c := &gateStore{Store: st}
		l, err := New(c, clk, Options{Key: key})
		if err != nil {
			t.Fatal(err)
		}
		logs, counters = append(logs, l), append(counters, c)
	}
	const workers, per = 16, 10
	n := workers * per
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			h := logs[w%2].Middleware(requestHandler())
			for i := 0; i < per; i++ {
				if rec := serve(h, requestFor(w*per+i)); rec.Code != 200 {
					t.Errorf("status %d: %s", rec.Code, rec.Body)
				}
			}
		}(w)
	}
	wg.Wait()
	checkOneEventPerRequest(t, logs[0], sts[0], n, func(int) bool { return true })
	tx := counters[0].count() + counters[1].count()
	batches := metricValue(logs[0].m.batchSize) + metricValue(logs[1].m.batchSize)
	if float64(tx) < batches || batches >= float64(n) {
		t.Fatalf("%v batches in %d transaction attempts for %d events", batches, tx, n)
	}
	t.Logf("%d events in %v batches (%d store transactions, head conflicts included)", n, batches, tx)
	for _, l := range logs {
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}
