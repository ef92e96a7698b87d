package vault

import (
	"context"
	"fmt"

	"github.com/keyhaven/keyhaven/internal/store"
)

// purgeBatch bounds the records touched by one purge transaction.
const purgeBatch = 200

// PurgeVaultData removes every data-plane record of a vault and destroys its
// seal scope, so anything missed (a copy, a backup of the store) can no
// longer be opened. The control plane calls it when a vault is purged. Purge
// index entries of the vault are left to PurgeExpired, which drops entries
// whose secret no longer exists.
func (s *Service) PurgeVaultData(ctx context.Context, internalID string) error {
	if internalID == "" || internalID[0] == '~' {
		return fmt.Errorf("vault: invalid internal id %q", internalID)
	}
	prefix := vaultPrefix(internalID)
	for {
		var n int
		err := s.st.Update(ctx, func(tx store.Tx) error {
			recs, err := tx.List(ctx, prefix, store.ListOptions{Limit: purgeBatch})
			if err != nil {
				return err
			}
			n = len(recs)
			for _, r := range recs {
				if err := tx.Delete(ctx, r.Key, store.Any); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("vault: purge data of %s: %w", internalID, err)
		}
		if n < purgeBatch {
			break
		}
	}
	if err := s.sealer.Forget(ctx, internalID); err != nil {
		return fmt.Errorf("vault: forget seal scope of %s: %w", internalID, err)
	}
	return nil
}

// PurgeExpired permanently removes deleted secrets, keys and certificates whose scheduled
// purge date has passed (purge protection does not stop this: it is the
// system purge at the end of retention). It returns how many objects it
// purged.
func (s *Service) PurgeExpired(ctx context.Context) (int, error) {
	purged, err := s.purgeExpiredIndex(ctx, purgeIndexPrefix, func(ctx context.Context, tx store.Tx, at int64, iid, lname string) (bool, error) {
		d, dv, err := store.GetJSON[deletedRec](ctx, tx, deletedKey(iid, lname))
		if notFound(err) || (err == nil && d.PurgeAt != at) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, purgeTx(ctx, tx, iid, lname, d, dv)
	})
	if err != nil {
		return purged, err
	}
	keys, err := s.purgeExpiredIndex(ctx, keyPurgeIndexPrefix, func(ctx context.Context, tx store.Tx, at int64, iid, lname string) (bool, error) {
		d, dv, err := store.GetJSON[keyDeletedRec](ctx, tx, keyDeletedKey(iid, lname))
		if notFound(err) || (err == nil && d.PurgeAt != at) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, purgeKeyTx(ctx, tx, iid, lname, d, dv)
	})
	if err != nil {
		return purged + keys, err
	}
	certs, err := s.purgeExpiredIndex(ctx, certPurgeIndexPrefix, func(ctx context.Context, tx store.Tx, at int64, iid, lname string) (bool, error) {
		d, dv, err := store.GetJSON[certDeletedRec](ctx, tx, certDeletedKey(iid, lname))
		if notFound(err) || (err == nil && d.PurgeAt != at) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return true, purgeCertTx(ctx, tx, iid, lname, d, dv)
	})
	return purged + keys + certs, err
}

// purgeExpiredIndex walks one purge index up to now. purgeOne purges the
// object an entry names and reports whether it did; when it did not (the
// object was recovered, purged by hand, or deleted again later) the stale
// entry is dropped.
func (s *Service) purgeExpiredIndex(ctx context.Context, prefix string,
	purgeOne func(ctx context.Context, tx store.Tx, at int64, iid, lname string) (bool, error)) (int, error) {
	now := s.clk.Now().Unix()
	purged := 0
	after := ""
	for {
		recs, err := s.st.List(ctx, prefix, store.ListOptions{After: after, Limit: purgeBatch})
		if err != nil {
			return purged, fmt.Errorf("vault: list purge index: %w", err)
		}
		for _, r := range recs {
			at, iid, lname, ok := parseIndexKey(prefix, r.Key)
			if ok && at > now {
				return purged, nil // the index is ordered by time
			}
			done := false
			err := s.st.Update(ctx, func(tx store.Tx) error {
				done = false
				if !ok {
					return tx.Delete(ctx, r.Key, store.Any)
				}
				did, err := purgeOne(ctx, tx, at, iid, lname)
				if err != nil {
					return err
				}
				if !did {
					return tx.Delete(ctx, r.Key, store.Any)
				}
				done = true
				return nil
			})
			if err != nil {
				return purged, fmt.Errorf("vault: purge %s: %w", r.Key, err)
			}
			if done {
				purged++
			}
			after = r.Key
		}
		if len(recs) < purgeBatch {
			return purged, nil
		}
	}
}
