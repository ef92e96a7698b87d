package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

type rec struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// putRaw writes bytes that PutJSON would never write, to exercise decoding.
func putRaw(t *testing.T, st store.Store, key, value string) {
	t.Helper()
	if err := st.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.Put(context.Background(), key, []byte(value), store.Any)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	var v1, v2 int64
	if err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		if v1, err = store.PutJSON(ctx, tx, "r/a", rec{Name: "a", Count: 1}, store.Absent); err != nil {
			return err
		}
		// Reads inside the transaction see its own write.
		got, ver, err := store.GetJSON[rec](ctx, tx, "r/a")
		if err != nil || got.Count != 1 || ver != v1 {
			t.Fatalf("in-tx GetJSON = %+v, %d, %v; want count 1 at %d", got, ver, err, v1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v1 <= 0 {
		t.Fatalf("PutJSON version = %d, want > 0", v1)
	}
	if err := st.Update(ctx, func(tx store.Tx) error {
		var err error
		v2, err = store.PutJSON(ctx, tx, "r/a", &rec{Name: "a", Count: 2}, v1)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	got, ver, err := store.GetJSON[rec](ctx, st, "r/a")
	if err != nil || *got != (rec{Name: "a", Count: 2}) || ver != v2 || v2 <= v1 {
		t.Fatalf("GetJSON = %+v, %d, %v; want {a 2} at %d > %d", got, ver, err, v2, v1)
	}
	var into rec
	ver, err = store.LoadJSON(ctx, st, "r/a", &into)
	if err != nil || into != (rec{Name: "a", Count: 2}) || ver != v2 {
		t.Fatalf("LoadJSON = %+v, %d, %v; want {a 2} at %d", into, ver, err, v2)
	}
	recs, err := st.List(ctx, "r/", store.ListOptions{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("List = %d records, %v", len(recs), err)
	}
	dec, err := store.DecodeJSON[rec](recs[0])
	if err != nil || *dec != (rec{Name: "a", Count: 2}) {
		t.Fatalf("DecodeJSON = %+v, %v", dec, err)
	}
}

func TestPutJSONErrors(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		value     any
		ifVersion int64
		want      error
	}{
		{name: "ok/any", value: rec{Name: "b"}, ifVersion: store.Any},
		{name: "fail/absent-but-exists", value: rec{Name: "b"}, ifVersion: store.Absent, want: store.ErrConflict},
		{name: "fail/stale-version", value: rec{Name: "b"}, ifVersion: math.MaxInt64, want: store.ErrConflict},
		{name: "fail/too-large", value: strings.Repeat("x", store.MaxValueLen), ifVersion: store.Any, want: store.ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			putRaw(t, st, "r/b", `{"name":"old"}`)
			err := st.Update(ctx, func(tx store.Tx) error {
				_, err := store.PutJSON(ctx, tx, "r/b", c.value, c.ifVersion)
				return err
			})
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("PutJSON err = %v, want %v", err, c.want)
			}
		})
	}

	t.Run("fail/unencodable", func(t *testing.T) {
		st := openStore(t)
		err := st.Update(ctx, func(tx store.Tx) error {
			_, err := store.PutJSON(ctx, tx, "r/c", func() {}, store.Any)
			return err
		})
		var ute *json.UnsupportedTypeError
		if !errors.As(err, &ute) || !strings.Contains(err.Error(), "r/c") {
			t.Fatalf("PutJSON(func) err = %v, want a json.UnsupportedTypeError naming the key", err)
		}
		if _, err := st.Get(ctx, "r/c"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get after failed PutJSON = %v, want ErrNotFound", err)
		}
	})
}

func TestGetJSONErrors(t *testing.T) {
	ctx := context.Background()
	const secret = "s3cr3t-value-7731"
	cases := []struct {
		name    string
		stored  string // "" leaves the key absent
		want    error
		wantMsg string
	}{
		{name: "fail/missing", want: store.ErrNotFound},
		{name: "fail/syntax", stored: `{"name":"` + secret, wantMsg: "store: decode r/x: invalid JSON at offset"},
		{name: "fail/not-json", stored: secret, wantMsg: "store: decode r/x: invalid JSON at offset"},
		{name: "fail/wrong-type-string", stored: `{"count":"` + secret + `"}`, wantMsg: "store: decode r/x: count is a JSON string, want Go int"},
		{name: "fail/wrong-type-number", stored: `{"name":7731}`, wantMsg: "store: decode r/x: name is a JSON number, want Go string"},
		{name: "fail/wrong-top-level", stored: `[1]`, wantMsg: "store: decode r/x: value is a JSON array, want Go store_test.rec"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openStore(t)
			if c.stored != "" {
				putRaw(t, st, "r/x", c.stored)
			}
			check := func(what string, err error) {
				t.Helper()
				if c.want != nil {
					if !errors.Is(err, c.want) {
						t.Fatalf("%s err = %v, want %v", what, err, c.want)
					}
					return
				}
				var de *store.DecodeError
				if !errors.As(err, &de) || de.Key != "r/x" {
					t.Fatalf("%s err = %v, want a *store.DecodeError for r/x", what, err)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, c.wantMsg) {
					t.Fatalf("%s err = %q, want prefix %q", what, msg, c.wantMsg)
				}
				if strings.Contains(msg, "s3cr3t") || strings.Contains(msg, "7731") {
					t.Fatalf("%s err = %q quotes the stored value", what, msg)
				}
			}
			got, ver, err := store.GetJSON[rec](ctx, st, "r/x")
			if got != nil || ver != 0 {
				t.Fatalf("GetJSON on error = %+v, %d; want nil, 0", got, ver)
			}
			check("GetJSON", err)
			ver, err = store.LoadJSON(ctx, st, "r/x", new(rec))
			if ver != 0 {
				t.Fatalf("LoadJSON version on error = %d, want 0", ver)
			}
			check("LoadJSON", err)
			if c.stored != "" {
				got, err := store.DecodeJSON[rec](store.Record{Key: "r/x", Value: []byte(c.stored), Version: 1})
				if got != nil {
					t.Fatalf("DecodeJSON on error = %+v, want nil", got)
				}
				check("DecodeJSON", err)
			}
		})
	}
}
