package seal

import (
	"bytes"
	"context"
	"testing"
)

// FuzzOpen feeds arbitrary ciphertexts, scopes and aads to Open: it must
// never panic, and nothing but the genuine (ciphertext, scope, aad) opens.
func FuzzOpen(f *testing.F) {
	root, err := RootFromBytes(bytes.Repeat([]byte{9}, 32))
	if err != nil {
		f.Fatal(err)
	}
	st := newStore(f)
	e := NewEnvelope(st, root)
	ctx := context.Background()
	good, err := e.Seal(ctx, "fuzz", []byte("plaintext"), []byte("aad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "fuzz", []byte("aad"))
	f.Add(good[:valueOverhead], "fuzz", []byte("aad"))
	f.Add([]byte{formatV1}, "fuzz", []byte(nil))
	f.Add([]byte{}, "", []byte(nil))
	f.Add(bytes.Repeat([]byte{0xff}, 64), "other", []byte("aad"))
	f.Fuzz(func(t *testing.T, ct []byte, scope string, aad []byte) {
		pt, err := e.Open(ctx, scope, ct, aad)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		if scope != "fuzz" || !bytes.Equal(aad, []byte("aad")) || !bytes.Equal(ct, good) || string(pt) != "plaintext" {
			t.Fatalf("forged ciphertext opened: scope %q aad %q", scope, aad)
		}
	})
}

func BenchmarkSeal1KiB(b *testing.B) {
	root, _ := RootFromBytes(bytes.Repeat([]byte{9}, 32))
	e := NewEnvelope(newStore(b), root)
	ctx := context.Background()
	pt, aad := make([]byte, 1024), []byte("secrets/name/version")
	if _, err := e.Seal(ctx, "bench", pt, aad); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Seal(ctx, "bench", pt, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen1KiB(b *testing.B) {
	root, _ := RootFromBytes(bytes.Repeat([]byte{9}, 32))
	e := NewEnvelope(newStore(b), root)
	ctx := context.Background()
	aad := []byte("secrets/name/version")
	ct, err := e.Seal(ctx, "bench", make([]byte, 1024), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Open(ctx, "bench", ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}
