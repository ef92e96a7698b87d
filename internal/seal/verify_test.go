package seal

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/store"
)

func TestVerify(t *testing.T) {
	ctx := context.Background()
	root, path := newFileRoot(t)
	st := newStore(t)
	e := NewEnvelope(st, root)
	sealMany(t, e, rotatePage+5)
	rep, err := e.Verify(ctx)
	if err != nil || rep.DataKeys != rotatePage+5 || fmt.Sprint(rep.RootVersions) != "[1]" || len(rep.Failures) != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}

	// Another keyring: nothing opens, and the report says so.
	other, err := RootFromBytes(bytes.Repeat([]byte{9}, RootKeySize))
	if err != nil {
		t.Fatal(err)
	}
	rep, err = NewEnvelope(st, other).Verify(ctx)
	if err == nil || len(rep.Failures) != maxVerifyFailures || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d data keys", rotatePage+5, rotatePage+5)) {
		t.Fatalf("Verify with another keyring = %+v, %v", rep, err)
	}

	// A store copied before a root rotation needs the retired version.
	snap := newStore(t)
	recs, err := st.List(ctx, DEKPrefix, store.ListOptions{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := snap.Update(ctx, func(tx store.Tx) error { _, err := tx.Put(ctx, r.Key, r.Value, store.Any); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.RotateRoot(ctx); err != nil {
		t.Fatal(err)
	}
	rotated, _, err := LoadOrCreateRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = NewEnvelope(snap, rotated).Verify(ctx)
	if err == nil || !strings.Contains(rep.Failures[0], "root key version 1, which the keyring ([2]) does not hold") {
		t.Fatalf("Verify of a pre-rotation copy = %+v, %v", rep, err)
	}
	// Still fine for the live store.
	if rep, err := NewEnvelope(st, rotated).Verify(ctx); err != nil || fmt.Sprint(rep.RootVersions) != "[2]" {
		t.Fatalf("Verify after rotation = %+v, %v", rep, err)
	}
}
