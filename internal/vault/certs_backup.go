package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Certificate backup blobs follow key backups (keys_backup.go): every
// version of the certificate with its backing key and secret, and the
// policy. The metadata is sealed under the tenant's backup scope; each
// version's private key and secret value are sealed with an aad naming
// format, tenant, backup id, kind, version and position. A secret or key
// blob does not restore as a certificate, nor the reverse.
type certBackupMeta struct {
	ID      string        `json:"id"`
	Name    string        `json:"n"`
	Latest  string        `json:"l"`
	Policy  certPolicyRec `json:"p"`
	Certs   []certMeta    `json:"c"`
	Keys    []keyMeta     `json:"k"`
	Secrets []meta        `json:"s"`
}

func (s *Service) backupCert(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	v := rq.vault
	iid, name, lname := rq.certNames()
	var head *certHeadRec
	var pr *certPolicyRec
	var certs, keys, secrets []store.Record
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		head, _, err = getRec[certHeadRec](ctx, r, certHeadKey(iid, lname), errCertNotFound(name))
		if err != nil {
			return err
		}
		if pr, err = s.getPolicyRec(ctx, r, iid, lname); err != nil {
			return err
		}
		opts := store.ListOptions{Limit: maxBackupVersions + 1}
		if certs, err = r.List(ctx, certVersionsPrefix(iid, lname), opts); err != nil {
			return err
		}
		if keys, err = r.List(ctx, keyVersionsPrefix(iid, lname), opts); err != nil {
			return err
		}
		secrets, err = r.List(ctx, versionsPrefix(iid, lname), opts)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if len(certs) > maxBackupVersions {
		return 0, nil, certBackup.errTooManyVersions(name)
	}
	if pr == nil || len(keys) != len(certs) || len(secrets) != len(certs) {
		return 0, nil, errIntegrity(name, errorString("certificate, key and secret versions differ"))
	}
	w, err := s.newBackupWriter(ctx, certBackup, v.TenantID)
	if err != nil {
		return 0, nil, err
	}
	bm := certBackupMeta{ID: w.id, Name: head.Meta.Name, Latest: head.Meta.Version, Policy: *pr}
	for i := range certs {
		cm, err := store.DecodeJSON[certMeta](certs[i])
		if err != nil {
			return 0, nil, err
		}
		kr, err := store.DecodeJSON[keyVersionRec](keys[i])
		if err != nil {
			return 0, nil, err
		}
		sr, err := store.DecodeJSON[versionRec](secrets[i])
		if err != nil {
			return 0, nil, err
		}
		ver := cm.Version
		if kr.checkSlot(lname, ver) != nil || sr.checkSlot(lname, ver) != nil || strings.ToLower(cm.Name) != lname ||
			!kr.Managed || !sr.Managed {
			return 0, nil, errIntegrity(name, errorString("certificate, key and secret versions differ"))
		}
		keyDER, err := s.sealer.Open(ctx, iid, kr.Sealed, keySealAAD(iid, lname, ver))
		if err != nil {
			return 0, nil, errKeyIntegrity(name, err)
		}
		if err := w.add(keyDER, "key", ver, i); err != nil {
			return 0, nil, err
		}
		value, err := s.sealer.Open(ctx, iid, sr.Sealed, sealAAD(iid, lname, ver))
		if err != nil {
			return 0, nil, errIntegrity(name, err)
		}
		if err := w.add(value, "secret", ver, i); err != nil {
			return 0, nil, err
		}
		bm.Certs = append(bm.Certs, *cm)
		bm.Keys = append(bm.Keys, kr.keyMeta)
		bm.Secrets = append(bm.Secrets, sr.meta)
	}
	out, err := w.finish(bm)
	if err != nil {
		return 0, nil, err
	}
	rq.info.ObjectID = rq.base + "/certificates/" + head.Meta.Name
	return http.StatusOK, out, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// validCertBackupMeta checks the shape of an opened blob's metadata.
func validCertBackupMeta(bm *certBackupMeta, nValues int) bool {
	n := len(bm.Certs)
	vs, ok := newBackupVersions(bm.Name, bm.Latest, n)
	if !ok || len(bm.Keys) != n || len(bm.Secrets) != n || nValues != 2*n {
		return false
	}
	p := bm.Policy.Policy
	if p.KeyProps == nil || p.SecretProps == nil || p.X509Props == nil || normalizePolicy(&p, false) != nil {
		return false
	}
	for i := range bm.Certs {
		c, k, s := &bm.Certs[i], &bm.Keys[i], &bm.Secrets[i]
		ver := c.Version
		if !vs.add(ver, c.Name) || k.Version != ver || s.Version != ver ||
			!strings.EqualFold(k.Name, bm.Name) || !strings.EqualFold(s.Name, bm.Name) ||
			len(c.Tags) > MaxTags || !k.Managed || !s.Managed || (k.Kty != ktyRSA && k.Kty != ktyEC) || checkOpsFor(k.Kty, k.Ops) != nil {
			return false
		}
	}
	return vs.sawLatest
}

// openCertBackup opens a certificate blob for restore into vault v and
// checks that every private key is the one of its certificate.
func (s *Service) openCertBackup(ctx context.Context, v *VaultInfo, raw []byte) (*certBackupMeta, [][]byte, *azerr.Error) {
	var bm certBackupMeta
	r, e := s.openBackup(ctx, v, certBackup, raw, &bm)
	if e != nil {
		return nil, nil, e
	}
	if !validCertBackupMeta(&bm, r.count()) {
		return nil, nil, errBadBackup()
	}
	fail := func() (*certBackupMeta, [][]byte, *azerr.Error) {
		r.discard()
		return nil, nil, errBadBackup()
	}
	for i, c := range bm.Certs {
		kd, ok := r.open(2*i, bm.ID, "key", c.Version, i)
		if !ok {
			return fail()
		}
		if _, ok := r.open(2*i+1, bm.ID, "secret", c.Version, i); !ok {
			return fail()
		}
		k, err := parsePrivate(kd)
		if err != nil {
			return fail()
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil || !bytes.Equal(x5tOf(c.DER), c.X5t) {
			return fail()
		}
		if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(k.Public()) {
			return fail()
		}
	}
	return &bm, r.values, nil
}

func (s *Service) restoreCert(rq *request) (int, any, error) {
	raw, e := readRestoreBlob(rq, maxRestoreBodyBytes)
	if e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	v := rq.vault
	iid := v.InternalID
	bm, values, e := s.openCertBackup(ctx, v, raw)
	if e != nil {
		return 0, nil, e
	}
	lname := strings.ToLower(bm.Name)
	// The blob's values alternate: each version's key, then its secret.
	sealed, err := s.resealForVault(ctx, iid, values, func(j int) []byte {
		ver := bm.Certs[j/2].Version
		if j%2 == 0 {
			return keySealAAD(iid, lname, ver)
		}
		return sealAAD(iid, lname, ver)
	})
	if err != nil {
		return 0, nil, err
	}
	var latest certMeta
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if err := refuseExisting(ctx, tx,
			azerr.Conflict("A certificate, key or secret named %s already exists in this key vault; a certificate cannot be restored over it.", bm.Name),
			certHeadKey(iid, lname), headKey(iid, lname), keyHeadKey(iid, lname)); err != nil {
			return err
		}
		if err := refuseExisting(ctx, tx, errCertDeletedConflict(bm.Name),
			certDeletedKey(iid, lname), deletedKey(iid, lname), keyDeletedKey(iid, lname)); err != nil {
			return err
		}
		// Leftovers of a failed purge are cleared before writing.
		for _, p := range []string{certVersionsPrefix(iid, lname), keyVersionsPrefix(iid, lname), versionsPrefix(iid, lname)} {
			if err := deleteAll(ctx, tx, p); err != nil {
				return err
			}
		}
		var km keyMeta
		var sm meta
		for i := range bm.Certs {
			c, k, sv := bm.Certs[i], bm.Keys[i], bm.Secrets[i]
			sv.Kid = rq.base + "/keys/" + sv.Name + "/" + sv.Version
			if _, err := store.PutJSON(ctx, tx, certVersionKey(iid, lname, c.Version), c, store.Absent); err != nil {
				return err
			}
			if _, err := store.PutJSON(ctx, tx, keyVersionKey(iid, lname, c.Version), keyVersionRec{keyMeta: k, Sealed: sealed[2*i]}, store.Absent); err != nil {
				return err
			}
			if _, err := store.PutJSON(ctx, tx, versionKey(iid, lname, c.Version), versionRec{meta: sv, Sealed: sealed[2*i+1]}, store.Absent); err != nil {
				return err
			}
			if c.Version == bm.Latest {
				latest, km, sm = c, k, sv
			}
		}
		puts := []struct {
			key string
			v   any
		}{
			{certHeadKey(iid, lname), certHeadRec{Meta: latest}},
			{keyHeadKey(iid, lname), keyHeadRec{Meta: km}},
			{headKey(iid, lname), headRec{Meta: sm}},
			{certPolicyKey(iid, lname), bm.Policy},
		}
		for _, p := range puts {
			if _, err := store.PutJSON(ctx, tx, p.key, p.v, store.Any); err != nil {
				return err
			}
		}
		if err := putRenewEntry(ctx, tx, iid, lname, rq.vault.Name, latest.Version, &bm.Policy.Policy, latest.NotBefore, latest.Expires, false); err != nil {
			return err
		}
		return tx.Delete(ctx, certOpKey(iid, lname), store.Any)
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.certWireOf(&latest, true, &bm.Policy)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}
