package seal

import (
	"context"
	"fmt"
	"slices"

	"github.com/keyhaven/keyhaven/internal/store"
)

// VerifyReport says whether a store's data keys open with a keyring.
type VerifyReport struct {
	DataKeys     int      // wrapped data keys in the store
	RootVersions []uint32 // the root key versions they are wrapped under
	Failures     []string // one line per data key that does not open, at most maxVerifyFailures
}

const maxVerifyFailures = 20

// Verify unwraps every data key in the store with the keyring, so a backup
// or a restored store is known to be readable before anyone relies on it.
// Nothing is written; the keys are cleared as soon as they are opened.
func (e *Envelope) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	failed := 0
	after := ""
	for {
		recs, err := e.st.List(ctx, DEKPrefix, store.ListOptions{After: after, Limit: rotatePage})
		if err != nil {
			return rep, fmt.Errorf("seal: list data keys: %w", err)
		}
		for _, rec := range recs {
			rep.DataKeys++
			key, _, v, err := e.unwrapRaw(rec.Key[len(DEKPrefix):], rec.Value)
			clear(key)
			if err != nil {
				failed++
				if len(rep.Failures) < maxVerifyFailures {
					rep.Failures = append(rep.Failures, err.Error())
				}
				continue
			}
			if !slices.Contains(rep.RootVersions, v) {
				rep.RootVersions = append(rep.RootVersions, v)
			}
		}
		if len(recs) < rotatePage {
			break
		}
		after = recs[len(recs)-1].Key
	}
	slices.Sort(rep.RootVersions)
	if failed > 0 {
		return rep, fmt.Errorf("seal: %d of %d data keys do not open with this keyring (root key versions %v)", failed, rep.DataKeys, e.root.Versions())
	}
	return rep, nil
}
