package audit

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

func appendN(t testing.TB, l *Log, resourceID string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := l.Append(context.Background(), Event{ResourceID: resourceID, OperationName: fmt.Sprintf("Op%d", i), ResultType: "Success", ResultSignature: "OK",
			Properties: Properties{HTTPStatusCode: 200}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentRequestsKeepOneChain(t *testing.T) {
	e := newEnv(t, Options{})
	// A second Log on its own connection to the same database file acts as
	// another replica appending to the same streams.
	other := e.newLog(t, openStore(t, e.path), Options{})
	const workers, perWorker = 8, 15
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		l := e.log
		if w%2 == 1 {
			l = other
		}
		wg.Add(1)
		go func(l *Log, w int) {
			defer wg.Done()
			h := l.Middleware(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				info := principal.InfoFrom(r.Context())
				info.OperationName = "SecretGet"
				if w%4 < 2 {
					info.ResourceID = testVault
				}
				rw.WriteHeader(200)
			}))
			for i := 0; i < perWorker; i++ {
				rec := serve(h, withInfo(httptest.NewRequest("GET", "https://v1.vault.localhost/secrets/a", nil), nil))
				if rec.Code != 200 {
					t.Errorf("status %d: %s", rec.Code, rec.Body)
				}
			}
		}(l, w)
	}
	wg.Wait()
	for _, s := range []string{StreamOf(testVault), GlobalStream} {
		evs := events(t, e.st, s)
		if len(evs) != workers*perWorker/2 {
			t.Fatalf("stream %s: %d events want %d", s, len(evs), workers*perWorker/2)
		}
		for i, ev := range evs {
			if ev.Seq != int64(i+1) || (i > 0 && ev.PrevHash != evs[i-1].Hash) {
				t.Fatalf("stream %s forks at %d: seq %d", s, i+1, ev.Seq)
			}
		}
	}
	rep, err := e.log.VerifyAll(context.Background())
	if err != nil || !rep.OK || rep.Checked != workers*perWorker || rep.Streams != 2 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

// tamper changes the stored records of a stream directly, as someone with
// access to the database would.
func tamper(t *testing.T, st store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx store.Tx) error { return fn(context.Background(), tx) }); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	stream := StreamOf(testVault)
	get := func(ctx context.Context, tx store.Tx, seq int64) []byte {
		rec, err := tx.Get(ctx, eventKey(stream, seq))
		if err != nil {
			t.Fatal(err)
		}
		return rec.Value
	}
	type want struct {
		seq  int64
		kind string
	}
	tests := []struct {
		name   string
		tamper func(ctx context.Context, tx store.Tx) error
		want   []want
	}{
		{name: "ok/untouched", tamper: func(context.Context, store.Tx) error { return nil }},
		{name: "fail/delete-middle", tamper: func(ctx context.Context, tx store.Tx) error {
			return tx.Delete(ctx, eventKey(stream, 3), store.Any)
		}, want: []want{{3, ProblemMissing}}},
		{name: "fail/delete-two", tamper: func(ctx context.Context, tx store.Tx) error {
			_ = tx.Delete(ctx, eventKey(stream, 2), store.Any)
			return tx.Delete(ctx, eventKey(stream, 3), store.Any)
		}, want: []want{{2, ProblemMissing}}},
		{name: "fail/delete-first", tamper: func(ctx context.Context, tx store.Tx) error {
			return tx.Delete(ctx, eventKey(stream, 1), store.Any)
		}, want: []want{{1, ProblemMissing}}},
		{name: "fail/delete-last", tamper: func(ctx context.Context, tx store.Tx) error {
			return tx.Delete(ctx, eventKey(stream, 5), store.Any)
		}, want: []want{{5, ProblemMissing}}},
		{name: "fail/edit-field", tamper: func(ctx context.Context, tx store.Tx) error {
			v := bytes.Replace(get(ctx, tx, 2), []byte(`"Op1"`), []byte(`"Op9"`), 1)
			_, err := tx.Put(ctx, eventKey(stream, 2), v, store.Any)
			return err
		}, want: []want{{2, ProblemEdited}}},
		{name: "fail/edit-whitespace", tamper: func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Put(ctx, eventKey(stream, 4), append(get(ctx, tx, 4), ' '), store.Any)
			return err
		}, want: []want{{4, ProblemEdited}}},
		{name: "fail/edit-and-rehash", tamper: func(ctx context.Context, tx store.Tx) error {
			ev, _, _ := decode(get(ctx, tx, 3))
			ev.ResultSignature = "Forbidden"
			raw, _, err := encode(ev)
			if err != nil {
				return err
			}
			_, err = tx.Put(ctx, eventKey(stream, 3), raw, store.Any)
			return err
		}, want: []want{{4, ProblemBrokenLink}}},
		{name: "fail/edit-last-and-rehash", tamper: func(ctx context.Context, tx store.Tx) error {
			ev, _, _ := decode(get(ctx, tx, 5))
			ev.CallerIPAddress = "203.0.113.9"
			raw, _, _ := encode(ev)
			_, err := tx.Put(ctx, eventKey(stream, 5), raw, store.Any)
			return err
		}, want: []want{{5, ProblemEdited}}},
		{name: "fail/swap", tamper: func(ctx context.Context, tx store.Tx) error {
			a, b := get(ctx, tx, 2), get(ctx, tx, 3)
			if _, err := tx.Put(ctx, eventKey(stream, 2), b, store.Any); err != nil {
				return err
			}
			_, err := tx.Put(ctx, eventKey(stream, 3), a, store.Any)
			return err
		}, want: []want{{2, ProblemReordered}, {3, ProblemReordered}}},
		{name: "fail/delete-and-renumber", tamper: func(ctx context.Context, tx store.Tx) error {
			// Remove event 3 and move 4 and 5 down, fixing their seq and
			// hash: only the chain links give it away.
			for seq := int64(3); seq < 5; seq++ {
				ev, _, _ := decode(get(ctx, tx, seq+1))
				ev.Seq = seq
				raw, _, _ := encode(ev)
				if _, err := tx.Put(ctx, eventKey(stream, seq), raw, store.Any); err != nil {
					return err
				}
			}
			return tx.Delete(ctx, eventKey(stream, 5), store.Any)
		}, want: []want{{3, ProblemBrokenLink}, {4, ProblemBrokenLink}, {5, ProblemMissing}}},
		{name: "fail/garbage", tamper: func(ctx context.Context, tx store.Tx) error {
			_, err := tx.Put(ctx, eventKey(stream, 2), []byte("not json"), store.Any)
			return err
		}, want: []want{{2, ProblemEdited}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			appendN(t, e.log, testVault, 5)
			appendN(t, e.log, testVault2, 3)
			tamper(t, e.st, tc.tamper)
			rep, err := e.log.Verify(context.Background(), stream)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK != (len(tc.want) == 0) || len(rep.Problems) != len(tc.want) {
				t.Fatalf("report %+v, want problems %v", rep, tc.want)
			}
			for i, w := range tc.want {
				p := rep.Problems[i]
				if p.Seq != w.seq || p.Kind != w.kind || p.Stream != stream || p.ResourceID != testVault || p.Message == "" {
					t.Fatalf("problem %d: %+v, want seq %d kind %s", i, p, w.seq, w.kind)
				}
			}
			// The other vault's stream is untouched.
			if rep, err := e.log.Verify(context.Background(), StreamOf(testVault2)); err != nil || !rep.OK || rep.Checked != 3 {
				t.Fatalf("other stream: %+v %v", rep, err)
			}
		})
	}
}

func TestVerifyRejectsBadStreamName(t *testing.T) {
	e := newEnv(t, Options{})
	for _, s := range []string{"", "../x", "R0123", "r" + string(bytes.Repeat([]byte("A"), 32))} {
		if _, err := e.log.Verify(context.Background(), s); err == nil {
			t.Fatalf("stream %q accepted", s)
		}
	}
}
