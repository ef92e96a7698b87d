package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call and arrange for it to be closed (t.Cleanup); the suite calls it
// once per subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	cases := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CRUD", testCRUD},
		{"Preconditions", testPreconditions},
		{"Versions", testVersions},
		{"List", testList},
		{"ListPaging", testListPaging},
		{"Rollback", testRollback},
		{"ReadYourWrites", testReadYourWrites},
		{"ViewSnapshot", testViewSnapshot},
		{"CASCounter", testCASCounter},
		{"CASCounterInTx", testCASCounterInTx},
		{"ConcurrentDisjoint", testConcurrentDisjoint},
		{"Limits", testLimits},
		{"Context", testContext},
		{"BinarySafe", testBinarySafe},
		{"TxAfterReturn", testTxAfterReturn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.fn(t, open(t))
		})
	}
}

// RunPersistence checks that committed data, versions and the revision
// counter survive Close and reopen. fresh must create new, empty backing
// storage (a file, a schema) and return a function that opens a Store on
// it; every call of that function opens the same storage. The suite closes
// each store it opens.
func RunPersistence(t *testing.T, fresh func(t *testing.T) (open func() store.Store)) {
	t.Helper()
	t.Run("Reopen", func(t *testing.T) {
		ctx := context.Background()
		open := fresh(t)
		s := open()
		v1 := mustPut(t, s, "p/a", []byte("one"))
		v2 := mustPut(t, s, "p/b", []byte("two\x00bytes"))
		mustPut(t, s, "p/gone", []byte("x"))
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, "p/gone", store.Any) }); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}

		s = open()
		defer s.Close()
		wantRecords(t, s, "p/", []store.Record{
			{Key: "p/a", Value: []byte("one"), Version: v1},
			{Key: "p/b", Value: []byte("two\x00bytes"), Version: v2},
		})
		// The revision counter must persist too, or reopened stores would hand
		// out versions that collide with stored ones.
		if v3 := mustPut(t, s, "p/c", []byte("three")); v3 <= v2 {
			t.Fatalf("version after reopen = %d, want > %d", v3, v2)
		}
	})
	t.Run("RolledBackNotPersisted", func(t *testing.T) {
		ctx := context.Background()
		open := fresh(t)
		s := open()
		boom := errors.New("boom")
		if err := s.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.Put(ctx, "r/x", []byte("x"), store.Any); err != nil {
				return err
			}
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("update = %v, want boom", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		s = open()
		defer s.Close()
		if _, err := s.Get(ctx, "r/x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get after reopen = %v, want ErrNotFound", err)
		}
	})
}

// mustPut writes key unconditionally in its own transaction.
func mustPut(t *testing.T, s store.Store, key string, value []byte) int64 {
	t.Helper()
	var v int64
	err := s.Update(context.Background(), func(tx store.Tx) error {
		var err error
		v, err = tx.Put(context.Background(), key, value, store.Any)
		return err
	})
	if err != nil {
		t.Fatalf("put %q: %v", key, err)
	}
	if v <= 0 {
		t.Fatalf("put %q: version %d, want > 0", key, v)
	}
	return v
}

func mustGet(t *testing.T, r store.Reader, key string) store.Record {
	t.Helper()
	rec, err := r.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if rec.Key != key {
		t.Fatalf("get %q: record key %q", key, rec.Key)
	}
	return rec
}

func wantRecords(t *testing.T, r store.Reader, prefix string, want []store.Record) {
	t.Helper()
	got, err := r.List(context.Background(), prefix, store.ListOptions{})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	if len(got) != len(want) {
		t.Fatalf("list %q: got %d records %q, want %d", prefix, len(got), keys(got), len(want))
	}
	for i := range want {
		if got[i].Key != want[i].Key || !bytes.Equal(got[i].Value, want[i].Value) || got[i].Version != want[i].Version {
			t.Fatalf("list %q [%d]: got {%q %q %d}, want {%q %q %d}", prefix, i,
				got[i].Key, got[i].Value, got[i].Version, want[i].Key, want[i].Value, want[i].Version)
		}
		rec := mustGet(t, r, want[i].Key)
		if !bytes.Equal(rec.Value, want[i].Value) || rec.Version != want[i].Version {
			t.Fatalf("get %q: got {%q %d}, want {%q %d}", want[i].Key, rec.Value, rec.Version, want[i].Value, want[i].Version)
		}
	}
}

func keys(recs []store.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Key
	}
	return out
}

func testCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get missing = %v, want ErrNotFound", err)
	}
	v1 := mustPut(t, s, "k", []byte("v1"))
	if rec := mustGet(t, s, "k"); string(rec.Value) != "v1" || rec.Version != v1 {
		t.Fatalf("get = {%q %d}, want {v1 %d}", rec.Value, rec.Version, v1)
	}
	v2 := mustPut(t, s, "k", []byte("v2"))
	if v2 <= v1 {
		t.Fatalf("overwrite version %d, want > %d", v2, v1)
	}
	if rec := mustGet(t, s, "k"); string(rec.Value) != "v2" || rec.Version != v2 {
		t.Fatalf("get = {%q %d}, want {v2 %d}", rec.Value, rec.Version, v2)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, "k", store.Any) }); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get deleted = %v, want ErrNotFound", err)
	}
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, "k", store.Any) }); err != nil {
		t.Fatalf("delete missing with Any = %v, want nil", err)
	}
	// The caller's slice must not be retained: mutating it after Put must not
	// change the stored value.
	buf := []byte("orig")
	mustPut(t, s, "alias", buf)
	buf[0] = 'X'
	if rec := mustGet(t, s, "alias"); string(rec.Value) != "orig" {
		t.Fatalf("stored value aliased caller's slice: %q", rec.Value)
	}
}

func testPreconditions(t *testing.T, s store.Store) {
	ctx := context.Background()
	const (
		missing  = iota // key does not exist
		existing        // key exists at version cur
	)
	cases := []struct {
		name    string
		state   int
		del     bool
		cond    func(cur int64) int64
		wantErr error // nil = success; errAny = some non-nil error
	}{
		{name: "ok/put-absent-on-missing", state: missing, cond: func(int64) int64 { return store.Absent }},
		{name: "ok/put-any-on-missing", state: missing, cond: func(int64) int64 { return store.Any }},
		{name: "ok/put-any-on-existing", state: existing, cond: func(int64) int64 { return store.Any }},
		{name: "ok/put-right-version", state: existing, cond: func(c int64) int64 { return c }},
		{name: "fail/put-absent-on-existing", state: existing, cond: func(int64) int64 { return store.Absent }, wantErr: store.ErrConflict},
		{name: "fail/put-wrong-version", state: existing, cond: func(c int64) int64 { return c + 1000 }, wantErr: store.ErrConflict},
		{name: "fail/put-older-version", state: existing, cond: func(c int64) int64 { return c - 1 }, wantErr: store.ErrConflict},
		{name: "fail/put-version-on-missing", state: missing, cond: func(int64) int64 { return 1 }, wantErr: store.ErrConflict},
		{name: "fail/put-invalid-precondition", state: existing, cond: func(int64) int64 { return -2 }, wantErr: errAny},
		{name: "ok/delete-any-on-existing", state: existing, del: true, cond: func(int64) int64 { return store.Any }},
		{name: "ok/delete-any-on-missing", state: missing, del: true, cond: func(int64) int64 { return store.Any }},
		{name: "ok/delete-right-version", state: existing, del: true, cond: func(c int64) int64 { return c }},
		{name: "fail/delete-wrong-version", state: existing, del: true, cond: func(c int64) int64 { return c + 1000 }, wantErr: store.ErrConflict},
		{name: "fail/delete-version-on-missing", state: missing, del: true, cond: func(int64) int64 { return 1 }, wantErr: store.ErrConflict},
		{name: "fail/delete-absent-on-missing", state: missing, del: true, cond: func(int64) int64 { return store.Absent }, wantErr: store.ErrConflict},
		{name: "fail/delete-absent-on-existing", state: existing, del: true, cond: func(int64) int64 { return store.Absent }, wantErr: store.ErrConflict},
		{name: "fail/delete-invalid-precondition", state: existing, del: true, cond: func(int64) int64 { return -7 }, wantErr: errAny},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := fmt.Sprintf("pre/%02d", i)
			var cur int64
			if c.state == existing {
				cur = mustPut(t, s, key, []byte("before"))
				// Burn a revision so that cur-1 is not some unrelated valid version.
				mustPut(t, s, key+"/other", []byte("x"))
			}
			var newVersion int64
			err := s.Update(ctx, func(tx store.Tx) error {
				if c.del {
					return tx.Delete(ctx, key, c.cond(cur))
				}
				var err error
				newVersion, err = tx.Put(ctx, key, []byte("after"), c.cond(cur))
				return err
			})
			switch {
			case c.wantErr == nil && err != nil:
				t.Fatalf("got %v, want success", err)
			case c.wantErr == errAny && err == nil:
				t.Fatalf("got success, want an error")
			case c.wantErr != nil && c.wantErr != errAny && !errors.Is(err, c.wantErr):
				t.Fatalf("got %v, want %v", err, c.wantErr)
			}
			rec, gerr := s.Get(ctx, key)
			switch {
			case err != nil && c.state == existing:
				// Failed: the old record is untouched.
				if gerr != nil || string(rec.Value) != "before" || rec.Version != cur {
					t.Fatalf("after failed op: got {%q %d} err %v, want {before %d}", rec.Value, rec.Version, gerr, cur)
				}
			case err != nil || c.del:
				if !errors.Is(gerr, store.ErrNotFound) {
					t.Fatalf("after op: get = %v, want ErrNotFound", gerr)
				}
			default:
				if gerr != nil || string(rec.Value) != "after" || rec.Version != newVersion || newVersion <= cur {
					t.Fatalf("after put: got {%q %d} err %v, want {after %d > %d}", rec.Value, rec.Version, gerr, newVersion, cur)
				}
			}
		})
	}
}

// errAny marks test cases where any non-nil error is acceptable.
var errAny = errors.New("any error")

func testVersions(t *testing.T, s store.Store) {
	ctx := context.Background()
	var va, vb, va2 int64
	err := s.Update(ctx, func(tx store.Tx) error {
		var err error
		if va, err = tx.Put(ctx, "v/a", []byte("1"), store.Absent); err != nil {
			return err
		}
		if vb, err = tx.Put(ctx, "v/b", []byte("1"), store.Any); err != nil {
			return err
		}
		// Re-writing a key in the same transaction, conditioned on the version
		// it just got, works and keeps the transaction's revision.
		va2, err = tx.Put(ctx, "v/a", []byte("2"), va)
		return err
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if va <= 0 || va != vb || va != va2 {
		t.Fatalf("versions in one transaction: %d %d %d, want equal and > 0", va, vb, va2)
	}
	prev := va
	for i := range 5 {
		v := mustPut(t, s, fmt.Sprintf("v/%d", i), []byte("x"))
		if v <= prev {
			t.Fatalf("transaction %d: version %d, want > %d", i, v, prev)
		}
		prev = v
	}
	wantRecords(t, s, "v/a", []store.Record{{Key: "v/a", Value: []byte("2"), Version: va}})
	// A failed transaction must not leave a version that a later one reuses
	// in a way that breaks ordering.
	_ = s.Update(ctx, func(tx store.Tx) error {
		_, _ = tx.Put(ctx, "v/z", []byte("x"), store.Any)
		return errors.New("abort")
	})
	if v := mustPut(t, s, "v/after", []byte("x")); v <= prev {
		t.Fatalf("version after aborted tx %d, want > %d", v, prev)
	}
}

// listKeys is the fixture for List: chosen so that byte-wise order differs
// from naive string or collation order and LIKE wildcards would misfire.
var listKeys = []string{
	"a", "a\x00", "a/1", "a/2", "a/b/c", "a0", "a\xff", "a\xff\xff",
	"b", "B", "%x", "_y", "\xff", "\xff\xff", "é",
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, k := range listKeys {
			if _, err := tx.Put(ctx, k, []byte("v:"+k), store.Absent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	all := []string{"%x", "B", "_y", "a", "a\x00", "a/1", "a/2", "a/b/c", "a0", "a\xff", "a\xff\xff", "b", "é", "\xff", "\xff\xff"}
	cases := []struct {
		name   string
		prefix string
		opts   store.ListOptions
		want   []string
		err    bool
	}{
		{name: "ok/empty-prefix-all-bytewise", prefix: "", want: all},
		{name: "ok/slash-prefix-excludes-a0", prefix: "a/", want: []string{"a/1", "a/2", "a/b/c"}},
		{name: "ok/prefix-a", prefix: "a", want: []string{"a", "a\x00", "a/1", "a/2", "a/b/c", "a0", "a\xff", "a\xff\xff"}},
		{name: "ok/exact-key-is-its-own-prefix", prefix: "a/b/c", want: []string{"a/b/c"}},
		{name: "ok/nul-prefix", prefix: "a\x00", want: []string{"a\x00"}},
		{name: "ok/ff-prefix", prefix: "a\xff", want: []string{"a\xff", "a\xff\xff"}},
		{name: "ok/all-ff-prefix-unbounded", prefix: "\xff", want: []string{"\xff", "\xff\xff"}},
		{name: "ok/percent-is-literal", prefix: "%", want: []string{"%x"}},
		{name: "ok/underscore-is-literal", prefix: "_", want: []string{"_y"}},
		{name: "ok/case-sensitive", prefix: "B", want: []string{"B"}},
		{name: "ok/utf8-prefix", prefix: "\xc3", want: []string{"é"}},
		{name: "ok/no-match", prefix: "zzz", want: nil},
		{name: "ok/limit", prefix: "a", opts: store.ListOptions{Limit: 3}, want: []string{"a", "a\x00", "a/1"}},
		{name: "ok/limit-larger-than-result", prefix: "a/", opts: store.ListOptions{Limit: 100}, want: []string{"a/1", "a/2", "a/b/c"}},
		{name: "ok/after", prefix: "a/", opts: store.ListOptions{After: "a/1"}, want: []string{"a/2", "a/b/c"}},
		{name: "ok/after-not-a-key", prefix: "a/", opts: store.ListOptions{After: "a/10"}, want: []string{"a/2", "a/b/c"}},
		{name: "ok/after-before-prefix", prefix: "a/", opts: store.ListOptions{After: "a"}, want: []string{"a/1", "a/2", "a/b/c"}},
		{name: "ok/after-last", prefix: "a/", opts: store.ListOptions{After: "a/b/c"}, want: nil},
		{name: "ok/after-beyond-prefix", prefix: "a/", opts: store.ListOptions{After: "b"}, want: nil},
		{name: "ok/after-limit", prefix: "a", opts: store.ListOptions{After: "a/1", Limit: 2}, want: []string{"a/2", "a/b/c"}},
		{name: "ok/reverse", prefix: "a/", opts: store.ListOptions{Reverse: true}, want: []string{"a/b/c", "a/2", "a/1"}},
		{name: "ok/reverse-limit", prefix: "a", opts: store.ListOptions{Reverse: true, Limit: 2}, want: []string{"a\xff\xff", "a\xff"}},
		{name: "ok/reverse-after", prefix: "a/", opts: store.ListOptions{Reverse: true, After: "a/b/c"}, want: []string{"a/2", "a/1"}},
		{name: "ok/reverse-after-beyond-prefix", prefix: "a/", opts: store.ListOptions{Reverse: true, After: "b"}, want: []string{"a/b/c", "a/2", "a/1"}},
		{name: "ok/reverse-after-first", prefix: "a/", opts: store.ListOptions{Reverse: true, After: "a/1"}, want: nil},
		{name: "ok/reverse-all-ff", prefix: "\xff", opts: store.ListOptions{Reverse: true}, want: []string{"\xff\xff", "\xff"}},
		{name: "fail/negative-limit", prefix: "a", opts: store.ListOptions{Limit: -1}, err: true},
		{name: "fail/prefix-too-long", prefix: strings.Repeat("p", store.MaxKeyLen+1), err: true},
	}
	readers := []struct {
		name string
		run  func(fn func(r store.Reader))
	}{
		{"store", func(fn func(r store.Reader)) { fn(s) }},
		{"view", func(fn func(r store.Reader)) {
			if err := s.View(ctx, func(r store.Reader) error { fn(r); return nil }); err != nil {
				t.Fatalf("view: %v", err)
			}
		}},
		{"update", func(fn func(r store.Reader)) {
			if err := s.Update(ctx, func(tx store.Tx) error { fn(tx); return nil }); err != nil {
				t.Fatalf("update: %v", err)
			}
		}},
	}
	for _, c := range cases {
		for _, rd := range readers {
			t.Run(c.name+"/"+rd.name, func(t *testing.T) {
				rd.run(func(r store.Reader) {
					got, err := r.List(ctx, c.prefix, c.opts)
					if c.err {
						if err == nil {
							t.Errorf("got %q, want error", keys(got))
						}
						return
					}
					if err != nil {
						t.Errorf("list: %v", err)
						return
					}
					if fmt.Sprintf("%q", keys(got)) != fmt.Sprintf("%q", c.want) && !(len(got) == 0 && len(c.want) == 0) {
						t.Errorf("got %q, want %q", keys(got), c.want)
					}
					for _, rec := range got {
						if string(rec.Value) != "v:"+rec.Key || rec.Version <= 0 {
							t.Errorf("record %q: value %q version %d", rec.Key, rec.Value, rec.Version)
						}
					}
				})
			})
		}
	}
}

func testListPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 57
	err := s.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			if _, err := tx.Put(ctx, fmt.Sprintf("page/%03d", i), []byte("x"), store.Absent); err != nil {
				return err
			}
		}
		_, err := tx.Put(ctx, "pagf", []byte("outside"), store.Absent)
		return err
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	for _, reverse := range []bool{false, true} {
		t.Run(fmt.Sprintf("ok/reverse=%v", reverse), func(t *testing.T) {
			var got []string
			after := ""
			for pages := 0; ; pages++ {
				if pages > n {
					t.Fatal("paging does not terminate")
				}
				recs, err := s.List(ctx, "page/", store.ListOptions{After: after, Limit: 10, Reverse: reverse})
				if err != nil {
					t.Fatalf("list: %v", err)
				}
				if len(recs) > 10 {
					t.Fatalf("page of %d, limit 10", len(recs))
				}
				if len(recs) == 0 {
					break
				}
				got = append(got, keys(recs)...)
				after = recs[len(recs)-1].Key
			}
			if len(got) != n {
				t.Fatalf("paged %d keys, want %d", len(got), n)
			}
			for i, k := range got {
				j := i
				if reverse {
					j = n - 1 - i
				}
				if want := fmt.Sprintf("page/%03d", j); k != want {
					t.Fatalf("key %d = %q, want %q", i, k, want)
				}
			}
		})
	}
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	keep := mustPut(t, s, "rb/keep", []byte("orig"))
	boom := errors.New("boom")
	cases := []struct {
		name string
		ret  func() error
	}{
		{"fail/plain-error", func() error { return boom }},
		{"fail/wrapped-error", func() error { return fmt.Errorf("ctx: %w", boom) }},
		{"fail/store-error-from-fn", func() error { return fmt.Errorf("fn: %w", store.ErrConflict) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.ret()
			err := s.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.Put(ctx, "rb/new", []byte("x"), store.Absent); err != nil {
					return err
				}
				if _, err := tx.Put(ctx, "rb/keep", []byte("changed"), store.Any); err != nil {
					return err
				}
				if err := tx.Delete(ctx, "rb/keep", store.Any); err != nil {
					return err
				}
				return want
			})
			if err != want {
				t.Fatalf("Update returned %v, want fn's error as is", err)
			}
			if !errors.Is(err, boom) && !errors.Is(err, store.ErrConflict) {
				t.Fatalf("errors.Is lost the cause: %v", err)
			}
			if _, err := s.Get(ctx, "rb/new"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("rolled-back insert visible: %v", err)
			}
			if rec := mustGet(t, s, "rb/keep"); string(rec.Value) != "orig" || rec.Version != keep {
				t.Fatalf("rolled-back update visible: {%q %d}", rec.Value, rec.Version)
			}
		})
	}
	t.Run("fail/panic", func(t *testing.T) {
		func() {
			defer func() { _ = recover() }()
			_ = s.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.Put(ctx, "rb/panic", []byte("x"), store.Any); err != nil {
					return err
				}
				panic("fn panicked")
			})
		}()
		if _, err := s.Get(ctx, "rb/panic"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("write from panicking fn visible: %v", err)
		}
		// The store still works afterwards (the writer was released).
		mustPut(t, s, "rb/after-panic", []byte("x"))
	})
}

func testReadYourWrites(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustPut(t, s, "ryw/old", []byte("old"))
	err := s.Update(ctx, func(tx store.Tx) error {
		v, err := tx.Put(ctx, "ryw/new", []byte("new"), store.Absent)
		if err != nil {
			return err
		}
		rec, err := tx.Get(ctx, "ryw/new")
		if err != nil || string(rec.Value) != "new" || rec.Version != v {
			return fmt.Errorf("get own write: {%q %d} %v", rec.Value, rec.Version, err)
		}
		if err := tx.Delete(ctx, "ryw/old", store.Any); err != nil {
			return err
		}
		if _, err := tx.Get(ctx, "ryw/old"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("get own delete: %v", err)
		}
		recs, err := tx.List(ctx, "ryw/", store.ListOptions{})
		if err != nil {
			return err
		}
		if len(recs) != 1 || recs[0].Key != "ryw/new" {
			return fmt.Errorf("list inside tx: %q", keys(recs))
		}
		// Uncommitted writes are not visible outside the transaction.
		if _, err := s.Get(ctx, "ryw/new"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("uncommitted write visible outside: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec := mustGet(t, s, "ryw/new"); string(rec.Value) != "new" {
		t.Fatalf("after commit: %q", rec.Value)
	}
}

func testViewSnapshot(t *testing.T, s store.Store) {
	ctx := context.Background()
	v1 := mustPut(t, s, "snap/1", []byte("old1"))
	v2 := mustPut(t, s, "snap/2", []byte("old2"))
	err := s.View(ctx, func(r store.Reader) error {
		if rec, err := r.Get(ctx, "snap/1"); err != nil || string(rec.Value) != "old1" {
			return fmt.Errorf("first read: %q %v", rec.Value, err)
		}
		// Another transaction commits changes to both keys and adds one.
		err := s.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.Put(ctx, "snap/1", []byte("new1"), v1); err != nil {
				return err
			}
			if _, err := tx.Put(ctx, "snap/2", []byte("new2"), v2); err != nil {
				return err
			}
			_, err := tx.Put(ctx, "snap/3", []byte("new3"), store.Absent)
			return err
		})
		if err != nil {
			return fmt.Errorf("concurrent update: %w", err)
		}
		for k, want := range map[string]string{"snap/1": "old1", "snap/2": "old2"} {
			rec, err := r.Get(ctx, k)
			if err != nil || string(rec.Value) != want {
				return fmt.Errorf("view read %s = %q %v, want %q", k, rec.Value, err, want)
			}
		}
		if _, err := r.Get(ctx, "snap/3"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("view sees key committed later: %v", err)
		}
		recs, err := r.List(ctx, "snap/", store.ListOptions{})
		if err != nil {
			return err
		}
		if len(recs) != 2 || string(recs[0].Value) != "old1" || string(recs[1].Value) != "old2" {
			return fmt.Errorf("view list: %q", keys(recs))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec := mustGet(t, s, "snap/2"); string(rec.Value) != "new2" {
		t.Fatalf("after view: %q", rec.Value)
	}
	// The snapshot is taken when View starts, not at fn's first read.
	err = s.View(ctx, func(r store.Reader) error {
		mustPut(t, s, "snap/2", []byte("newer"))
		rec, err := r.Get(ctx, "snap/2")
		if err != nil || string(rec.Value) != "new2" {
			return fmt.Errorf("view read after later commit = %q %v, want new2", rec.Value, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec := mustGet(t, s, "snap/2"); string(rec.Value) != "newer" {
		t.Fatalf("after view: %q", rec.Value)
	}
	// View returns fn's error as is.
	boom := errors.New("boom")
	if err := s.View(ctx, func(store.Reader) error { return boom }); err != boom {
		t.Fatalf("View returned %v, want fn's error", err)
	}
}

const (
	casWorkers = 8
	casIncs    = 50
)

// testCASCounter increments one counter from several goroutines by reading
// outside a transaction and writing conditioned on the version read — the
// ETag pattern callers use. Lost updates would show as a short count.
func testCASCounter(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, "cas", []byte("0"), store.Absent)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	runCAS(t, func() error {
		for {
			rec, err := s.Get(ctx, "cas")
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(string(rec.Value))
			if err != nil {
				return err
			}
			err = s.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put(ctx, "cas", []byte(strconv.Itoa(n+1)), rec.Version)
				return err
			})
			if errors.Is(err, store.ErrConflict) {
				continue
			}
			return err
		}
	})
	checkCount(t, s, "cas", casWorkers*casIncs)
}

// testCASCounterInTx increments inside one transaction (read then
// conditional write); the backend's isolation (and its own retries) must
// make every increment count.
func testCASCounterInTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	runCAS(t, func() error { return incrementInTx(ctx, s, "cas") })
	checkCount(t, s, "cas", casWorkers*casIncs)
}

// incrementInTx adds one to the counter at key (absent counts as 0) with a
// read and a conditional write in one transaction, retrying lost races.
func incrementInTx(ctx context.Context, s store.Store, key string) error {
	for {
		err := s.Update(ctx, func(tx store.Tx) error {
			n, cond := 0, store.Absent
			rec, err := tx.Get(ctx, key)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				if n, err = strconv.Atoi(string(rec.Value)); err != nil {
					return err
				}
				cond = rec.Version
			}
			_, err = tx.Put(ctx, key, []byte(strconv.Itoa(n+1)), cond)
			return err
		})
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return err
	}
}

func runCAS(t *testing.T, inc func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, casWorkers)
	for range casWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range casIncs {
				if err := inc(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
}

func checkCount(t *testing.T, s store.Store, key string, want int) {
	t.Helper()
	rec := mustGet(t, s, key)
	if got, err := strconv.Atoi(string(rec.Value)); err != nil || got != want {
		t.Fatalf("counter = %q, want %d", rec.Value, want)
	}
}

func testConcurrentDisjoint(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	var mu sync.Mutex
	versions := map[int64]int{}
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				var v int64
				err := s.Update(ctx, func(tx store.Tx) error {
					var err error
					v, err = tx.Put(ctx, fmt.Sprintf("dis/%d/%d", w, i), []byte("x"), store.Absent)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				versions[v]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("update: %v", err)
	}
	recs, err := s.List(ctx, "dis/", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != workers*each {
		t.Fatalf("%d records committed, want %d", len(recs), workers*each)
	}
	if len(versions) != workers*each {
		t.Fatalf("%d distinct versions for %d transactions; versions must be unique per transaction", len(versions), workers*each)
	}
}

func testLimits(t *testing.T, s store.Store) {
	ctx := context.Background()
	maxKey := strings.Repeat("k", store.MaxKeyLen)
	longKey := maxKey + "k"
	maxVal := bytes.Repeat([]byte{0xab}, store.MaxValueLen)
	cases := []struct {
		name  string
		key   string
		value []byte
		err   error
	}{
		{name: "ok/max-key", key: maxKey, value: []byte("x")},
		{name: "ok/max-value", key: "lim/big", value: maxVal},
		{name: "fail/key-too-long", key: longKey, value: []byte("x"), err: store.ErrTooLarge},
		{name: "fail/value-too-large", key: "lim/huge", value: append(maxVal[:len(maxVal):len(maxVal)], 0), err: store.ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := s.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Put(ctx, c.key, c.value, store.Any)
				return err
			})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("put = %v, want %v", err, c.err)
				}
				if len(c.key) <= store.MaxKeyLen {
					if _, err := s.Get(ctx, c.key); !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("oversized value stored: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("put: %v", err)
			}
			if rec := mustGet(t, s, c.key); !bytes.Equal(rec.Value, c.value) {
				t.Fatalf("value of %d bytes read back as %d bytes", len(c.value), len(rec.Value))
			}
		})
	}
	t.Run("fail/get-key-too-long", func(t *testing.T) {
		if _, err := s.Get(ctx, longKey); !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("get = %v, want ErrTooLarge", err)
		}
	})
	t.Run("fail/delete-key-too-long", func(t *testing.T) {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, longKey, store.Any) })
		if !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("delete = %v, want ErrTooLarge", err)
		}
	})
}

func testContext(t *testing.T, s store.Store) {
	mustPut(t, s, "ctx/k", []byte("v"))
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := context.Background()
	cases := []struct {
		name string
		run  func() error
	}{
		{"fail/get", func() error { _, err := s.Get(cancelled, "ctx/k"); return err }},
		{"fail/list", func() error { _, err := s.List(cancelled, "ctx/", store.ListOptions{}); return err }},
		{"fail/view", func() error {
			return s.View(cancelled, func(r store.Reader) error { _, err := r.Get(cancelled, "ctx/k"); return err })
		}},
		{"fail/update", func() error {
			return s.Update(cancelled, func(tx store.Tx) error {
				_, err := tx.Put(cancelled, "ctx/new", []byte("x"), store.Any)
				return err
			})
		}},
		{"fail/cancelled-during-fn", func() error {
			c, cancel := context.WithCancel(ctx)
			return s.Update(c, func(tx store.Tx) error {
				if _, err := tx.Put(c, "ctx/new", []byte("x"), store.Any); err != nil {
					return err
				}
				cancel()
				return nil
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.run(); !errors.Is(err, context.Canceled) {
				t.Fatalf("got %v, want context.Canceled", err)
			}
			if _, err := s.Get(ctx, "ctx/new"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("write under cancelled context committed: %v", err)
			}
		})
	}
	// The store is still usable afterwards.
	mustPut(t, s, "ctx/after", []byte("ok"))
}

func testBinarySafe(t *testing.T, s store.Store) {
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	cases := []struct {
		name  string
		key   string
		value []byte
	}{
		{"ok/nul-bytes", "bin/nul", []byte("\x00\x00a\x00")},
		{"ok/every-byte", "bin/every", every},
		{"ok/invalid-utf8", "bin/utf8", []byte{0xc3, 0x28, 0xff, 0xfe}},
		{"ok/empty", "bin/empty", []byte{}},
		{"ok/nil-is-empty", "bin/nil", nil},
		{"ok/binary-key", "bin/\x00\x01\xfe\xff", []byte("k")},
		{"ok/empty-key", "", []byte("root")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustPut(t, s, c.key, c.value)
			rec := mustGet(t, s, c.key)
			if !bytes.Equal(rec.Value, c.value) {
				t.Fatalf("read back %x, want %x", rec.Value, c.value)
			}
			if rec.Value == nil {
				t.Fatal("value of an existing record is nil, want non-nil (possibly empty)")
			}
		})
	}
	t.Run("ok/list-returns-exact-bytes", func(t *testing.T) {
		recs, err := s.List(context.Background(), "bin/every", store.ListOptions{})
		if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Value, every) {
			t.Fatalf("list: %v %d", err, len(recs))
		}
	})
}

func testTxAfterReturn(t *testing.T, s store.Store) {
	ctx := context.Background()
	var leaked store.Tx
	if err := s.Update(ctx, func(tx store.Tx) error { leaked = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := leaked.Put(ctx, "leak", []byte("x"), store.Any); err == nil {
		t.Fatal("Put on a finished transaction succeeded")
	}
	if _, err := s.Get(ctx, "leak"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("write through finished transaction visible: %v", err)
	}
	var leakedR store.Reader
	if err := s.View(ctx, func(r store.Reader) error { leakedR = r; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := leakedR.Get(ctx, "leak"); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get on a finished view = %v, want a usage error", err)
	}
}

// RunShared checks that several Store instances opened on the same storage
// (replicas sharing a database, processes sharing a file) agree: writes of
// one are visible to the others, versions stay unique, and preconditions
// hold under contention across instances. fresh is as for RunPersistence.
func RunShared(t *testing.T, fresh func(t *testing.T) (open func() store.Store)) {
	t.Helper()
	setup := func(t *testing.T) []store.Store {
		open := fresh(t)
		ss := []store.Store{open(), open()}
		t.Cleanup(func() {
			for _, s := range ss {
				s.Close()
			}
		})
		return ss
	}
	t.Run("Visibility", func(t *testing.T) {
		ss := setup(t)
		v := mustPut(t, ss[0], "sh/k", []byte("from-0"))
		if rec := mustGet(t, ss[1], "sh/k"); string(rec.Value) != "from-0" || rec.Version != v {
			t.Fatalf("instance 1 reads {%q %d}, want {from-0 %d}", rec.Value, rec.Version, v)
		}
		v2 := mustPut(t, ss[1], "sh/k", []byte("from-1"))
		if v2 <= v {
			t.Fatalf("version from instance 1 = %d, want > %d", v2, v)
		}
	})
	t.Run("CASCounter", func(t *testing.T) {
		ss := setup(t)
		sharedCAS(t, ss, func(s store.Store) error {
			ctx := context.Background()
			for {
				rec, err := s.Get(ctx, "sh/cas")
				n, cond := 0, store.Absent
				switch {
				case errors.Is(err, store.ErrNotFound):
				case err != nil:
					return err
				default:
					if n, err = strconv.Atoi(string(rec.Value)); err != nil {
						return err
					}
					cond = rec.Version
				}
				err = s.Update(ctx, func(tx store.Tx) error {
					_, err := tx.Put(ctx, "sh/cas", []byte(strconv.Itoa(n+1)), cond)
					return err
				})
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				return err
			}
		})
		checkCount(t, ss[0], "sh/cas", casWorkers*casIncs)
	})
	t.Run("CASCounterInTx", func(t *testing.T) {
		ss := setup(t)
		sharedCAS(t, ss, func(s store.Store) error { return incrementInTx(context.Background(), s, "sh/cas") })
		checkCount(t, ss[1], "sh/cas", casWorkers*casIncs)
	})
	t.Run("UniqueVersions", func(t *testing.T) {
		ss := setup(t)
		ctx := context.Background()
		const each = 25
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, 2*len(ss))
		for i, s := range ss {
			for g := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range each {
						var v int64
						err := s.Update(ctx, func(tx store.Tx) error {
							var err error
							v, err = tx.Put(ctx, fmt.Sprintf("sh/u/%d/%d/%d", i, g, j), []byte("x"), store.Absent)
							return err
						})
						if err != nil {
							errs <- err
							return
						}
						mu.Lock()
						if seen[v] {
							mu.Unlock()
							errs <- fmt.Errorf("version %d handed to two transactions", v)
							return
						}
						seen[v] = true
						mu.Unlock()
					}
				}()
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		recs, err := ss[0].List(ctx, "sh/u/", store.ListOptions{})
		if err != nil || len(recs) != 2*len(ss)*each {
			t.Fatalf("list: %d records, err %v; want %d", len(recs), err, 2*len(ss)*each)
		}
	})
}

// sharedCAS runs casWorkers goroutines, spread over the instances, each
// calling inc casIncs times.
func sharedCAS(t *testing.T, ss []store.Store, inc func(s store.Store) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, casWorkers)
	for w := range casWorkers {
		s := ss[w%len(ss)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range casIncs {
				if err := inc(s); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
}
