package vault

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Key layout; see doc.go.
const purgeIndexPrefix = "vault/~purge/"

func vaultPrefix(iid string) string       { return "vault/" + iid + "/" }
func headPrefix(iid string) string        { return vaultPrefix(iid) + "secrets/h/" }
func deletedPrefix(iid string) string     { return vaultPrefix(iid) + "secrets/d/" }
func headKey(iid, lname string) string    { return headPrefix(iid) + lname }
func deletedKey(iid, lname string) string { return deletedPrefix(iid) + lname }
func versionsPrefix(iid, lname string) string {
	return vaultPrefix(iid) + "secrets/v/" + lname + "/"
}
func versionKey(iid, lname, version string) string { return versionsPrefix(iid, lname) + version }

func purgeIndexKey(at int64, iid, lname string) string {
	return indexKey(purgeIndexPrefix, at, iid, lname)
}

// indexKey is the key of an entry of a time-ordered index (the purge and
// renewal indexes): zero-padded, so key order is time order; parseIndexKey
// reads it back.
func indexKey(prefix string, at int64, iid, lname string) string {
	return fmt.Sprintf("%s%020d/%s/%s", prefix, at, iid, lname)
}

// parseIndexKey splits a key of the purge index under prefix.
func parseIndexKey(prefix, key string) (at int64, iid, lname string, ok bool) {
	rest, found := strings.CutPrefix(key, prefix)
	if !found {
		return 0, "", "", false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return 0, "", "", false
	}
	at, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return 0, "", "", false
	}
	return at, parts[1], parts[2], true
}

// sealAAD binds a sealed value to its slot: vault, secret and version. The
// content type and attributes are not part of it: they may change without
// resealing.
func sealAAD(iid, lname, version string) []byte {
	return []byte("keyhaven/vault/secret/v1\x00" + iid + "\x00" + lname + "\x00" + version)
}

func notFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// getRec reads the record at key; a missing one is the error missing (the
// kind's not-found answer for the name or id asked for).
func getRec[T any](ctx context.Context, r store.Reader, key string, missing *azerr.Error) (*T, int64, error) {
	v, ver, err := store.GetJSON[T](ctx, r, key)
	if notFound(err) {
		return nil, 0, missing
	}
	return v, ver, err
}

// moveRec writes rec at to, which must be free, and removes the record
// (at version fromVer) at from: the step of every delete and recover.
func moveRec(ctx context.Context, tx store.Tx, from string, fromVer int64, to string, rec any) error {
	if _, err := store.PutJSON(ctx, tx, to, rec, store.Absent); err != nil {
		return err
	}
	return tx.Delete(ctx, from, fromVer)
}

// nameOrID is what a not-found answer names: the name, or name/version
// when a version was asked for.
func nameOrID(name, version string) string {
	if version == "" {
		return name
	}
	return name + "/" + version
}

// exists reports whether key exists.
func exists(ctx context.Context, r store.Reader, key string) (bool, error) {
	_, err := r.Get(ctx, key)
	if err == nil {
		return true, nil
	}
	if notFound(err) {
		return false, nil
	}
	return false, err
}

// refuseExisting is conflict when a record exists at any of keys, checked
// in order: a create, import, set or restore never takes a name a live or
// deleted object holds.
func refuseExisting(ctx context.Context, r store.Reader, conflict *azerr.Error, keys ...string) error {
	for _, k := range keys {
		if ok, err := exists(ctx, r, k); err != nil {
			return err
		} else if ok {
			return conflict
		}
	}
	return nil
}

// requireExisting is missing when no record exists at key.
func requireExisting(ctx context.Context, r store.Reader, missing *azerr.Error, key string) error {
	if ok, err := exists(ctx, r, key); err != nil {
		return err
	} else if !ok {
		return missing
	}
	return nil
}

// deleteAll removes every record under prefix within tx.
func deleteAll(ctx context.Context, tx store.Tx, prefix string) error {
	const batch = 500
	for {
		recs, err := tx.List(ctx, prefix, store.ListOptions{Limit: batch})
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := tx.Delete(ctx, r.Key, store.Any); err != nil {
				return err
			}
		}
		if len(recs) < batch {
			return nil
		}
	}
}

// purgeTx removes a deleted secret for good: every version, the deleted
// record and its purge index entry.
func purgeTx(ctx context.Context, tx store.Tx, iid, lname string, d *deletedRec, dv int64) error {
	if err := deleteAll(ctx, tx, versionsPrefix(iid, lname)); err != nil {
		return err
	}
	if err := tx.Delete(ctx, deletedKey(iid, lname), dv); err != nil {
		return err
	}
	return tx.Delete(ctx, purgeIndexKey(d.PurgeAt, iid, lname), store.Any)
}
