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
const maxBackupVersions = 500 // Key Vault refuses backups of more versions

// backupKind is one kind of blob: its format, named in the blob and in
// every aad, so a blob of one kind never opens as another, and the noun its
// messages use.
type backupKind struct {
	format string
	noun   string
}

var (
	secretBackup = backupKind{format: "keyhaven-secret-backup-v1", noun: "secret"}
	keyBackup    = backupKind{format: "keyhaven-key-backup-v1", noun: "key"}
	certBackup   = backupKind{format: "keyhaven-certificate-backup-v1", noun: "certificate"}
)

// backupBlob is the envelope common to all kinds: the sealed metadata of
// the kind and its sealed values.
type backupBlob struct {
	Format string   `json:"f"`
	Tenant string   `json:"t"`
	Meta   []byte   `json:"m"` // sealed metadata of the kind
	Values [][]byte `json:"v"` // sealed values, in the metadata's order
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

func (k backupKind) metaAAD(tenant string) []byte {
	return []byte(k.format + "\x00meta\x00" + tenant)
}

// valueAAD binds a value to its blob and place: part is "value" for the
// one value of a secret or key version, "key" or "secret" for the two of a
// certificate version.
func (k backupKind) valueAAD(tenant, id, part, version string, i int) []byte {
	return []byte(k.format + "\x00" + part + "\x00" + tenant + "\x00" + id + "\x00" + version + "\x00" + strconv.Itoa(i))
}

func (k backupKind) errTooManyVersions(name string) *azerr.Error {
	return azerr.BadParameter("%s %s has more than %d versions and cannot be backed up.", title(k.noun), name, maxBackupVersions)
}

func errBadBackup() *azerr.Error {
	return azerr.BadParameter("The backup blob is invalid, corrupted or was not produced by this service.")
}

// backupWriter builds one blob of a kind for a tenant.
type backupWriter struct {
	s      *Service
	ctx    context.Context
	kind   backupKind
	tenant string
	scope  string
	id     string // the backup id, named in every value's aad
	blob   backupBlob
}

func (s *Service) newBackupWriter(ctx context.Context, kind backupKind, tenant string) (*backupWriter, error) {
	id, err := s.newVersion()
	if err != nil {
		return nil, err
	}
	return &backupWriter{s: s, ctx: ctx, kind: kind, tenant: tenant, scope: backupScope(tenant), id: id,
		blob: backupBlob{Format: kind.format, Tenant: tenant}}, nil
}

// add seals plain as the blob's next value, the part of version at position
// i, and clears plain.
func (w *backupWriter) add(plain []byte, part, version string, i int) error {
	sealed, err := w.s.sealer.Seal(w.ctx, w.scope, plain, w.kind.valueAAD(w.tenant, w.id, part, version, i))
	clear(plain)
	if err != nil {
		return azerr.Internal(err)
	}
	w.blob.Values = append(w.blob.Values, sealed)
	return nil
}

// finish seals the metadata bm and encodes the blob for the wire.
func (w *backupWriter) finish(bm any) (backupWire, error) {
	mb, err := json.Marshal(bm)
	if err != nil {
		return backupWire{}, err
	}
	if w.blob.Meta, err = w.s.sealer.Seal(w.ctx, w.scope, mb, w.kind.metaAAD(w.tenant)); err != nil {
		return backupWire{}, azerr.Internal(err)
	}
	raw, err := json.Marshal(w.blob)
	if err != nil {
		return backupWire{}, err
	}
	return backupWire{Value: base64.RawURLEncoding.EncodeToString(raw)}, nil
}

// readRestoreBlob reads a restore request's body and decodes its blob, of
// at most limit characters as sent.
func readRestoreBlob(rq *request, limit int) ([]byte, *azerr.Error) {
	body, e := readBody(rq, maxRestoreBodyBytes)
	if e != nil {
		return nil, e
	}
	var in struct {
		Value *string `json:"value"`
	}
	if e := decodeJSON(body, &in); e != nil {
		return nil, e
	}
	if in.Value == nil || *in.Value == "" {
		return nil, azerr.BadParameter("Property 'value' (the backup blob) is required.")
	}
	if len(*in.Value) > limit {
		return nil, errBadBackup()
	}
	raw, err := decodeBase64URL(*in.Value)
	if err != nil {
		return nil, errBadBackup()
	}
	return raw, nil
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

// backupReader opens one blob for restore into a vault.
type backupReader struct {
	s      *Service
	ctx    context.Context
	kind   backupKind
	tenant string
	scope  string
	blob   backupBlob
	values [][]byte // opened values, by position in the blob
}

// openBackup parses raw as a blob of kind, checks that it was taken in v's
// tenant (only a vault of the blob's tenant can open it), and opens its
// metadata into bm.
func (s *Service) openBackup(ctx context.Context, v *VaultInfo, kind backupKind, raw []byte, bm any) (*backupReader, *azerr.Error) {
	var blob backupBlob
	if err := json.Unmarshal(raw, &blob); err != nil || blob.Format != kind.format {
		return nil, errBadBackup()
	}
	if !strings.EqualFold(blob.Tenant, v.TenantID) {
		return nil, azerr.BadParameter("The backup blob was created in another tenant. A %s backup can only be restored into a vault of the same tenant as the vault it was taken from.", kind.noun)
	}
	scope := backupScope(v.TenantID)
	mb, err := s.sealer.Open(ctx, scope, blob.Meta, kind.metaAAD(v.TenantID))
	if err != nil {
		return nil, errBadBackup()
	}
	if err := json.Unmarshal(mb, bm); err != nil {
		return nil, errBadBackup()
	}
	return &backupReader{s: s, ctx: ctx, kind: kind, tenant: v.TenantID, scope: scope, blob: blob,
		values: make([][]byte, len(blob.Values))}, nil
}

// count is the number of values in the blob.
func (r *backupReader) count() int { return len(r.blob.Values) }

// open opens the value at position j of the blob, the part of version at
// position i of backup id, and keeps it in r.values. The metadata must have
// been checked against count first.
func (r *backupReader) open(j int, id, part, version string, i int) ([]byte, bool) {
	p, err := r.s.sealer.Open(r.ctx, r.scope, r.blob.Values[j], r.kind.valueAAD(r.tenant, id, part, version, i))
	if err != nil {
		return nil, false
	}
	r.values[j] = p
	return p, true
}

// resealForVault seals each opened value under vault iid with aad(i),
// clearing it, for the restored records.
func (s *Service) resealForVault(ctx context.Context, iid string, values [][]byte, aad func(i int) []byte) ([][]byte, error) {
	sealed := make([][]byte, len(values))
	for i := range values {
		var err error
		sealed[i], err = s.sealer.Seal(ctx, iid, values[i], aad(i))
		clear(values[i])
		if err != nil {
			return nil, azerr.Internal(err)
		}
	}
	return sealed, nil
}

// discard clears every value opened so far.
func (r *backupReader) discard() {
	for _, done := range r.values {
		clear(done)
	}
}

func (s *Service) backupSecret(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	v, name := rq.vault, rq.route.Name
	lname := strings.ToLower(name)
	var head *headRec
	var recs []store.Record
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		head, _, err = getRec[headRec](ctx, r, headKey(v.InternalID, lname), errSecretNotFound(name))
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
		return 0, nil, secretBackup.errTooManyVersions(name)
	}
	w, err := s.newBackupWriter(ctx, secretBackup, v.TenantID)
	if err != nil {
		return 0, nil, err
	}
	bm := backupMeta{ID: w.id, Name: head.Meta.Name, Latest: head.Meta.Version}
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
		if err := w.add(plain, "value", vr.Version, i); err != nil {
			return 0, nil, err
		}
		bm.Versions = append(bm.Versions, vr.meta)
	}
	out, err := w.finish(bm)
	if err != nil {
		return 0, nil, err
	}
	rq.info.ObjectID = rq.base + "/secrets/" + head.Meta.Name
	return http.StatusOK, out, nil
}

// openSecretBackup opens a secret blob for restore into vault v.
func (s *Service) openSecretBackup(ctx context.Context, v *VaultInfo, raw []byte) (*backupMeta, [][]byte, *azerr.Error) {
	var bm backupMeta
	r, e := s.openBackup(ctx, v, secretBackup, raw, &bm)
	if e != nil {
		return nil, nil, e
	}
	if e := validateBackupMeta(&bm, r.count()); e != nil {
		return nil, nil, e
	}
	for i, m := range bm.Versions {
		if _, ok := r.open(i, bm.ID, "value", m.Version, i); !ok {
			r.discard()
			return nil, nil, errBadBackup()
		}
	}
	return &bm, r.values, nil
}

// validateBackupMeta re-checks what the sealed metadata says, so even a blob
// sealed by this service cannot smuggle in a name or version the API would
// refuse.
func validateBackupMeta(bm *backupMeta, nValues int) *azerr.Error {
	vs, ok := newBackupVersions(bm.Name, bm.Latest, len(bm.Versions))
	if !ok || len(bm.Versions) != nValues {
		return errBadBackup()
	}
	for i := range bm.Versions {
		m := &bm.Versions[i]
		if !vs.add(m.Version, m.Name) || len(m.Tags) > MaxTags || len(m.ContentType) > 4*MaxContentTypeLen {
			return errBadBackup()
		}
	}
	if !vs.sawLatest {
		return errBadBackup()
	}
	return nil
}

// backupVersions checks, version by version, what the metadata of every
// kind of blob must hold: a valid name, 1 to maxBackupVersions versions,
// each a lower-case version id of the blob's name listed once, and among
// them the latest (sawLatest once all are added).
type backupVersions struct {
	name, latest string
	seen         map[string]bool
	sawLatest    bool
}

func newBackupVersions(name, latest string, n int) (*backupVersions, bool) {
	if !validName(name) || n == 0 || n > maxBackupVersions {
		return nil, false
	}
	return &backupVersions{name: name, latest: latest, seen: map[string]bool{}}, true
}

// add checks the next version, listed with the object name it names.
func (vs *backupVersions) add(version, name string) bool {
	if !versionRE.MatchString(version) || version != strings.ToLower(version) || vs.seen[version] ||
		!strings.EqualFold(name, vs.name) {
		return false
	}
	vs.seen[version] = true
	vs.sawLatest = vs.sawLatest || version == vs.latest
	return true
}

func (s *Service) restoreSecret(rq *request) (int, any, error) {
	raw, e := readRestoreBlob(rq, maxRestoreBodyBytes)
	if e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	v := rq.vault
	bm, values, e := s.openSecretBackup(ctx, v, raw)
	if e != nil {
		return 0, nil, e
	}
	lname := strings.ToLower(bm.Name)
	sealed, err := s.resealForVault(ctx, v.InternalID, values, func(i int) []byte {
		return sealAAD(v.InternalID, lname, bm.Versions[i].Version)
	})
	if err != nil {
		return 0, nil, err
	}
	var latest meta
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := refuseExisting(ctx, tx, errDeletedConflict(bm.Name), deletedKey(v.InternalID, lname)); err != nil {
			return err
		}
		if err := refuseExisting(ctx, tx, errRestoreConflict(bm.Name), headKey(v.InternalID, lname)); err != nil {
			return err
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
