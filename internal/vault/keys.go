package vault

import (
	"context"
	"crypto"
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// The keys data plane. Layout (lname is the lower-cased key name):
//
//	vault/{iid}/keys/h/{lname}             head: latest version's metadata
//	vault/{iid}/keys/v/{lname}/{version}   one version: metadata, public key, sealed private key
//	vault/{iid}/keys/d/{lname}             deleted state (head moved here)
//	vault/~kpurge/{unix20}/{iid}/{lname}   purge schedule index
//
// The private key is sealed (PKCS #8) with the vault's data key, bound to
// (vault, "keys", name, version); it never leaves the service.

const keyPurgeIndexPrefix = "vault/~kpurge/"

func keyHeadPrefix(iid string) string    { return vaultPrefix(iid) + "keys/h/" }
func keyDeletedPrefix(iid string) string { return vaultPrefix(iid) + "keys/d/" }
func keyHeadKey(iid, lname string) string {
	return keyHeadPrefix(iid) + lname
}
func keyDeletedKey(iid, lname string) string { return keyDeletedPrefix(iid) + lname }
func keyVersionsPrefix(iid, lname string) string {
	return vaultPrefix(iid) + "keys/v/" + lname + "/"
}
func keyVersionKey(iid, lname, version string) string {
	return keyVersionsPrefix(iid, lname) + version
}
func keyPurgeIndexKey(at int64, iid, lname string) string {
	return indexKey(keyPurgeIndexPrefix, at, iid, lname)
}

// keySealAAD binds a sealed private key to its slot.
func keySealAAD(iid, lname, version string) []byte {
	return []byte("keyhaven/vault/keys/v1\x00" + iid + "\x00" + lname + "\x00" + version)
}

// Errors in Key Vault's shape.

const (
	innerKeyDisabled    = "KeyDisabled"
	innerKeyExpired     = "KeyExpired"
	innerKeyNotYetValid = "KeyNotYetValid"
)

func errKeyNotFound(nameOrID string) *azerr.Error {
	return errObjectNotFound("KeyNotFound", "key", nameOrID)
}

func errDeletedKeyNotFound(name string) *azerr.Error {
	return errDeletedObjectNotFound("KeyNotFound", "key", name)
}

func errKeyDeletedConflict(name string) *azerr.Error { return errObjectDeletedConflict("key", name) }

func errKeyRestoreConflict(name string) *azerr.Error { return errObjectRestoreConflict("key", name) }

func errHSMUnsupported() *azerr.Error {
	return azerr.BadParameter("keyhaven keeps keys in software: HSM-protected keys (RSA-HSM, EC-HSM, oct-HSM, BYOK 'key_hsm', 'Hsm': true, attestation) are not supported.")
}

func errNotExportable() *azerr.Error {
	return azerr.BadParameter("keyhaven keys are not exportable: release policies, 'exportable' keys and key release are not supported, and private key material never leaves the vault.")
}

func errBadRSAImport() *azerr.Error {
	return azerr.BadParameter("The RSA key to import is not valid (its members do not form a consistent RSA private key).")
}

func errKeyIntegrity(name string, cause error) *azerr.Error {
	return azerr.New(500, "InternalError",
		"The stored data of key '%s' failed its integrity check (it was altered or moved in storage) and cannot be served.", name).WithCause(cause)
}

func errKeyOpNotPermitted(op string) *azerr.Error {
	return azerr.Forbidden("Operation %s is not permitted on this key: it is not in the key's key_ops.", op)
}

// dispatchKey runs a key operation.
func (s *Service) dispatchKey(rq *request) (int, any, error) {
	switch rq.route.Op {
	case opKeyCreate:
		return s.createKey(rq)
	case opKeyImport:
		return s.importKey(rq)
	case opKeyGet:
		return s.getKey(rq)
	case opKeyList:
		return s.listKeys(rq)
	case opKeyListVersions:
		return s.listKeyVersions(rq)
	case opKeyUpdate:
		return s.updateKey(rq)
	case opKeyDelete:
		return s.deleteKey(rq)
	case opKeyGetDeleted:
		return s.getDeletedKey(rq)
	case opKeyListDeleted:
		return s.listDeletedKeys(rq)
	case opKeyRecover:
		return s.recoverKey(rq)
	case opKeyPurge:
		return s.purgeKey(rq)
	case opKeyBackup:
		return s.backupKey(rq)
	case opKeyRestore:
		return s.restoreKey(rq)
	case opKeyEncrypt, opKeyDecrypt, opKeyWrap, opKeyUnwrap:
		return s.cryptKey(rq)
	case opKeySign:
		return s.signKey(rq)
	case opKeyVerify:
		return s.verifyKey(rq)
	case opKeyRotate:
		return s.rotateLatest(rq, "")
	case opKeyRotationPolicyGet:
		return s.getKeyRotationPolicy(rq)
	case opKeyRotationPolicyUpdate:
		return s.updateKeyRotationPolicy(rq)
	}
	return 0, nil, errRouteNotFound(rq.r.Method, rq.rawPath)
}

// keyWireOf renders a version; bundle adds the public JWK, else the item's
// kid.
func (rq *request) keyWireOf(m *keyMeta, bundle bool) keyWire {
	kid := rq.base + "/keys/" + m.Name + "/" + m.Version
	w := keyWire{
		Tags:       m.Tags,
		Attributes: rq.attributes(m.Enabled, m.NotBefore, m.Expires, m.Created, m.Updated),
	}
	if m.Managed {
		t := true
		w.Managed = &t
	}
	if bundle {
		w.Key = m.jwk(kid)
	} else {
		w.Kid = kid
	}
	return w
}

func (rq *request) deletedKeyWire(d *keyDeletedRec, bundle bool) keyWire {
	w := rq.keyWireOf(&d.Meta, bundle)
	w.deletionWire = rq.deletion("deletedkeys", d.Meta.Name, d.DeletedDate, d.PurgeAt)
	return w
}

func (rq *request) keyNames() (iid, name, lname string) {
	return rq.vault.InternalID, rq.route.Name, strings.ToLower(rq.route.Name)
}

func readKeyBody(rq *request, kind keyKind) (*keyRequest, *azerr.Error) {
	body, e := readBody(rq, maxKeyBodyBytes)
	if e != nil {
		return nil, e
	}
	return parseKeyBody(body, kind)
}

func (s *Service) createKey(rq *request) (int, any, error) {
	req, e := readKeyBody(rq, keyBodyCreate)
	if e != nil {
		return 0, nil, e
	}
	if req.Ops == nil {
		req.Ops = slices.Clone(defaultKeyOps[req.Kty])
	} else if e := checkOpsFor(req.Kty, req.Ops); e != nil {
		return 0, nil, e
	}
	var m keyMeta
	k, err := generateKey(s.rand, req, &m)
	if err != nil {
		return 0, nil, azerr.Internal(err)
	}
	return s.storeNewKey(rq, req, k, m)
}

func (s *Service) importKey(rq *request) (int, any, error) {
	req, e := readKeyBody(rq, keyBodyImport)
	if e != nil {
		return 0, nil, e
	}
	k, e := importJWK(req.JWK)
	if e != nil {
		return 0, nil, e
	}
	var m keyMeta
	setPublic(&m, k)
	if req.Ops == nil {
		req.Ops = slices.Clone(defaultKeyOps[m.Kty])
	} else if e := checkOpsFor(m.Kty, req.Ops); e != nil {
		return 0, nil, e
	}
	return s.storeNewKey(rq, req, k, m)
}

// rotateKey adds a version with new key material of the latest version's
// type, size or curve, operations and tags (on demand: keyhaven has no
// rotation policies, so the new version gets no nbf/exp from one).
// storeNewKey writes a new version of the routed key holding k; m carries
// the public part.
func (s *Service) storeNewKey(rq *request, req *keyRequest, k crypto.Signer, m keyMeta) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	der, err := marshalPrivate(k)
	if err != nil {
		return 0, nil, azerr.Internal(err)
	}
	defer clear(der)
	now := s.clk.Now().Unix()
	err = retryConflicts(func() error {
		version, err := s.newVersion()
		if err != nil {
			return err
		}
		m.Name, m.Version, m.Enabled, m.Created, m.Updated = name, version, true, now, now
		m.Tags, m.NotBefore, m.Expires = nil, nil, nil
		applyKeyUpdate(&m, req)
		sealed, err := s.sealer.Seal(ctx, iid, der, keySealAAD(iid, lname, version))
		if err != nil {
			return err
		}
		return s.st.Update(ctx, func(tx store.Tx) error {
			if err := refuseExisting(ctx, tx, errKeyDeletedConflict(name), keyDeletedKey(iid, lname)); err != nil {
				return err
			}
			headVer := store.Absent
			if rec, err := tx.Get(ctx, keyHeadKey(iid, lname)); err == nil {
				headVer = rec.Version
				if req.renews != "" {
					var h keyHeadRec
					if err := json.Unmarshal(rec.Value, &h); err != nil {
						return err
					}
					if h.Meta.Version != req.renews {
						return errKeyRotatedElsewhere
					}
					// Tags and operations as they are now, not as read
					// before the key was generated.
					m.Tags, m.Ops = h.Meta.Tags, nonNil(h.Meta.Ops)
				}
			} else if !notFound(err) {
				return err
			}
			p, err := getKeyPolicy(ctx, tx, iid, lname)
			if err != nil {
				return err
			}
			if err := putKeyRotateEntry(ctx, tx, iid, lname, rq.vault.Name, p, &m, req.renews != ""); err != nil {
				return err
			}
			if _, err := store.PutJSON(ctx, tx, keyVersionKey(iid, lname, version), keyVersionRec{keyMeta: m, Sealed: sealed}, store.Absent); err != nil {
				return err
			}
			_, err = store.PutJSON(ctx, tx, keyHeadKey(iid, lname), keyHeadRec{Meta: m}, headVer)
			return err
		})
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.keyWireOf(&m, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}

// loadKeyVersion reads the requested (or latest) version of the routed key.
func (s *Service) loadKeyVersion(ctx context.Context, rq *request) (*keyVersionRec, error) {
	iid, name, lname := rq.keyNames()
	version := rq.route.Version
	var vr *keyVersionRec
	err := s.st.View(ctx, func(r store.Reader) error {
		h, _, err := getRec[keyHeadRec](ctx, r, keyHeadKey(iid, lname), errKeyNotFound(nameOrID(name, version)))
		if err != nil {
			return err
		}
		if version == "" {
			version = h.Meta.Version
		}
		vr, _, err = getRec[keyVersionRec](ctx, r, keyVersionKey(iid, lname, version), errKeyNotFound(name+"/"+version))
		if err != nil {
			return err
		}
		return vr.checkSlot(lname, version)
	})
	return vr, err
}

// openPrivate unseals a version's private key.
func (s *Service) openPrivate(ctx context.Context, rq *request, vr *keyVersionRec) (crypto.Signer, error) {
	iid, _, lname := rq.keyNames()
	der, err := s.sealer.Open(ctx, iid, vr.Sealed, keySealAAD(iid, lname, vr.Version))
	if err != nil {
		return nil, errKeyIntegrity(rq.route.Name, err)
	}
	defer clear(der)
	k, err := parsePrivate(der)
	if err != nil {
		return nil, errKeyIntegrity(rq.route.Name, err)
	}
	return k, nil
}

func (s *Service) getKey(rq *request) (int, any, error) {
	vr, err := s.loadKeyVersion(rq.r.Context(), rq)
	if err != nil {
		return 0, nil, err
	}
	if !vr.Enabled {
		return 0, nil, azerr.Forbidden("Operation get is not allowed on a disabled key.").WithInner(innerKeyDisabled)
	}
	out := rq.keyWireOf(&vr.keyMeta, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}

func (s *Service) updateKey(rq *request) (int, any, error) {
	req, e := readKeyBody(rq, keyBodyUpdate)
	if e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	now := s.clk.Now().Unix()
	var m keyMeta
	err := s.update(ctx, func(tx store.Tx) error {
		h, hv, err := getRec[keyHeadRec](ctx, tx, keyHeadKey(iid, lname), errKeyNotFound(name))
		if err != nil {
			return err
		}
		version := rq.route.Version
		if version == "" {
			version = h.Meta.Version
		}
		vr, vv, err := getRec[keyVersionRec](ctx, tx, keyVersionKey(iid, lname, version), errKeyNotFound(name+"/"+version))
		if err != nil {
			return err
		}
		if err := vr.checkSlot(lname, version); err != nil {
			return err
		}
		if req.Ops != nil {
			if e := checkOpsFor(vr.Kty, req.Ops); e != nil {
				return e
			}
		}
		applyKeyUpdate(&vr.keyMeta, req)
		vr.Updated = now
		m = vr.keyMeta
		if _, err := store.PutJSON(ctx, tx, keyVersionKey(iid, lname, version), vr, vv); err != nil {
			return err
		}
		if version == h.Meta.Version {
			if _, err := store.PutJSON(ctx, tx, keyHeadKey(iid, lname), keyHeadRec{Meta: m}, hv); err != nil {
				return err
			}
			// A new expiry moves a timeBeforeExpiry rotation.
			p, err := getKeyPolicy(ctx, tx, iid, lname)
			if err != nil {
				return err
			}
			return putKeyRotateEntry(ctx, tx, iid, lname, rq.vault.Name, p, &m, false)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.keyWireOf(&m, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}

func (s *Service) deleteKey(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	now := s.clk.Now().Unix()
	var d keyDeletedRec
	err := s.update(ctx, func(tx store.Tx) error {
		h, hv, err := getRec[keyHeadRec](ctx, tx, keyHeadKey(iid, lname), errKeyNotFound(name))
		if err != nil {
			return err
		}
		d = keyDeletedRec{Meta: h.Meta, DeletedDate: now, PurgeAt: purgeAtFrom(now, rq.vault)}
		if err := moveRec(ctx, tx, keyHeadKey(iid, lname), hv, keyDeletedKey(iid, lname), d); err != nil {
			return err
		}
		_, err = tx.Put(ctx, keyPurgeIndexKey(d.PurgeAt, iid, lname), nil, store.Any)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.deletedKeyWire(&d, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}

func getDeletedKeyRec(ctx context.Context, r store.Reader, iid, lname, name string) (*keyDeletedRec, int64, error) {
	return getRec[keyDeletedRec](ctx, r, keyDeletedKey(iid, lname), errDeletedKeyNotFound(name))
}

func (s *Service) getDeletedKey(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	d, _, err := getDeletedKeyRec(ctx, s.st, iid, lname, name)
	if err != nil {
		return 0, nil, err
	}
	out := rq.deletedKeyWire(d, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}

func (s *Service) recoverKey(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	var m keyMeta
	err := s.update(ctx, func(tx store.Tx) error {
		d, dv, err := getDeletedKeyRec(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		m = d.Meta
		if err := moveRec(ctx, tx, keyDeletedKey(iid, lname), dv, keyHeadKey(iid, lname), keyHeadRec{Meta: m}); err != nil {
			return err
		}
		if err := tx.Delete(ctx, keyPurgeIndexKey(d.PurgeAt, iid, lname), store.Any); err != nil {
			return err
		}
		// A rotation that fell due while deleted runs at once.
		p, err := getKeyPolicy(ctx, tx, iid, lname)
		if err != nil {
			return err
		}
		return putKeyRotateEntry(ctx, tx, iid, lname, rq.vault.Name, p, &m, false)
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.keyWireOf(&m, true)
	rq.info.ObjectID = out.Key.Kid
	return http.StatusOK, out, nil
}

func (s *Service) purgeKey(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	err := s.update(ctx, func(tx store.Tx) error {
		d, dv, err := getDeletedKeyRec(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		if rq.vault.EnablePurgeProtection {
			return errPurgeProtected(rq.vault)
		}
		return purgeKeyTx(ctx, tx, iid, lname, d, dv)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// purgeKeyTx removes a deleted key for good: every version, the deleted
// record and its purge index entry.
func purgeKeyTx(ctx context.Context, tx store.Tx, iid, lname string, d *keyDeletedRec, dv int64) error {
	if err := deleteAll(ctx, tx, keyVersionsPrefix(iid, lname)); err != nil {
		return err
	}
	if err := tx.Delete(ctx, keyDeletedKey(iid, lname), dv); err != nil {
		return err
	}
	// The policy goes with the key: a new key of the name starts without.
	if err := tx.Delete(ctx, keyPolicyKey(iid, lname), store.Any); err != nil && !notFound(err) {
		return err
	}
	return tx.Delete(ctx, keyPurgeIndexKey(d.PurgeAt, iid, lname), store.Any)
}

func (s *Service) listKeys(rq *request) (int, any, error) {
	prefix := keyHeadPrefix(rq.vault.InternalID)
	return listRecords(s, rq, prefix, lowerName, "/keys", func(h *keyHeadRec) keyWire {
		return rq.keyItem(&h.Meta)
	})
}

// keyItem is a KeyItem: kid names the key without a version in lists of
// keys, as Key Vault does; versions lists name the version.
func (rq *request) keyItem(m *keyMeta) keyWire {
	w := rq.keyWireOf(m, false)
	w.Kid = rq.base + "/keys/" + m.Name
	return w
}

func (s *Service) listKeyVersions(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	if err := requireExisting(ctx, s.st, errKeyNotFound(name), keyHeadKey(iid, lname)); err != nil {
		return 0, nil, err
	}
	return listRecords(s, rq, keyVersionsPrefix(iid, lname), lowerVersion, "/keys/"+name+"/versions", func(vr *keyVersionRec) keyWire {
		return rq.keyWireOf(&vr.keyMeta, false)
	})
}

func (s *Service) listDeletedKeys(rq *request) (int, any, error) {
	prefix := keyDeletedPrefix(rq.vault.InternalID)
	return listRecords(s, rq, prefix, lowerName, "/deletedkeys", func(d *keyDeletedRec) keyWire {
		w := rq.deletedKeyWire(d, false)
		w.Kid = rq.base + "/keys/" + d.Meta.Name
		return w
	})
}
