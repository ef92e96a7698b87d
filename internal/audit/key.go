package audit

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
)

const (
	keyRecord = "audit/key"
	keyScope  = "sys"
	keySize   = 32
	// MinKeySize is the shortest HMAC key New accepts.
	MinKeySize = 32
)

// LoadOrCreateKey returns the deployment's audit HMAC key, creating it on
// first use. It is kept sealed under the "sys" scope, bound to its record, so
// every replica sharing the store computes the same HMACs.
func LoadOrCreateKey(ctx context.Context, st store.Store, sealer seal.Sealer) ([]byte, error) {
	aad := []byte(keyRecord)
	for attempt := 0; attempt < 3; attempt++ {
		rec, err := st.Get(ctx, keyRecord)
		if err == nil {
			key, err := sealer.Open(ctx, keyScope, rec.Value, aad)
			if err != nil {
				return nil, fmt.Errorf("audit: open the audit key: %w", err)
			}
			if len(key) < MinKeySize {
				return nil, errors.New("audit: the stored audit key is too short")
			}
			return key, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("audit: read the audit key: %w", err)
		}
		key := make([]byte, keySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		ct, err := sealer.Seal(ctx, keyScope, key, aad)
		if err != nil {
			return nil, fmt.Errorf("audit: seal the audit key: %w", err)
		}
		err = st.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, keyRecord, ct, store.Absent)
			return err
		})
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, fmt.Errorf("audit: store the audit key: %w", err)
		}
		// Another replica created it first: read theirs.
	}
	return nil, errors.New("audit: could not load or create the audit key")
}

// HMACPrefix starts every value HMAC.
const HMACPrefix = "hmac-sha256:"

// HMAC identifies value without revealing it: "hmac-sha256:" + hex of
// HMAC-SHA256 under the deployment's audit key.
func (l *Log) HMAC(value string) string {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(value))
	return HMACPrefix + hex.EncodeToString(m.Sum(nil))
}
