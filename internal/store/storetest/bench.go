package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
)

// The benchmarks every backend runs on a fresh store, so their numbers
// compare across backends.

// BenchPut measures one single-Put transaction of a 512-byte value.
func BenchPut(b *testing.B, s store.Store) {
	ctx := context.Background()
	val := make([]byte, 512)
	i := 0
	for b.Loop() {
		key := fmt.Sprintf("bench/%08d", i)
		i++
		if err := s.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, key, val, store.Any)
			return err
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchGet measures a Get among 1000 keys.
func BenchGet(b *testing.B, s store.Store) {
	seedBench(b, s, 1000)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, fmt.Sprintf("bench/%08d", i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchList measures a 100-record List among 1000 keys.
func BenchList(b *testing.B, s store.Store) {
	seedBench(b, s, 1000)
	ctx := context.Background()
	for b.Loop() {
		recs, err := s.List(ctx, "bench/", store.ListOptions{Limit: 100})
		if err != nil || len(recs) != 100 {
			b.Fatal(err, len(recs))
		}
	}
}

func seedBench(b *testing.B, s store.Store, n int) {
	ctx := context.Background()
	val := make([]byte, 512)
	if err := s.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			if _, err := tx.Put(ctx, fmt.Sprintf("bench/%08d", i), val, store.Any); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
}
