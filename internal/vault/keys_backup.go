package vault

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Key backup blobs follow secret backups (see backup.go): every version of
// one key, the metadata sealed under the tenant's backup scope and each
// private key sealed with an aad naming format, tenant, backup id, version
// and position. A secret blob does not restore as a key, nor the reverse.
type keyBackupMeta struct {
	ID       string    `json:"id"`
	Name     string    `json:"n"`
	Latest   string    `json:"l"`
	Versions []keyMeta `json:"vs"`
}

func (s *Service) backupKey(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	v := rq.vault
	iid, name, lname := rq.keyNames()
	var head *keyHeadRec
	var recs []store.Record
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		head, _, err = getRec[keyHeadRec](ctx, r, keyHeadKey(iid, lname), errKeyNotFound(name))
		if err != nil {
			return err
		}
		recs, err = r.List(ctx, keyVersionsPrefix(iid, lname), store.ListOptions{Limit: maxBackupVersions + 1})
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if len(recs) > maxBackupVersions {
		return 0, nil, keyBackup.errTooManyVersions(name)
	}
	w, err := s.newBackupWriter(ctx, keyBackup, v.TenantID)
	if err != nil {
		return 0, nil, err
	}
	bm := keyBackupMeta{ID: w.id, Name: head.Meta.Name, Latest: head.Meta.Version}
	for i, r := range recs {
		vr, err := store.DecodeJSON[keyVersionRec](r)
		if err != nil {
			return 0, nil, err
		}
		if err := vr.checkSlot(lname, strings.TrimPrefix(r.Key, keyVersionsPrefix(iid, lname))); err != nil {
			return 0, nil, err
		}
		plain, err := s.sealer.Open(ctx, iid, vr.Sealed, keySealAAD(iid, lname, vr.Version))
		if err != nil {
			return 0, nil, errKeyIntegrity(name, err)
		}
		if err := w.add(plain, "value", vr.Version, i); err != nil {
			return 0, nil, err
		}
		bm.Versions = append(bm.Versions, vr.keyMeta)
	}
	out, err := w.finish(bm)
	if err != nil {
		return 0, nil, err
	}
	rq.info.ObjectID = rq.base + "/keys/" + head.Meta.Name
	return http.StatusOK, out, nil
}

// openKeyBackup parses and opens a key blob for restore into vault v.
func (s *Service) openKeyBackup(ctx context.Context, v *VaultInfo, raw []byte) (*keyBackupMeta, [][]byte, *azerr.Error) {
	var bm keyBackupMeta
	r, e := s.openBackup(ctx, v, keyBackup, raw, &bm)
	if e != nil {
		return nil, nil, e
	}
	if !validKeyBackupMeta(&bm, r.count()) {
		return nil, nil, errBadBackup()
	}
	for i, m := range bm.Versions {
		p, ok := r.open(i, bm.ID, "value", m.Version, i)
		if !ok {
			r.discard()
			return nil, nil, errBadBackup()
		}
		// The private key must be the one the metadata's public key names.
		k, err := parsePrivate(p)
		if err != nil {
			r.discard()
			return nil, nil, errBadBackup()
		}
		var pub keyMeta
		setPublic(&pub, k)
		if pub.Kty != m.Kty || pub.Crv != m.Crv || !bytes.Equal(pub.N, m.N) || !bytes.Equal(pub.E, m.E) ||
			!bytes.Equal(pub.X, m.X) || !bytes.Equal(pub.Y, m.Y) {
			r.discard()
			return nil, nil, errBadBackup()
		}
	}
	return &bm, r.values, nil
}

// validKeyBackupMeta re-checks the sealed metadata against the API's rules.
func validKeyBackupMeta(bm *keyBackupMeta, nValues int) bool {
	vs, ok := newBackupVersions(bm.Name, bm.Latest, len(bm.Versions))
	if !ok || len(bm.Versions) != nValues {
		return false
	}
	for i := range bm.Versions {
		m := &bm.Versions[i]
		if !vs.add(m.Version, m.Name) || len(m.Tags) > MaxTags || len(m.Ops) > maxKeyOps ||
			(m.Kty != ktyRSA && m.Kty != ktyEC) || checkOpsFor(m.Kty, m.Ops) != nil ||
			slices.Contains(m.Ops, "export") {
			return false
		}
	}
	return vs.sawLatest
}

func (s *Service) restoreKey(rq *request) (int, any, error) {
	raw, e := readRestoreBlob(rq, maxKeyBackupBlobSz)
	if e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	v := rq.vault
	bm, values, e := s.openKeyBackup(ctx, v, raw)
	if e != nil {
		return 0, nil, e
	}
	lname := strings.ToLower(bm.Name)
	sealed, err := s.resealForVault(ctx, v.InternalID, values, func(i int) []byte {
		return keySealAAD(v.InternalID, lname, bm.Versions[i].Version)
	})
	if err != nil {
		return 0, nil, err
	}
	var latest keyMeta
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := refuseExisting(ctx, tx, errKeyDeletedConflict(bm.Name), keyDeletedKey(v.InternalID, lname)); err != nil {
			return err
		}
		if err := refuseExisting(ctx, tx, errKeyRestoreConflict(bm.Name), keyHeadKey(v.InternalID, lname)); err != nil {
			return err
		}
		if err := deleteAll(ctx, tx, keyVersionsPrefix(v.InternalID, lname)); err != nil {
			return err
		}
		for i, m := range bm.Versions {
			if _, err := store.PutJSON(ctx, tx, keyVersionKey(v.InternalID, lname, m.Version), keyVersionRec{keyMeta: m, Sealed: sealed[i]}, store.Absent); err != nil {
				return fmt.Errorf("restore key version: %w", err)
			}
			if m.Version == bm.Latest {
				latest = m
			}
		}
		_, err := store.PutJSON(ctx, tx, keyHeadKey(v.InternalID, lname), keyHeadRec{Meta: latest}, store.Absent)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.keyWireOf(&latest, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}
