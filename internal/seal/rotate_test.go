package seal

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

type sealed struct {
	scope, aad, plaintext string
	ct                    []byte
}

// sealMany seals one value in each of n scopes.
func sealMany(t *testing.T, e *Envelope, n int) []sealed {
	t.Helper()
	out := make([]sealed, 0, n)
	for i := range n {
		s := sealed{scope: fmt.Sprintf("vault-%03d", i), aad: fmt.Sprintf("secrets/s%d/1", i), plaintext: fmt.Sprintf("value %d", i)}
		s.ct = mustSeal(t, e, s.scope, s.plaintext, s.aad)
		out = append(out, s)
	}
	return out
}

func openAll(t *testing.T, e *Envelope, vals []sealed) {
	t.Helper()
	for _, v := range vals {
		if got := mustOpen(t, e, v.scope, v.ct, v.aad); got != v.plaintext {
			t.Fatalf("%s opened to %q", v.scope, got)
		}
	}
}

func rootVersionOf(wrapped []byte) uint32 { return binary.BigEndian.Uint32(wrapped[1:5]) }

func TestRotateRoot(t *testing.T) {
	root, path := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	ctx := context.Background()
	vals := sealMany(t, e, rotatePage+20) // more than one List page
	before := wrappedDEKs(t, st)

	rep, err := e.RotateRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.NewVersion != 2 || rep.Rewrapped != len(vals) || fmt.Sprint(rep.Retired) != "[1]" {
		t.Fatalf("report %+v", rep)
	}
	after := wrappedDEKs(t, st)
	for scope, w := range after {
		if bytes.Equal(w, before[scope]) {
			t.Fatalf("wrapped DEK of %s unchanged", scope)
		}
		if rootVersionOf(w) != 2 {
			t.Fatalf("wrapped DEK of %s names root v%d", scope, rootVersionOf(w))
		}
	}
	// Values were not rewritten, and still open: in this process, in a fresh
	// one loading the keyring from disk, and sealing new values works.
	openAll(t, e, vals)
	reloaded, _, err := LoadOrCreateRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(reloaded.Versions()) != "[2]" || reloaded.ActiveVersion() != 2 {
		t.Fatalf("keyring on disk: %v", reloaded)
	}
	fresh := NewEnvelope(st, reloaded)
	openAll(t, fresh, vals)
	ct := mustSeal(t, fresh, "new-vault", "n", "a")
	if got := mustOpen(t, e, "new-vault", ct, "a"); got != "n" {
		t.Fatal(got)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring mode after rotation %04o", fi.Mode().Perm())
	}
}

// A process holding the old keyring in memory finds the new version on disk.
func TestOtherProcessPicksUpRotatedKeyring(t *testing.T) {
	rootA, path := newFileRoot(t)
	rootB, _, err := LoadOrCreateRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	st1, dbPath := newStorePath(t)
	a := NewEnvelope(st1, rootA)
	b := NewEnvelope(openStore(t, dbPath), rootB)
	vals := sealMany(t, a, 3)
	if _, err := a.RotateRoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	openAll(t, b, vals) // unknown version 2 → B re-reads the file
	if rootB.ActiveVersion() != 2 {
		t.Fatalf("B's root did not reload: %v", rootB)
	}
	// B creates a new DEK under the new version even without an unwrap first.
	rootC, _, _ := LoadOrCreateRoot(path)
	if _, err := a.RotateRoot(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := NewEnvelope(openStore(t, dbPath), rootC)
	mustSeal(t, c, "created-by-c", "x", "")
	if v := rootVersionOf(wrappedDEKs(t, st1)["created-by-c"]); v != 3 {
		t.Fatalf("C wrapped a new DEK under root v%d, want 3", v)
	}
}

var errCrash = errors.New("simulated crash")

// A rotation interrupted at any point leaves every value readable with the
// keyring file as it was left, and a later rotation completes the job.
func TestRotateRootCrashSafety(t *testing.T) {
	const n = 10
	tests := []struct {
		name       string
		crashAfter int // data keys re-wrapped before the crash
	}{
		{name: "ok/after-first", crashAfter: 1},
		{name: "ok/after-half", crashAfter: n / 2},
		{name: "ok/after-all-before-retire", crashAfter: n},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, path := newFileRoot(t)
			st, dbPath := newStorePath(t)
			e := NewEnvelope(st, root)
			vals := sealMany(t, e, n)
			e.afterRewrap = func(done int) error {
				if done == tc.crashAfter {
					return errCrash
				}
				return nil
			}
			if _, err := e.RotateRoot(context.Background()); !errors.Is(err, errCrash) {
				t.Fatalf("RotateRoot err = %v, want the simulated crash", err)
			}

			// "Restart": everything from disk.
			root2, created, err := LoadOrCreateRoot(path)
			if err != nil || created {
				t.Fatalf("reload keyring: created=%v err=%v", created, err)
			}
			if fmt.Sprint(root2.Versions()) != "[1 2]" || root2.ActiveVersion() != 2 {
				t.Fatalf("keyring after crash: %v", root2)
			}
			st2 := openStore(t, dbPath)
			counts := map[uint32]int{}
			for _, w := range wrappedDEKs(t, st2) {
				counts[rootVersionOf(w)]++
			}
			if counts[2] != tc.crashAfter || counts[1] != n-tc.crashAfter {
				t.Fatalf("DEKs per root version after crash: %v", counts)
			}
			e2 := NewEnvelope(st2, root2)
			openAll(t, e2, vals)

			rep, err := e2.RotateRoot(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.NewVersion != 3 || rep.Rewrapped != n || fmt.Sprint(rep.Retired) != "[1 2]" {
				t.Fatalf("resumed rotation report %+v", rep)
			}
			openAll(t, e2, vals)
			root3, _, _ := LoadOrCreateRoot(path)
			openAll(t, NewEnvelope(st2, root3), vals)
		})
	}
}

// Retiring must wait for every DEK: an unreadable one stops the rotation
// before any version leaves the keyring.
func TestRotateRootKeepsVersionsOnError(t *testing.T) {
	root, path := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	vals := sealMany(t, e, 3)
	if err := putRaw(st, DEKPrefix+"zz-corrupt", bytes.Repeat([]byte{1}, wrappedLen)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.RotateRoot(context.Background()); err == nil || !strings.Contains(err.Error(), "zz-corrupt") {
		t.Fatalf("RotateRoot err = %v, want it to name the bad data key", err)
	}
	r, _, _ := LoadOrCreateRoot(path)
	if fmt.Sprint(r.Versions()) != "[1 2]" {
		t.Fatalf("keyring after failed rotation: %v", r)
	}
	openAll(t, NewEnvelope(st, r), vals)
}

func TestRotateRootRefusedForEnvRoot(t *testing.T) {
	root, err := RootFromBytes(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	e := NewEnvelope(newStore(t), root)
	if _, err := e.RotateRoot(context.Background()); !errors.Is(err, ErrRotateUnsupported) {
		t.Fatalf("err = %v, want ErrRotateUnsupported", err)
	}
}

func TestForgetDuringRotationIsSkipped(t *testing.T) {
	root, _ := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	vals := sealMany(t, e, 4)
	e.afterRewrap = func(done int) error {
		if done == 1 {
			return e.Forget(context.Background(), vals[3].scope)
		}
		return nil
	}
	rep, err := e.RotateRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rewrapped != 3 {
		t.Fatalf("rewrapped %d, want 3", rep.Rewrapped)
	}
	openAll(t, e, vals[:3])
}
