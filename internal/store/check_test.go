package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func TestPrefixEnd(t *testing.T) {
	cases := []struct {
		name   string
		prefix string
		end    string
		ok     bool
	}{
		{name: "ok/simple", prefix: "a/", end: "a0", ok: true},
		{name: "ok/trailing-ff", prefix: "a\xff", end: "b", ok: true},
		{name: "ok/trailing-ff-ff", prefix: "a\x01\xff\xff", end: "a\x02", ok: true},
		{name: "ok/nul", prefix: "\x00", end: "\x01", ok: true},
		{name: "fail/empty-unbounded", prefix: ""},
		{name: "fail/all-ff-unbounded", prefix: "\xff\xff"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			end, ok := PrefixEnd(c.prefix)
			if end != c.end || ok != c.ok {
				t.Fatalf("PrefixEnd(%q) = %q, %v; want %q, %v", c.prefix, end, ok, c.end, c.ok)
			}
		})
	}
}

// FuzzPrefixEnd: every key with the prefix lies in [prefix, end) and the
// end itself does not carry the prefix.
func FuzzPrefixEnd(f *testing.F) {
	f.Add("a/", "x")
	f.Add("\xff", "\x00")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, prefix, suffix string) {
		key := prefix + suffix
		end, ok := PrefixEnd(prefix)
		if key < prefix {
			t.Fatalf("%q < prefix %q", key, prefix)
		}
		if ok {
			if key >= end {
				t.Fatalf("key %q not below end %q of prefix %q", key, end, prefix)
			}
			if strings.HasPrefix(end, prefix) {
				t.Fatalf("end %q still has prefix %q", end, prefix)
			}
		} else if strings.Count(prefix, "\xff") != len(prefix) {
			t.Fatalf("prefix %q reported unbounded", prefix)
		}
	})
}

func TestChecks(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want error // nil = ok; errAny = some error
	}{
		{name: "ok/max-key", err: CheckKey(strings.Repeat("k", MaxKeyLen))},
		{name: "fail/long-key", err: CheckKey(strings.Repeat("k", MaxKeyLen+1)), want: ErrTooLarge},
		{name: "ok/max-value", err: CheckValue(bytes.Repeat([]byte{1}, MaxValueLen))},
		{name: "fail/large-value", err: CheckValue(make([]byte, MaxValueLen+1)), want: ErrTooLarge},
		{name: "ok/precondition-any", err: CheckPrecondition(Any)},
		{name: "ok/precondition-absent", err: CheckPrecondition(Absent)},
		{name: "ok/precondition-version", err: CheckPrecondition(42)},
		{name: "fail/precondition-negative", err: CheckPrecondition(-2), want: errAny},
		{name: "fail/list-negative-limit", err: CheckList("a", ListOptions{Limit: -1}), want: errAny},
		{name: "fail/list-long-after", err: CheckList("a", ListOptions{After: strings.Repeat("k", MaxKeyLen+1)}), want: ErrTooLarge},
		{name: "ok/put-any", err: CheckPut("k", []byte("v"), Any)},
		{name: "ok/put-absent", err: CheckPut("k", nil, Absent)},
		{name: "fail/put-long-key", err: CheckPut(strings.Repeat("k", MaxKeyLen+1), nil, Any), want: ErrTooLarge},
		{name: "fail/put-large-value", err: CheckPut("k", make([]byte, MaxValueLen+1), Any), want: ErrTooLarge},
		{name: "fail/put-bad-precondition", err: CheckPut("k", nil, -2), want: errAny},
		{name: "ok/delete-any", err: CheckDelete("k", Any)},
		{name: "ok/delete-version", err: CheckDelete("k", 7)},
		{name: "fail/delete-absent", err: CheckDelete("k", Absent), want: ErrConflict},
		{name: "fail/delete-long-key", err: CheckDelete(strings.Repeat("k", MaxKeyLen+1), Absent), want: ErrTooLarge},
		{name: "fail/delete-bad-precondition", err: CheckDelete("k", -2), want: errAny},
		{name: "ok/put-wrote", err: PutOutcome(1)},
		{name: "fail/put-wrote-nothing", err: PutOutcome(0), want: ErrConflict},
		{name: "ok/delete-any-missing", err: DeleteOutcome(Any, 0)},
		{name: "ok/delete-version-deleted", err: DeleteOutcome(3, 1)},
		{name: "fail/delete-version-missed", err: DeleteOutcome(3, 0), want: ErrConflict},
		{name: "ok/schema-current", err: CheckSchemaVersion(3, 3)},
		{name: "ok/schema-older", err: CheckSchemaVersion(1, 3)},
		{name: "fail/schema-too-new", err: CheckSchemaVersion(4, 3), want: ErrSchemaTooNew},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			switch {
			case c.want == nil && c.err != nil:
				t.Fatalf("got %v, want nil", c.err)
			case c.want == errAny && c.err == nil:
				t.Fatal("got nil, want an error")
			case c.want != nil && c.want != errAny && !errors.Is(c.err, c.want):
				t.Fatalf("got %v, want %v", c.err, c.want)
			}
		})
	}
}

var errAny = errors.New("any")

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	cases := []struct {
		name  string
		fs    fstest.MapFS
		names []string
		ok    bool
	}{
		{name: "ok/ordered", fs: fstest.MapFS{"0002_b.sql": file("B"), "0001_a.sql": file("A"), "README": file("x")}, names: []string{"a", "b"}, ok: true},
		{name: "ok/unpadded", fs: fstest.MapFS{"1_a.sql": file("A"), "2_b.sql": file("B"), "10_c.txt": file("x")}, names: []string{"a", "b"}, ok: true},
		{name: "fail/gap", fs: fstest.MapFS{"0001_a.sql": file("A"), "0003_c.sql": file("C")}},
		{name: "fail/duplicate", fs: fstest.MapFS{"0001_a.sql": file("A"), "1_b.sql": file("B")}},
		{name: "fail/zero", fs: fstest.MapFS{"0000_a.sql": file("A")}},
		{name: "fail/no-name", fs: fstest.MapFS{"0001.sql": file("A")}},
		{name: "fail/not-a-number", fs: fstest.MapFS{"x_a.sql": file("A")}},
		{name: "fail/empty", fs: fstest.MapFS{}},
		{name: "fail/too-large", fs: fstest.MapFS{"0001_a.sql": &fstest.MapFile{Data: make([]byte, maxMigrationFile+1)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ms, err := LoadMigrations(c.fs)
			if c.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				return
			}
			if len(ms) != len(c.names) {
				t.Fatalf("got %d migrations, want %d", len(ms), len(c.names))
			}
			for i, m := range ms {
				if m.Version != i+1 || m.Name != c.names[i] || m.SQL != strings.ToUpper(c.names[i]) {
					t.Fatalf("migration %d = %+v", i, m)
				}
			}
		})
	}
}

func TestMigrationTarget(t *testing.T) {
	cases := []struct {
		name      string
		target, n int
		want      int
	}{
		{name: "ok/zero-means-all", target: 0, n: 5, want: 5},
		{name: "ok/partial", target: 2, n: 5, want: 2},
		{name: "ok/exact", target: 5, n: 5, want: 5},
		{name: "fail/beyond-known-clamped", target: 9, n: 5, want: 5},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := MigrationTarget(c.target, c.n); got != c.want {
				t.Fatalf("MigrationTarget(%d, %d) = %d, want %d", c.target, c.n, got, c.want)
			}
		})
	}
}
