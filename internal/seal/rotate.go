package seal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/keyhaven/keyhaven/internal/store"
)

// Report describes a root key rotation.
type Report struct {
	// NewVersion is the root key version made active.
	NewVersion uint32
	// Rewrapped counts data keys re-wrapped under NewVersion.
	Rewrapped int
	// Retired lists root key versions removed from the keyring.
	Retired []uint32
}

const (
	rotatePage = 256
	// rotatePasses bounds re-scans for data keys another process created
	// under an old root version while this rotation ran.
	rotatePasses = 3
)

// RotateRoot rotates the root keyring of a file-backed root:
//
//  1. a fresh root key version is added to the keyring file and made active
//     (older versions stay in the file);
//  2. every wrapped data key under DEKPrefix is re-wrapped under it, one
//     compare-and-swap per key; values are never rewritten;
//  3. once a scan finds no data key under any other version, those versions
//     are removed from the file.
//
// A crash at any point leaves everything readable: each wrapped key names its
// root version, and no version leaves the file while a key still uses it.
// Running RotateRoot again after a crash finishes the job (it adds one more
// version and re-wraps everything not yet under it).
//
// A root from KEYHAVEN_ROOT_KEY or bytes cannot be rotated here:
// ErrRotateUnsupported. Other processes sharing the store pick up the new
// keyring file when they meet an unknown root version or create a data key;
// if they do not share the file, distribute it before rotating.
func (e *Envelope) RotateRoot(ctx context.Context) (Report, error) {
	if e.root.path == "" {
		return Report{}, ErrRotateUnsupported
	}
	e.rotateMu.Lock()
	defer e.rotateMu.Unlock()

	newV, err := e.root.addVersion()
	if err != nil {
		return Report{}, err
	}
	rep := Report{NewVersion: newV}
	clean := false
	for pass := 0; pass < rotatePasses && !clean; pass++ {
		n, err := e.rewrapAll(ctx, newV, &rep)
		if err != nil {
			return rep, err
		}
		clean = n == 0
	}
	if !clean {
		return rep, errors.New("seal: data keys keep appearing under old root versions (a process with an outdated keyring?); old versions kept, run the rotation again")
	}
	var old []uint32
	for _, v := range e.root.Versions() {
		if v != newV {
			old = append(old, v)
		}
	}
	if err := e.root.retire(old); err != nil {
		return rep, err
	}
	rep.Retired = old
	return rep, nil
}

// rewrapAll walks every wrapped data key, re-wrapping those not under
// version v. It returns how many it re-wrapped in this pass.
func (e *Envelope) rewrapAll(ctx context.Context, v uint32, rep *Report) (int, error) {
	n := 0
	after := ""
	for {
		recs, err := e.st.List(ctx, DEKPrefix, store.ListOptions{After: after, Limit: rotatePage})
		if err != nil {
			return n, fmt.Errorf("seal: list data keys: %w", err)
		}
		for _, rec := range recs {
			if err := ctx.Err(); err != nil {
				return n, err
			}
			did, err := e.rewrapOne(ctx, rec, v)
			if err != nil {
				return n, err
			}
			if did {
				n++
				rep.Rewrapped++
				if e.afterRewrap != nil {
					if err := e.afterRewrap(rep.Rewrapped); err != nil {
						return n, err
					}
				}
			}
		}
		if len(recs) < rotatePage {
			return n, nil
		}
		after = recs[len(recs)-1].Key
	}
}

// rewrapOne re-wraps one data key under root version v with a CAS on its
// store version, re-reading on conflict (a concurrent Forget or rotation).
func (e *Envelope) rewrapOne(ctx context.Context, rec store.Record, v uint32) (bool, error) {
	scope := rec.Key[len(DEKPrefix):]
	for attempt := 0; attempt < 5; attempt++ {
		if len(rec.Value) >= 5 && binary.BigEndian.Uint32(rec.Value[1:5]) == v {
			return false, nil
		}
		key, id, _, err := e.unwrapRaw(scope, rec.Value)
		if err != nil {
			return false, err
		}
		wrapped, err := e.wrapWith(v, scope, id, key)
		clear(key)
		if err != nil {
			return false, err
		}
		err = e.st.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, rec.Key, wrapped, rec.Version)
			return err
		})
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return false, fmt.Errorf("seal: store re-wrapped data key of scope %q: %w", scope, err)
		}
		rec, err = e.st.Get(ctx, rec.Key)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil // forgotten meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("seal: re-read data key of scope %q: %w", scope, err)
		}
	}
	return false, fmt.Errorf("seal: data key of scope %q keeps changing; rotation stopped", scope)
}

// wrapWith wraps under root version v, which must still be active: a
// rotation never wraps under anything else.
func (e *Envelope) wrapWith(v uint32, scope string, id [dekIDSize]byte, key []byte) ([]byte, error) {
	av, a := e.root.activeAEAD()
	if av != v {
		return nil, fmt.Errorf("seal: active root version changed to %d during rotation to %d", av, v)
	}
	return wrapUnder(v, a, scope, id, key), nil
}
