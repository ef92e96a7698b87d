package seal

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

// newStorePath opens a fresh SQLite store file; more opens of the same path
// behave like other processes sharing it.
func newStorePath(t testing.TB) (store.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyhaven.db")
	return openStore(t, path), path
}

func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("open sqlite store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newStore(t testing.TB) store.Store {
	st, _ := newStorePath(t)
	return st
}

// newFileRoot creates a keyring file in a temp dir.
func newFileRoot(t testing.TB) (*Root, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys", "root-keyring.json")
	r, created, err := LoadOrCreateRoot(path)
	if err != nil {
		t.Fatalf("LoadOrCreateRoot: %v", err)
	}
	if !created {
		t.Fatalf("LoadOrCreateRoot: created = false for a new path")
	}
	return r, path
}

func mustSeal(t testing.TB, e *Envelope, scope, pt, aad string) []byte {
	t.Helper()
	ct, err := e.Seal(context.Background(), scope, []byte(pt), []byte(aad))
	if err != nil {
		t.Fatalf("Seal(%q, %q): %v", scope, aad, err)
	}
	return ct
}

func mustOpen(t testing.TB, e *Envelope, scope string, ct []byte, aad string) string {
	t.Helper()
	pt, err := e.Open(context.Background(), scope, ct, []byte(aad))
	if err != nil {
		t.Fatalf("Open(%q, %q): %v", scope, aad, err)
	}
	return string(pt)
}

// wrappedDEKs returns scope -> wrapped record value.
func wrappedDEKs(t testing.TB, st store.Store) map[string][]byte {
	t.Helper()
	recs, err := st.List(context.Background(), DEKPrefix, store.ListOptions{})
	if err != nil {
		t.Fatalf("list DEKs: %v", err)
	}
	m := make(map[string][]byte, len(recs))
	for _, r := range recs {
		m[r.Key[len(DEKPrefix):]] = r.Value
	}
	return m
}

func putRaw(st store.Store, key string, val []byte) error {
	ctx := context.Background()
	return st.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Put(ctx, key, val, store.Any)
		return err
	})
}
