package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
)

// A snapshot taken while writers run holds exactly the records committed
// before it: every record of a committed transaction or none of it. The
// source is read-only to the snapshot: it refuses to write over a file.
func TestSnapshotWhileWriting(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	s, err := Open(ctx, live)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(i int) error {
		return s.Update(ctx, func(tx store.Tx) error {
			for _, k := range []string{"a/", "b/"} { // a pair per transaction
				if _, err := tx.Put(ctx, fmt.Sprintf("%s%05d", k, i), []byte("v"), store.Any); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for i := range 100 {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 100; i < 400; i++ {
			if err := put(i); err != nil {
				t.Error(err)
				return
			}
		}
	})
	snap := filepath.Join(dir, "snap.db")
	if err := Snapshot(ctx, live, snap); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if fi, err := os.Stat(snap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("snapshot file: %v %v", fi, err)
	}
	if err := Snapshot(ctx, live, snap); err == nil {
		t.Fatal("a snapshot overwrote an existing file")
	}
	c, err := Open(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := c.List(ctx, "a/", store.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.List(ctx, "b/", store.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) || len(a) < 100 || len(a) > 400 {
		t.Fatalf("snapshot holds %d a/ and %d b/ records: a torn or empty copy", len(a), len(b))
	}
}

func TestCheckFindsCorruption(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, fmt.Sprintf("k/%05d", i), make([]byte, 300), store.Any)
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("a healthy database fails the check: %v", err)
	}
	s.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Scribble over the middle pages (past the header and schema page).
	for i := 8192; i < len(b)-4096 && i < 8192+8192; i++ {
		b[i] = 0xA5
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, path)
	if err == nil {
		defer s.Close()
		err = s.Check(ctx)
	}
	if err == nil {
		t.Fatal("a scribbled-over database passes the check")
	}
}
