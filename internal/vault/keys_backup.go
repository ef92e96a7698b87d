package vault

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Key backup blobs follow secret backups (see backup.go): every version of
// one key, the metadata sealed under the tenant's backup scope and each
// private key sealed with an aad naming format, tenant, backup id, version
// and position. A secret blob does not restore as a key, nor the reverse.
const keyBackupFormat = "keyhaven-key-backup-v1"

type keyBackupMeta struct {
	ID       string    `json:"id"`
	Name     string    `json:"n"`
	Latest   string    `json:"l"`
	Versions []keyMeta `json:"vs"`
}

func keyBackupMetaAAD(tenant string) []byte {
	return []byte(keyBackupFormat + "\x00meta\x00" + tenant)
}

func keyBackupValueAAD(tenant, id, version string, i int) []byte {
	return []byte(keyBackupFormat + "\x00value\x00" + tenant + "\x00" + id + "\x00" + version + "\x00" + strconv.Itoa(i))
}

func (s *Service) backupKey(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	v := rq.vault
	iid, name, lname := rq.keyNames()
	var head *keyHeadRec
	var recs []store.Record
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		head, _, err = store.GetJSON[keyHeadRec](ctx, r, keyHeadKey(iid, lname))
		if notFound(err) {
			return errKeyNotFound(name)
		}
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
		return 0, nil, azerr.BadParameter("Key %s has more than %d versions and cannot be backed up.", name, maxBackupVersions)
	}
	id, err := s.newVersion()
	if err != nil {
		return 0, nil, err
	}
	bm := keyBackupMeta{ID: id, Name: head.Meta.Name, Latest: head.Meta.Version}
	blob := backupBlob{Format: keyBackupFormat, Tenant: v.TenantID}
	scope := backupScope(v.TenantID)
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
		sealed, err := s.sealer.Seal(ctx, scope, plain, keyBackupValueAAD(v.TenantID, id, vr.Version, i))
		clear(plain)
		if err != nil {
			return 0, nil, azerr.Internal(err)
		}
		bm.Versions = append(bm.Versions, vr.keyMeta)
		blob.Values = append(blob.Values, sealed)
	}
	mb, err := json.Marshal(bm)
	if err != nil {
		return 0, nil, err
	}
	if blob.Meta, err = s.sealer.Seal(ctx, scope, mb, keyBackupMetaAAD(v.TenantID)); err != nil {
		return 0, nil, azerr.Internal(err)
	}
	raw, err := json.Marshal(blob)
	if err != nil {
		return 0, nil, err
	}
	rq.info.ObjectID = rq.base + "/keys/" + head.Meta.Name
	return http.StatusOK, backupWire{Value: base64.RawURLEncoding.EncodeToString(raw)}, nil
}

// openKeyBackup parses and opens a key blob for restore into vault v.
func (s *Service) openKeyBackup(ctx context.Context, v *VaultInfo, raw []byte) (*keyBackupMeta, [][]byte, *azerr.Error) {
	var blob backupBlob
	if err := json.Unmarshal(raw, &blob); err != nil || blob.Format != keyBackupFormat {
		return nil, nil, errBadBackup()
	}
	if !strings.EqualFold(blob.Tenant, v.TenantID) {
		return nil, nil, azerr.BadParameter("The backup blob was created in another tenant. A key backup can only be restored into a vault of the same tenant as the vault it was taken from.")
	}
	scope := backupScope(v.TenantID)
	mb, err := s.sealer.Open(ctx, scope, blob.Meta, keyBackupMetaAAD(v.TenantID))
	if err != nil {
		return nil, nil, errBadBackup()
	}
	var bm keyBackupMeta
	if err := json.Unmarshal(mb, &bm); err != nil {
		return nil, nil, errBadBackup()
	}
	values := make([][]byte, len(bm.Versions))
	fail := func() (*keyBackupMeta, [][]byte, *azerr.Error) {
		for _, done := range values {
			clear(done)
		}
		return nil, nil, errBadBackup()
	}
	if !validKeyBackupMeta(&bm, len(blob.Values)) {
		return fail()
	}
	for i, m := range bm.Versions {
		p, err := s.sealer.Open(ctx, scope, blob.Values[i], keyBackupValueAAD(v.TenantID, bm.ID, m.Version, i))
		if err != nil {
			return fail()
		}
		values[i] = p
		// The private key must be the one the metadata's public key names.
		k, err := parsePrivate(p)
		if err != nil {
			return fail()
		}
		var pub keyMeta
		setPublic(&pub, k)
		if pub.Kty != m.Kty || pub.Crv != m.Crv || !bytes.Equal(pub.N, m.N) || !bytes.Equal(pub.E, m.E) ||
			!bytes.Equal(pub.X, m.X) || !bytes.Equal(pub.Y, m.Y) {
			return fail()
		}
	}
	return &bm, values, nil
}

// validKeyBackupMeta re-checks the sealed metadata against the API's rules.
func validKeyBackupMeta(bm *keyBackupMeta, nValues int) bool {
	if !validName(bm.Name) || len(bm.Versions) == 0 || len(bm.Versions) > maxBackupVersions || len(bm.Versions) != nValues {
		return false
	}
	seen := map[string]bool{}
	latest := false
	for i := range bm.Versions {
		m := &bm.Versions[i]
		if !versionRE.MatchString(m.Version) || m.Version != strings.ToLower(m.Version) || seen[m.Version] ||
			!strings.EqualFold(m.Name, bm.Name) || len(m.Tags) > MaxTags || len(m.Ops) > maxKeyOps ||
			(m.Kty != ktyRSA && m.Kty != ktyEC) || checkOpsFor(m.Kty, m.Ops) != nil ||
			slices.Contains(m.Ops, "export") {
			return false
		}
		seen[m.Version] = true
		latest = latest || m.Version == bm.Latest
	}
	return latest
}

func (s *Service) restoreKey(rq *request) (int, any, error) {
	body, e := readBody(rq, maxRestoreBodyBytes)
	if e != nil {
		return 0, nil, e
	}
	var in struct {
		Value *string `json:"value"`
	}
	if e := decodeJSON(body, &in); e != nil {
		return 0, nil, e
	}
	if in.Value == nil || *in.Value == "" {
		return 0, nil, azerr.BadParameter("Property 'value' (the backup blob) is required.")
	}
	if len(*in.Value) > maxKeyBackupBlobSz {
		return 0, nil, errBadBackup()
	}
	raw, err := decodeBase64URL(*in.Value)
	if err != nil {
		return 0, nil, errBadBackup()
	}
	ctx := rq.r.Context()
	v := rq.vault
	bm, values, e := s.openKeyBackup(ctx, v, raw)
	if e != nil {
		return 0, nil, e
	}
	lname := strings.ToLower(bm.Name)
	sealed := make([][]byte, len(values))
	for i, m := range bm.Versions {
		sealed[i], err = s.sealer.Seal(ctx, v.InternalID, values[i], keySealAAD(v.InternalID, lname, m.Version))
		clear(values[i])
		if err != nil {
			return 0, nil, azerr.Internal(err)
		}
	}
	var latest keyMeta
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if ok, err := exists(ctx, tx, keyDeletedKey(v.InternalID, lname)); err != nil {
			return err
		} else if ok {
			return errKeyDeletedConflict(bm.Name)
		}
		if ok, err := exists(ctx, tx, keyHeadKey(v.InternalID, lname)); err != nil {
			return err
		} else if ok {
			return errKeyRestoreConflict(bm.Name)
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
