package seal

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSealOpenRoundTrip(t *testing.T) {
	root, _ := newFileRoot(t)
	e := NewEnvelope(newStore(t), root)
	tests := []struct {
		name, scope, aad string
		plaintext        []byte
	}{
		{name: "ok/empty-plaintext", scope: "v1", aad: "secret/a/1", plaintext: nil},
		{name: "ok/empty-aad", scope: "v1", plaintext: []byte("x")},
		{name: "ok/1KiB", scope: "sys", aad: "identity/signing", plaintext: bytes.Repeat([]byte{1, 2, 3, 4}, 256)},
		{name: "ok/binary", scope: "0b3f5c1e-2f6a-4c5e-9d1c-8a7b6c5d4e3f", aad: "\x00\xff", plaintext: []byte{0, 0xff, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ct, err := e.Seal(context.Background(), tc.scope, tc.plaintext, []byte(tc.aad))
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.plaintext) >= 4 && bytes.Contains(ct, tc.plaintext) {
				t.Fatal("ciphertext contains the plaintext")
			}
			if len(ct) != valueOverhead+len(tc.plaintext) {
				t.Fatalf("ciphertext length %d, want %d", len(ct), valueOverhead+len(tc.plaintext))
			}
			pt, err := e.Open(context.Background(), tc.scope, ct, []byte(tc.aad))
			if err != nil || !bytes.Equal(pt, tc.plaintext) {
				t.Fatalf("Open = %q, %v", pt, err)
			}
			ct2, _ := e.Seal(context.Background(), tc.scope, tc.plaintext, []byte(tc.aad))
			if bytes.Equal(ct, ct2) {
				t.Fatal("two seals of the same value are identical (nonce reuse?)")
			}
		})
	}
}

func TestOpenRejects(t *testing.T) {
	root, _ := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	a := mustSeal(t, e, "vaultA", "password-A", "secrets/db/1")
	b := mustSeal(t, e, "vaultA", "password-B", "secrets/web/1")
	mustSeal(t, e, "vaultB", "other", "secrets/db/1")
	flip := func(ct []byte, i int) []byte {
		c := bytes.Clone(ct)
		c[i] ^= 0x01
		return c
	}
	tests := []struct {
		name  string
		scope string
		ct    []byte
		aad   string
	}{
		{name: "fail/wrong-aad", scope: "vaultA", ct: a, aad: "secrets/db/2"},
		{name: "fail/swapped-between-names", scope: "vaultA", ct: b, aad: "secrets/db/1"},
		{name: "fail/other-scope", scope: "vaultB", ct: a, aad: "secrets/db/1"},
		{name: "fail/scope-without-key", scope: "vaultC", ct: a, aad: "secrets/db/1"},
		{name: "fail/flipped-format", scope: "vaultA", ct: flip(a, 0), aad: "secrets/db/1"},
		{name: "fail/flipped-dek-id", scope: "vaultA", ct: flip(a, 3), aad: "secrets/db/1"},
		{name: "fail/flipped-nonce", scope: "vaultA", ct: flip(a, valueHeaderLen+2), aad: "secrets/db/1"},
		{name: "fail/flipped-body", scope: "vaultA", ct: flip(a, valueHeaderLen+13), aad: "secrets/db/1"},
		{name: "fail/flipped-tag", scope: "vaultA", ct: flip(a, len(a)-1), aad: "secrets/db/1"},
		{name: "fail/truncated", scope: "vaultA", ct: a[:len(a)-1], aad: "secrets/db/1"},
		{name: "fail/too-short", scope: "vaultA", ct: a[:valueOverhead-1], aad: "secrets/db/1"},
		{name: "fail/empty", scope: "vaultA", ct: nil, aad: "secrets/db/1"},
		// length prefixes: moving bytes between scope and aad must not help
		{name: "fail/aad-boundary", scope: "vaultA", ct: a, aad: "secrets/db/1\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := e.Open(context.Background(), tc.scope, tc.ct, []byte(tc.aad))
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open err = %v, want ErrOpen", err)
			}
			if pt != nil {
				t.Fatal("Open returned plaintext on failure")
			}
			if msg := err.Error(); strings.Contains(msg, "password") || !strings.Contains(msg, "does not authenticate") {
				t.Fatalf("error message %q", msg)
			}
		})
	}
	if got := mustOpen(t, e, "vaultA", a, "secrets/db/1"); got != "password-A" {
		t.Fatalf("original no longer opens: %q", got)
	}
}

func TestInputLimits(t *testing.T) {
	root, _ := newFileRoot(t)
	e := NewEnvelope(newStore(t), root)
	ctx := context.Background()
	tests := []struct {
		name  string
		scope string
		pt    []byte
		aad   []byte
	}{
		{name: "fail/empty-scope", scope: ""},
		{name: "fail/slash-in-scope", scope: "a/b"},
		{name: "fail/space-in-scope", scope: "a b"},
		{name: "fail/non-ascii-scope", scope: "vä"},
		{name: "fail/long-scope", scope: strings.Repeat("s", MaxScopeLen+1)},
		{name: "fail/long-aad", scope: "s", aad: make([]byte, MaxAADLen+1)},
		{name: "fail/long-plaintext", scope: "s", pt: make([]byte, MaxPlaintextLen+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.Seal(ctx, tc.scope, tc.pt, tc.aad); err == nil {
				t.Fatal("Seal accepted it")
			}
		})
	}
	t.Run("ok/max-plaintext-fits-a-record", func(t *testing.T) {
		ct, err := e.Seal(ctx, "s", make([]byte, MaxPlaintextLen), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Open(ctx, "s", ct, nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestForget(t *testing.T) {
	root, _ := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	ctx := context.Background()
	ct := mustSeal(t, e, "vaultA", "v", "n/1")
	keep := mustSeal(t, e, "vaultB", "w", "n/1")
	if err := e.Forget(ctx, "vaultA"); err != nil {
		t.Fatal(err)
	}
	if _, ok := wrappedDEKs(t, st)["vaultA"]; ok {
		t.Fatal("wrapped DEK still stored after Forget")
	}
	_, err := e.Open(ctx, "vaultA", ct, []byte("n/1"))
	if !errors.Is(err, ErrOpen) || !errors.Is(err, ErrNoDataKey) {
		t.Fatalf("Open after Forget: %v, want ErrOpen and ErrNoDataKey", err)
	}
	// A new key for the same scope must not open the old ciphertext either.
	mustSeal(t, e, "vaultA", "new", "n/2")
	if _, err := e.Open(ctx, "vaultA", ct, []byte("n/1")); !errors.Is(err, ErrOpen) {
		t.Fatalf("Open with the scope's new key: %v, want ErrOpen", err)
	}
	if got := mustOpen(t, e, "vaultB", keep, "n/1"); got != "w" {
		t.Fatalf("other scope: %q", got)
	}
	if err := e.Forget(ctx, "never-created"); err != nil {
		t.Fatalf("Forget of a scope without key: %v", err)
	}
}

// Two Envelopes on two connections to one database act like two processes.
func TestSharedStoreAcrossProcesses(t *testing.T) {
	root, path := newFileRoot(t)
	st1, dbPath := newStorePath(t)
	st2 := openStore(t, dbPath)
	rootB, _, err := LoadOrCreateRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	var mu sync.Mutex
	clockB := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a := NewEnvelope(st1, root)
	b := NewEnvelope(st2, rootB, WithNow(clockB), WithCacheTTL(time.Minute))
	ctx := context.Background()

	ct := mustSeal(t, a, "vault1", "s3cret", "x/1")
	if got := mustOpen(t, b, "vault1", ct, "x/1"); got != "s3cret" {
		t.Fatalf("B opened %q", got)
	}
	if err := a.Forget(ctx, "vault1"); err != nil {
		t.Fatal(err)
	}
	// B still holds the key in cache; once its TTL passes it must re-read.
	mu.Lock()
	now = now.Add(time.Minute + time.Second)
	mu.Unlock()
	if _, err := b.Open(ctx, "vault1", ct, []byte("x/1")); !errors.Is(err, ErrOpen) {
		t.Fatalf("B Open after A's Forget and TTL: %v, want ErrOpen", err)
	}
	// Seal always checks the store: B creates a fresh key A can read.
	ct2 := mustSeal(t, b, "vault1", "again", "x/2")
	if got := mustOpen(t, a, "vault1", ct2, "x/2"); got != "again" {
		t.Fatalf("A opened %q", got)
	}
}

func TestSealAfterForgetElsewhereUsesNewKey(t *testing.T) {
	root, _ := newFileRoot(t)
	st1, dbPath := newStorePath(t)
	a := NewEnvelope(st1, root)
	b := NewEnvelope(openStore(t, dbPath), root)
	ctx := context.Background()
	mustSeal(t, b, "v", "one", "1") // B caches the key
	if err := a.Forget(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	ct := mustSeal(t, b, "v", "two", "2") // must not use the forgotten cached key
	if got := mustOpen(t, a, "v", ct, "2"); got != "two" {
		t.Fatalf("A opened %q", got)
	}
}

func TestDEKCreatedOnceUnderConcurrency(t *testing.T) {
	root, _ := newFileRoot(t)
	st1, dbPath := newStorePath(t)
	envs := []*Envelope{NewEnvelope(st1, root), NewEnvelope(openStore(t, dbPath), root)}
	ctx := context.Background()
	const perEnv = 16
	type result struct {
		env int
		ct  []byte
	}
	results := make(chan result, 2*perEnv)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, e := range envs {
		for range perEnv {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ct, err := e.Seal(ctx, "race", []byte("value"), []byte("aad"))
				if err != nil {
					t.Errorf("Seal: %v", err)
					return
				}
				results <- result{i, ct}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(results)
	ids := map[string]bool{}
	for r := range results {
		ids[string(r.ct[1:valueHeaderLen])] = true
		// every ciphertext opens in the other "process"
		other := envs[1-r.env]
		if got := mustOpen(t, other, "race", r.ct, "aad"); got != "value" {
			t.Fatalf("opened %q", got)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("values sealed under %d different data keys, want 1", len(ids))
	}
	if n := len(wrappedDEKs(t, st1)); n != 1 {
		t.Fatalf("%d wrapped DEKs stored, want 1", n)
	}
}

func TestCacheIsBounded(t *testing.T) {
	root, _ := newFileRoot(t)
	e := NewEnvelope(newStore(t), root, WithCacheSize(3))
	cts := map[string][]byte{}
	for _, s := range []string{"a", "b", "c", "d", "e"} {
		cts[s] = mustSeal(t, e, s, "v-"+s, "")
	}
	if n := e.cache.len(); n != 3 {
		t.Fatalf("cache holds %d keys, want 3", n)
	}
	for s, ct := range cts { // evicted keys come back from the store
		if got := mustOpen(t, e, s, ct, ""); got != "v-"+s {
			t.Fatalf("%s: %q", s, got)
		}
	}
}

func TestWrappedDEKBoundToScope(t *testing.T) {
	root, _ := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	ctx := context.Background()
	mustSeal(t, e, "a", "x", "")
	ctB := mustSeal(t, e, "b", "y", "")
	// Copy a's wrapped key over b's: unwrapping under scope b must fail.
	wa := wrappedDEKs(t, st)["a"]
	if err := putRaw(st, DEKPrefix+"b", wa); err != nil {
		t.Fatal(err)
	}
	fresh := NewEnvelope(st, root)
	if _, err := fresh.Open(ctx, "b", ctB, nil); err == nil || !strings.Contains(err.Error(), "does not unwrap") {
		t.Fatalf("Open with a moved wrapped key: %v", err)
	}
}
