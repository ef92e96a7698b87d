package vault

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Backup blobs.
//
// A blob holds every version of one secret with its attributes. It is sealed
// under the seal scope "backup:{tenantId}" of the vault it came from, so it opens
// only in the same keyhaven deployment and restores only into a vault of the
// SAME TENANT. (Azure's rule is the same subscription and geography; a
// tenant is keyhaven's equivalent boundary of trust, and subscriptions move
// between vaults' owners too freely to be one.) Integrity comes from the
// AEAD: the metadata is sealed with an aad naming the format and tenant, and
// each value with an aad naming the format, tenant, backup id, version and
// position, so parts cannot be swapped, reordered, dropped or moved between
// blobs.
const (
	backupFormat      = "keyhaven-secret-backup-v1"
	maxBackupVersions = 500 // Key Vault refuses backups of more versions
)

type backupBlob struct {
	Format string   `json:"f"`
	Tenant string   `json:"t"`
	Meta   []byte   `json:"m"` // sealed backupMeta
	Values [][]byte `json:"v"` // sealed values, in Versions order
}

type backupMeta struct {
	ID       string `json:"id"`
	Name     string `json:"n"`
	Latest   string `json:"l"`
	Versions []meta `json:"vs"`
}

// backupScope is the seal scope of a tenant's backups (seal scopes hold no
// '/'; no vault internal id contains ':').
func backupScope(tenant string) string { return "backup:" + tenant }

func backupMetaAAD(tenant string) []byte {
	return []byte(backupFormat + "\x00meta\x00" + tenant)
}

func backupValueAAD(tenant, id, version string, i int) []byte {
	return []byte(backupFormat + "\x00value\x00" + tenant + "\x00" + id + "\x00" + version + "\x00" + strconv.Itoa(i))
}

func errBadBackup() *azerr.Error {
	return azerr.BadParameter("The backup blob is invalid, corrupted or was not produced by this service.")
}

func (s *Service) backupSecret(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	v, name := rq.vault, rq.route.Name
	lname := strings.ToLower(name)
	var head *headRec
	var recs []store.Record
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		head, _, err = store.GetJSON[headRec](ctx, r, headKey(v.InternalID, lname))
		if notFound(err) {
			return errSecretNotFound(name)
		}
		if err != nil {
			return err
		}
		recs, err = r.List(ctx, versionsPrefix(v.InternalID, lname), store.ListOptions{Limit: maxBackupVersions + 1})
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if len(recs) > maxBackupVersions {
		return 0, nil, azerr.BadParameter("Secret %s has more than %d versions and cannot be backed up.", name, maxBackupVersions)
	}
	id, err := s.newVersion()
	if err != nil {
		return 0, nil, err
	}
	bm := backupMeta{ID: id, Name: head.Meta.Name, Latest: head.Meta.Version}
	blob := backupBlob{Format: backupFormat, Tenant: v.TenantID}
	scope := backupScope(v.TenantID)
	for i, r := range recs {
		vr, err := store.DecodeJSON[versionRec](r)
		if err != nil {
			return 0, nil, err
		}
		if err := vr.checkSlot(lname, strings.TrimPrefix(r.Key, versionsPrefix(v.InternalID, lname))); err != nil {
			return 0, nil, err
		}
		plain, err := s.sealer.Open(ctx, v.InternalID, vr.Sealed, sealAAD(v.InternalID, lname, vr.Version))
		if err != nil {
			return 0, nil, azerr.Internal(err)
		}
		sealed, err := s.sealer.Seal(ctx, scope, plain, backupValueAAD(v.TenantID, id, vr.Version, i))
		clear(plain)
		if err != nil {
			return 0, nil, azerr.Internal(err)
		}
		bm.Versions = append(bm.Versions, vr.meta)
		blob.Values = append(blob.Values, sealed)
	}
	mb, err := json.Marshal(bm)
	if err != nil {
		return 0, nil, err
	}
	if blob.Meta, err = s.sealer.Seal(ctx, scope, mb, backupMetaAAD(v.TenantID)); err != nil {
		return 0, nil, azerr.Internal(err)
	}
	raw, err := json.Marshal(blob)
	if err != nil {
		return 0, nil, err
	}
	rq.info.ObjectID = rq.base + "/secrets/" + head.Meta.Name
	return http.StatusOK, backupWire{Value: base64.RawURLEncoding.EncodeToString(raw)}, nil
}

// decodeBase64URL accepts base64url with or without padding (and standard
// base64, which some clients send).
func decodeBase64URL(s string) ([]byte, error) {
	t := strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(t); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(t)
}

// openBackup parses and opens a blob for restore into vault v. Only a vault
// of the blob's tenant can open it.
func (s *Service) openBackup(ctx context.Context, v *VaultInfo, raw []byte) (*backupMeta, [][]byte, *azerr.Error) {
	var blob backupBlob
	if err := json.Unmarshal(raw, &blob); err != nil || blob.Format != backupFormat {
		return nil, nil, errBadBackup()
	}
	if !strings.EqualFold(blob.Tenant, v.TenantID) {
		return nil, nil, azerr.BadParameter("The backup blob was created in another tenant. A secret backup can only be restored into a vault of the same tenant as the vault it was taken from.")
	}
	scope := backupScope(v.TenantID)
	mb, err := s.sealer.Open(ctx, scope, blob.Meta, backupMetaAAD(v.TenantID))
	if err != nil {
		return nil, nil, errBadBackup()
	}
	var bm backupMeta
	if err := json.Unmarshal(mb, &bm); err != nil {
		return nil, nil, errBadBackup()
	}
	if e := validateBackupMeta(&bm, len(blob.Values)); e != nil {
		return nil, nil, e
	}
	values := make([][]byte, len(bm.Versions))
	for i, m := range bm.Versions {
		p, err := s.sealer.Open(ctx, scope, blob.Values[i], backupValueAAD(v.TenantID, bm.ID, m.Version, i))
		if err != nil {
			for _, done := range values[:i] {
				clear(done)
			}
			return nil, nil, errBadBackup()
		}
		values[i] = p
	}
	return &bm, values, nil
}

// validateBackupMeta re-checks what the sealed metadata says, so even a blob
// sealed by this service cannot smuggle in a name or version the API would
// refuse.
func validateBackupMeta(bm *backupMeta, nValues int) *azerr.Error {
	if !validName(bm.Name) || len(bm.Versions) == 0 || len(bm.Versions) > maxBackupVersions || len(bm.Versions) != nValues {
		return errBadBackup()
	}
	seen := map[string]bool{}
	latest := false
	for i := range bm.Versions {
		m := &bm.Versions[i]
		if !versionRE.MatchString(m.Version) || m.Version != strings.ToLower(m.Version) || seen[m.Version] ||
			!strings.EqualFold(m.Name, bm.Name) || len(m.Tags) > MaxTags || len(m.ContentType) > 4*MaxContentTypeLen {
			return errBadBackup()
		}
		seen[m.Version] = true
		latest = latest || m.Version == bm.Latest
	}
	if !latest {
		return errBadBackup()
	}
	return nil
}

func (s *Service) restoreSecret(rq *request) (int, any, error) {
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
	raw, err := decodeBase64URL(*in.Value)
	if err != nil {
		return 0, nil, errBadBackup()
	}
	ctx := rq.r.Context()
	v := rq.vault
	bm, values, e := s.openBackup(ctx, v, raw)
	if e != nil {
		return 0, nil, e
	}
	lname := strings.ToLower(bm.Name)
	sealed := make([][]byte, len(values))
	for i, m := range bm.Versions {
		sealed[i], err = s.sealer.Seal(ctx, v.InternalID, values[i], sealAAD(v.InternalID, lname, m.Version))
		clear(values[i])
		if err != nil {
			return 0, nil, azerr.Internal(err)
		}
	}
	var latest meta
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if ok, err := exists(ctx, tx, deletedKey(v.InternalID, lname)); err != nil {
			return err
		} else if ok {
			return errDeletedConflict(bm.Name)
		}
		if ok, err := exists(ctx, tx, headKey(v.InternalID, lname)); err != nil {
			return err
		} else if ok {
			return errRestoreConflict(bm.Name)
		}
		// Versions of a purged secret are gone; anything left under the
		// name's prefix would be a leftover of a failed purge, so it is
		// cleared before the restored versions are written.
		if err := deleteAll(ctx, tx, versionsPrefix(v.InternalID, lname)); err != nil {
			return err
		}
		for i, m := range bm.Versions {
			if _, err := store.PutJSON(ctx, tx, versionKey(v.InternalID, lname, m.Version), versionRec{meta: m, Sealed: sealed[i]}, store.Absent); err != nil {
				return fmt.Errorf("restore version: %w", err)
			}
			if m.Version == bm.Latest {
				latest = m
			}
		}
		_, err := store.PutJSON(ctx, tx, headKey(v.InternalID, lname), headRec{Meta: latest}, store.Absent)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.wire(&latest, true)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}
