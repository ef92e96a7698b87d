package vault

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// The certificates data plane. Layout (lname is the lower-cased name):
//
//	vault/{iid}/certs/h/{lname}             head: latest version's metadata
//	vault/{iid}/certs/v/{lname}/{version}   one version: metadata and DER certificate
//	vault/{iid}/certs/d/{lname}             deleted state (head moved here)
//	vault/{iid}/certs/p/{lname}             the certificate's policy
//	vault/{iid}/certs/o/{lname}             the latest create's certificate operation
//	vault/~cpurge/{unix20}/{iid}/{lname}    purge schedule index
//
// As in Key Vault, every certificate version has a backing key and a
// backing secret of the same name and version, written in the same
// transaction through the keys and secrets layouts and marked managed: the
// private key is sealed as any key's is, and the secret holds the PFX or PEM
// (with the private key when the policy marks it exportable). A managed key
// or secret cannot be set, updated, deleted, recovered, purged or backed up
// by itself; deleting, recovering and purging the certificate carries both.

const certPurgeIndexPrefix = "vault/~cpurge/"

func certHeadPrefix(iid string) string    { return vaultPrefix(iid) + "certs/h/" }
func certDeletedPrefix(iid string) string { return vaultPrefix(iid) + "certs/d/" }
func certHeadKey(iid, lname string) string {
	return certHeadPrefix(iid) + lname
}
func certDeletedKey(iid, lname string) string { return certDeletedPrefix(iid) + lname }
func certVersionsPrefix(iid, lname string) string {
	return vaultPrefix(iid) + "certs/v/" + lname + "/"
}
func certVersionKey(iid, lname, version string) string {
	return certVersionsPrefix(iid, lname) + version
}
func certPolicyKey(iid, lname string) string { return vaultPrefix(iid) + "certs/p/" + lname }
func certOpKey(iid, lname string) string     { return vaultPrefix(iid) + "certs/o/" + lname }
func certPurgeIndexKey(at int64, iid, lname string) string {
	return indexKey(certPurgeIndexPrefix, at, iid, lname)
}

// certOpKeyAAD binds the sealed private key of a pending (Unknown issuer)
// operation to its slot and request.
func certOpKeyAAD(iid, lname, requestID string) []byte {
	return []byte("keyhaven/vault/certop/v1\x00" + iid + "\x00" + lname + "\x00" + requestID)
}

type certPolicyRec struct {
	Policy  certPolicy `json:"p"`
	Created int64      `json:"c"`
	Updated int64      `json:"u"`
}

// certOpState is the stored operation plus, for an Unknown issuer, the
// sealed private key awaiting the merge.
type certOpState struct {
	Op        certOpRec `json:"o"`
	SealedKey []byte    `json:"k,omitempty"`
}

func (s *Service) dispatchCert(rq *request) (int, any, error) {
	switch rq.route.Op {
	case opCertCreate:
		return s.createCert(rq)
	case opCertImport:
		return s.importCert(rq)
	case opCertGet:
		return s.getCert(rq)
	case opCertList:
		return s.listCerts(rq)
	case opCertListVersions:
		return s.listCertVersions(rq)
	case opCertUpdate:
		return s.updateCert(rq)
	case opCertPolicyGet:
		return s.getCertPolicy(rq)
	case opCertPolicyUpdate:
		return s.updateCertPolicy(rq)
	case opCertDelete:
		return s.deleteCert(rq)
	case opCertGetDeleted:
		return s.getDeletedCert(rq)
	case opCertListDeleted:
		return s.listDeletedCerts(rq)
	case opCertRecover:
		return s.recoverCert(rq)
	case opCertPurge:
		return s.purgeCert(rq)
	case opCertBackup:
		return s.backupCert(rq)
	case opCertRestore:
		return s.restoreCert(rq)
	case opCertOpGet, opCertOpUpdate, opCertOpDelete:
		return s.certOperation(rq)
	case opCertMerge:
		return s.mergeCert(rq)
	}
	return 0, nil, errRouteNotFound(rq.r.Method, rq.rawPath)
}

func (rq *request) certNames() (iid, name, lname string) {
	return rq.vault.InternalID, rq.route.Name, strings.ToLower(rq.route.Name)
}

// policyWire renders a stored policy with its id.
func (rq *request) policyWire(name string, pr *certPolicyRec) *certPolicy {
	if pr == nil {
		return nil
	}
	p := pr.Policy
	p.ID = rq.base + "/certificates/" + name + "/policy"
	enabled := true
	if p.Attributes != nil && p.Attributes.Enabled != nil {
		enabled = *p.Attributes.Enabled
	}
	c, u := pr.Created, pr.Updated
	p.Attributes = &certPolicyAttrs{Enabled: &enabled, Created: &c, Updated: &u}
	return &p
}

// certWireOf renders a version; bundle adds cer, kid, sid and the policy.
func (rq *request) certWireOf(m *certMeta, bundle bool, pr *certPolicyRec) certWire {
	nbf, exp := m.NotBefore, m.Expires
	w := certWire{
		ID:         rq.base + "/certificates/" + m.Name + "/" + m.Version,
		X5t:        base64.RawURLEncoding.EncodeToString(m.X5t),
		Tags:       m.Tags,
		Attributes: rq.attributes(m.Enabled, &nbf, &exp, m.Created, m.Updated),
	}
	if bundle {
		w.Kid = rq.base + "/keys/" + m.Name + "/" + m.Version
		w.Sid = rq.base + "/secrets/" + m.Name + "/" + m.Version
		w.Cer = base64.StdEncoding.EncodeToString(m.DER)
		w.ContentType = m.ContentType
		w.Policy = rq.policyWire(m.Name, pr)
	}
	return w
}

func (rq *request) deletedCertWire(d *certDeletedRec, bundle bool, pr *certPolicyRec) certWire {
	w := rq.certWireOf(&d.Meta, bundle, pr)
	w.deletionWire = rq.deletion("deletedcertificates", d.Meta.Name, d.DeletedDate, d.PurgeAt)
	return w
}

func (rq *request) certOpWire(name string, o *certOpRec) certOpWire {
	w := certOpWire{
		ID: rq.base + "/certificates/" + name + "/pending", Cancel: o.Cancel, Status: o.Status,
		StatusDetails: o.StatusDetails, Error: o.Error, RequestID: o.RequestID,
	}
	iss := o.Issuer
	w.Issuer = &iss
	if len(o.CSR) > 0 {
		w.CSR = base64.StdEncoding.EncodeToString(o.CSR)
	}
	if o.Status == "completed" {
		w.Target = rq.base + "/certificates/" + name
	}
	return w
}

func readCertBody(rq *request) (*certIn, *certRequest, *azerr.Error) {
	body, e := readBody(rq, maxCertBodyBytes)
	if e != nil {
		return nil, nil, e
	}
	return parseCertBody(body)
}

func (s *Service) getPolicyRec(ctx context.Context, r store.Reader, iid, lname string) (*certPolicyRec, error) {
	pr, _, err := store.GetJSON[certPolicyRec](ctx, r, certPolicyKey(iid, lname))
	if notFound(err) {
		return nil, nil
	}
	return pr, err
}

func (s *Service) createCert(rq *request) (int, any, error) {
	in, req, e := readCertBody(rq)
	if e != nil {
		return 0, nil, e
	}
	if in.Value != nil || in.Pwd != nil {
		return 0, nil, azerr.BadParameter("Properties 'value' and 'pwd' belong to certificate import, not create.")
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	policy := req.Policy
	if policy == nil {
		pr, err := s.getPolicyRec(ctx, s.st, iid, lname)
		if err != nil {
			return 0, nil, err
		}
		if pr == nil {
			return 0, nil, azerr.BadParameter("Property 'policy' is required to create a new certificate.")
		}
		p := pr.Policy
		policy = &p
	}
	policy.ID, policy.Attributes = "", nil
	if e := normalizePolicy(policy, true); e != nil {
		return 0, nil, e
	}
	kp := policy.KeyProps
	var km keyMeta
	k, err := generateKey(s.rand, &keyRequest{Kty: kp.Kty, Size: kp.KeySize, Crv: kp.Crv}, &km)
	if err != nil {
		return 0, nil, azerr.Internal(err)
	}
	now := s.clk.Now()
	reqID, err := s.newVersion()
	if err != nil {
		return 0, nil, err
	}
	csr, err := makeCSR(s.rand, k, policy, now)
	if err != nil {
		return 0, nil, azerr.From(err)
	}
	op := certOpRec{Name: name, Issuer: *policy.Issuer, CSR: csr, RequestID: reqID}
	if policy.Issuer.Name == issuerUnknown {
		// The operation waits for a certificate signed elsewhere (merge).
		op.Status, op.StatusDetails = "inProgress", "Pending certificate created. Please Perform Merge to complete the request."
		op.Policy, op.Tags, op.Enabled = policy, req.Tags, req.Enabled
		der, err := marshalPrivate(k)
		if err != nil {
			return 0, nil, azerr.Internal(err)
		}
		sealed, err := s.sealer.Seal(ctx, iid, der, certOpKeyAAD(iid, lname, reqID))
		clear(der)
		if err != nil {
			return 0, nil, err
		}
		err = s.update(ctx, func(tx store.Tx) error {
			if e := checkCertNameFree(ctx, tx, iid, lname, name); e != nil {
				return e
			}
			_, err := store.PutJSON(ctx, tx, certOpKey(iid, lname), certOpState{Op: op, SealedKey: sealed}, store.Any)
			return err
		})
		if err != nil {
			return 0, nil, err
		}
		rq.w.Header().Set("Location", rq.base+"/certificates/"+name+"/pending?api-version="+rq.api)
		return http.StatusAccepted, rq.certOpWire(name, &op), nil
	}
	der, err := selfSign(s.rand, k, policy, now)
	if err != nil {
		return 0, nil, azerr.From(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return 0, nil, azerr.Internal(err)
	}
	op.Status = "completed"
	if _, err := s.storeCertVersion(rq, k, []*x509.Certificate{leaf}, policy, req, &op); err != nil {
		return 0, nil, err
	}
	rq.w.Header().Set("Location", rq.base+"/certificates/"+name+"/pending?api-version="+rq.api)
	return http.StatusAccepted, rq.certOpWire(name, &op), nil
}

// checkCertNameFree refuses a certificate name held by a deleted
// certificate, or by a key or secret of its own (not managed by a
// certificate), live or deleted.
func checkCertNameFree(ctx context.Context, r store.Reader, iid, lname, name string) error {
	if err := refuseExisting(ctx, r, errCertDeletedConflict(name), certDeletedKey(iid, lname)); err != nil {
		return err
	}
	if h, _, err := store.GetJSON[headRec](ctx, r, headKey(iid, lname)); err == nil && !h.Meta.Managed {
		return azerr.Conflict("A secret named %s already exists in this key vault; a certificate cannot take the name of a secret it does not manage.", name)
	} else if err != nil && !notFound(err) {
		return err
	}
	if h, _, err := store.GetJSON[keyHeadRec](ctx, r, keyHeadKey(iid, lname)); err == nil && !h.Meta.Managed {
		return azerr.Conflict("A key named %s already exists in this key vault; a certificate cannot take the name of a key it does not manage.", name)
	} else if err != nil && !notFound(err) {
		return err
	}
	if err := refuseExisting(ctx, r, errDeletedConflict(name), deletedKey(iid, lname)); err != nil {
		return err
	}
	if err := refuseExisting(ctx, r, errKeyDeletedConflict(name), keyDeletedKey(iid, lname)); err != nil {
		return err
	}
	return nil
}

// storeCertVersion writes a new version of the routed certificate: the
// certificate, its backing key and secret, the policy and (when given) the
// operation, in one transaction.
func (s *Service) storeCertVersion(rq *request, k crypto.Signer, chain []*x509.Certificate, policy *certPolicy, req *certRequest, op *certOpRec) (certMeta, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	exportable := policy.KeyProps.Exportable == nil || *policy.KeyProps.Exportable
	value, err := secretValue(s.rand, policy.SecretProps.ContentType, k, chain, exportable)
	if err != nil {
		return certMeta{}, azerr.Internal(err)
	}
	keyDER, err := marshalPrivate(k)
	if err != nil {
		return certMeta{}, azerr.Internal(err)
	}
	defer clear(keyDER)
	leaf := chain[0]
	now := s.clk.Now().Unix()
	var cm certMeta
	err = retryConflicts(func() error {
		version, err := s.newVersion()
		if err != nil {
			return err
		}
		cm = certMeta{Name: name, Version: version, Enabled: true, NotBefore: leaf.NotBefore.Unix(), Expires: leaf.NotAfter.Unix(),
			Created: now, Updated: now, Tags: req.Tags, ContentType: policy.SecretProps.ContentType, DER: leaf.Raw, X5t: x5tOf(leaf.Raw)}
		if req.Enabled != nil {
			cm.Enabled = *req.Enabled
		}
		nbf, exp := cm.NotBefore, cm.Expires
		var km keyMeta
		setPublic(&km, k)
		km.Name, km.Version, km.Enabled, km.Created, km.Updated = name, version, cm.Enabled, now, now
		km.NotBefore, km.Expires, km.Managed = &nbf, &exp, true
		km.Ops = certKeyOps(km.Kty, policy.X509Props.KeyUsage)
		sm := meta{Name: name, Version: version, Enabled: cm.Enabled, NotBefore: &nbf, Expires: &exp, Created: now, Updated: now,
			ContentType: cm.ContentType, Managed: true, Kid: rq.base + "/keys/" + name + "/" + version}
		sealedKey, err := s.sealer.Seal(ctx, iid, keyDER, keySealAAD(iid, lname, version))
		if err != nil {
			return err
		}
		sealedValue, err := s.sealer.Seal(ctx, iid, []byte(value), sealAAD(iid, lname, version))
		if err != nil {
			return err
		}
		return s.st.Update(ctx, func(tx store.Tx) error {
			if err := checkCertNameFree(ctx, tx, iid, lname, name); err != nil {
				return err
			}
			heads := []string{certHeadKey(iid, lname), keyHeadKey(iid, lname), headKey(iid, lname), certPolicyKey(iid, lname)}
			sm.Prev = ""
			renewal := req.renews != ""
			if old, _, err := store.GetJSON[certHeadRec](ctx, tx, heads[0]); err == nil {
				sm.Prev = old.Meta.Version
				if renewal {
					// Tags as they are now, not as read before the key
					// was generated.
					cm.Tags = old.Meta.Tags
				}
			} else if !notFound(err) {
				return err
			}
			if renewal && sm.Prev != req.renews {
				return errRenewedElsewhere
			}
			vers := make([]int64, len(heads))
			for i, h := range heads {
				vers[i] = store.Absent
				if rec, err := tx.Get(ctx, h); err == nil {
					vers[i] = rec.Version
				} else if !notFound(err) {
					return err
				}
			}
			puts := []struct {
				key string
				v   any
				pre int64
			}{
				{certVersionKey(iid, lname, version), cm, store.Absent},
				{heads[0], certHeadRec{Meta: cm}, vers[0]},
				{keyVersionKey(iid, lname, version), keyVersionRec{keyMeta: km, Sealed: sealedKey}, store.Absent},
				{heads[1], keyHeadRec{Meta: km}, vers[1]},
				{versionKey(iid, lname, version), versionRec{meta: sm, Sealed: sealedValue}, store.Absent},
				{heads[2], headRec{Meta: sm}, vers[2]},
			}
			for _, p := range puts {
				if _, err := store.PutJSON(ctx, tx, p.key, p.v, p.pre); err != nil {
					return err
				}
			}
			if !renewal { // a renewal leaves the policy as it is now (it may have changed meanwhile)
				pr := certPolicyRec{Policy: *policy, Created: now, Updated: now}
				if old, _, err := store.GetJSON[certPolicyRec](ctx, tx, heads[3]); err == nil {
					pr.Created = old.Created
				}
				pr.Policy.ID, pr.Policy.Attributes = "", nil
				if _, err := store.PutJSON(ctx, tx, heads[3], pr, vers[3]); err != nil {
					return err
				}
			} else if cur, _, err := store.GetJSON[certPolicyRec](ctx, tx, heads[3]); err == nil {
				policy = &cur.Policy
			}
			if err := putRenewEntry(ctx, tx, iid, lname, rq.vault.Name, version, policy, cm.NotBefore, cm.Expires, renewal); err != nil {
				return err
			}
			if op != nil {
				_, err := store.PutJSON(ctx, tx, certOpKey(iid, lname), certOpState{Op: *op}, store.Any)
				return err
			}
			return nil
		})
	})
	return cm, err
}

// certKeyOps are the backing key's operations for the key usages.
func certKeyOps(kty string, usages []string) []string {
	if len(usages) == 0 {
		return append([]string(nil), defaultKeyOps[kty]...)
	}
	var ops []string
	add := func(o ...string) {
		for _, x := range o {
			if !containsStr(ops, x) && containsStr(allowedKeyOps[kty], x) {
				ops = append(ops, x)
			}
		}
	}
	for _, u := range usages {
		switch u {
		case "digitalSignature", "nonRepudiation", "keyCertSign", "cRLSign":
			add("sign", "verify")
		case "keyEncipherment":
			add("wrapKey", "unwrapKey")
		case "dataEncipherment":
			add("encrypt", "decrypt")
		}
	}
	if ops == nil {
		ops = []string{}
	}
	return ops
}

func containsStr(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Service) importCert(rq *request) (int, any, error) {
	in, req, e := readCertBody(rq)
	if e != nil {
		return 0, nil, e
	}
	if in.Value == nil {
		return 0, nil, azerr.BadParameter("Property 'value' (the certificate to import, base64 PFX or PEM) is required.")
	}
	k, chain, ct, e := parseCertImport(req.Value, req.Pwd)
	if e != nil {
		return 0, nil, e
	}
	policy := policyFromCert(chain[0], k, ct)
	if given := req.Policy; given != nil {
		if given.SecretProps != nil && given.SecretProps.ContentType != "" && !strings.EqualFold(given.SecretProps.ContentType, ct) {
			return 0, nil, azerr.BadParameter("The policy's content type '%s' does not match the imported content (%s).", clip(given.SecretProps.ContentType, 64), ct)
		}
		if given.Issuer != nil {
			policy.Issuer = given.Issuer
		}
		if given.LifetimeActions != nil {
			policy.LifetimeActions = given.LifetimeActions
		}
		if kp := given.KeyProps; kp != nil {
			if kp.Exportable != nil {
				policy.KeyProps.Exportable = kp.Exportable
			}
			if kp.ReuseKey != nil {
				policy.KeyProps.ReuseKey = kp.ReuseKey
			}
		}
		if x := given.X509Props; x != nil {
			if x.Ekus != nil {
				policy.X509Props.Ekus = x.Ekus
			}
			if x.KeyUsage != nil {
				policy.X509Props.KeyUsage = x.KeyUsage
			}
			if x.ValidityMonths != 0 {
				policy.X509Props.ValidityMonths = x.ValidityMonths
			}
		}
	}
	if policy.X509Props.SANs.count() > maxCertSANs {
		return 0, nil, azerr.BadParameter("A certificate has at most %d subject alternative names.", maxCertSANs)
	}
	sans := policy.X509Props.SANs
	policy.X509Props.SANs = nil // taken from the certificate as it is
	if e := normalizePolicy(policy, false); e != nil {
		return 0, nil, e
	}
	policy.X509Props.SANs = sans
	cm, err := s.storeCertVersion(rq, k, chain, policy, req, nil)
	if err != nil {
		return 0, nil, err
	}
	pr := &certPolicyRec{Policy: *policy, Created: cm.Created, Updated: cm.Updated}
	out := rq.certWireOf(&cm, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

// loadCertVersion reads the requested (or latest) version and the policy.
func (s *Service) loadCertVersion(ctx context.Context, rq *request) (*certMeta, *certPolicyRec, error) {
	iid, name, lname := rq.certNames()
	version := rq.route.Version
	var m *certMeta
	var pr *certPolicyRec
	err := s.st.View(ctx, func(r store.Reader) error {
		h, _, err := getRec[certHeadRec](ctx, r, certHeadKey(iid, lname), errCertNotFound(nameOrID(name, version)))
		if err != nil {
			return err
		}
		if version == "" {
			version = h.Meta.Version
		}
		m, _, err = getRec[certMeta](ctx, r, certVersionKey(iid, lname, version), errCertNotFound(name+"/"+version))
		if err != nil {
			return err
		}
		if err := misplaced("certificate record", lname, version, m.Name, m.Version); err != nil {
			return errIntegrity(lname, err)
		}
		pr, err = s.getPolicyRec(ctx, r, iid, lname)
		return err
	})
	return m, pr, err
}

func (s *Service) getCert(rq *request) (int, any, error) {
	m, pr, err := s.loadCertVersion(rq.r.Context(), rq)
	if e := (*azerr.Error)(nil); errors.As(err, &e) && e.Code == "CertificateNotFound" && rq.route.Version == "" {
		if out, ok, err := s.pendingCert(rq); err != nil || ok {
			return http.StatusOK, out, err
		}
	}
	if err != nil {
		return 0, nil, err
	}
	out := rq.certWireOf(m, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

// pendingCert renders a certificate whose only version is still being
// issued (issuer Unknown, not merged yet) as Key Vault does: disabled, no
// cer, kid or sid, and a "pending" reference to its operation.
func (s *Service) pendingCert(rq *request) (any, bool, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	st, _, err := store.GetJSON[certOpState](ctx, s.st, certOpKey(iid, lname))
	if notFound(err) || (err == nil && (st.Op.Status == "completed" || st.Op.Policy == nil)) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	f := false
	w := certWire{
		ID:         rq.base + "/certificates/" + name + "/" + st.Op.RequestID,
		Tags:       st.Op.Tags,
		Attributes: attributesWire{Enabled: &f, RecoveryLevel: recoveryLevel(rq.vault)},
		Policy:     rq.policyWire(name, &certPolicyRec{Policy: *st.Op.Policy}),
		Pending:    &certPendingRef{ID: rq.base + "/certificates/" + name + "/pending"},
	}
	rq.info.ObjectID = w.ID
	return w, true, nil
}

func (s *Service) updateCert(rq *request) (int, any, error) {
	in, req, e := readCertBody(rq)
	if e != nil {
		return 0, nil, e
	}
	if in.Value != nil || in.Pwd != nil {
		return 0, nil, azerr.BadParameter("Only the attributes, tags and policy of a certificate can be updated.")
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	now := s.clk.Now().Unix()
	var m certMeta
	var pr *certPolicyRec
	err := s.update(ctx, func(tx store.Tx) error {
		h, hv, err := getRec[certHeadRec](ctx, tx, certHeadKey(iid, lname), errCertNotFound(name))
		if err != nil {
			return err
		}
		version := rq.route.Version
		if version == "" {
			version = h.Meta.Version
		}
		vm, vv, err := getRec[certMeta](ctx, tx, certVersionKey(iid, lname, version), errCertNotFound(name+"/"+version))
		if err != nil {
			return err
		}
		if req.Enabled != nil {
			vm.Enabled = *req.Enabled
			if err := setBackingEnabled(ctx, tx, iid, lname, version, vm.Enabled, now, version == h.Meta.Version); err != nil {
				return err
			}
		}
		if req.TagsSet {
			vm.Tags = req.Tags
		}
		vm.Updated = now
		m = *vm
		if _, err := store.PutJSON(ctx, tx, certVersionKey(iid, lname, version), vm, vv); err != nil {
			return err
		}
		if version == h.Meta.Version {
			if _, err := store.PutJSON(ctx, tx, certHeadKey(iid, lname), certHeadRec{Meta: m}, hv); err != nil {
				return err
			}
		}
		pr, err = s.getPolicyRec(ctx, tx, iid, lname)
		if err != nil {
			return err
		}
		if req.Policy != nil && pr != nil {
			return applyPolicyUpdate(ctx, tx, iid, lname, rq.vault.Name, pr, req.Policy, now)
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.certWireOf(&m, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

// setBackingEnabled carries a certificate version's enabled flag to its
// backing key and secret version (and their heads when it is the latest).
func setBackingEnabled(ctx context.Context, tx store.Tx, iid, lname, version string, enabled bool, now int64, latest bool) error {
	if vr, vv, err := store.GetJSON[keyVersionRec](ctx, tx, keyVersionKey(iid, lname, version)); err == nil {
		vr.Enabled, vr.Updated = enabled, now
		if _, err := store.PutJSON(ctx, tx, keyVersionKey(iid, lname, version), vr, vv); err != nil {
			return err
		}
		if latest {
			if _, err := store.PutJSON(ctx, tx, keyHeadKey(iid, lname), keyHeadRec{Meta: vr.keyMeta}, store.Any); err != nil {
				return err
			}
		}
	} else if !notFound(err) {
		return err
	}
	if vr, vv, err := store.GetJSON[versionRec](ctx, tx, versionKey(iid, lname, version)); err == nil {
		vr.Enabled, vr.Updated = enabled, now
		if _, err := store.PutJSON(ctx, tx, versionKey(iid, lname, version), vr, vv); err != nil {
			return err
		}
		if latest {
			if _, err := store.PutJSON(ctx, tx, headKey(iid, lname), headRec{Meta: vr.meta}, store.Any); err != nil {
				return err
			}
		}
	} else if !notFound(err) {
		return err
	}
	return nil
}

// applyPolicyUpdate merges upd into the stored policy, validates and
// writes it, and schedules the latest version's renewal under it; pr is
// updated in place.
func applyPolicyUpdate(ctx context.Context, tx store.Tx, iid, lname, vaultName string, pr *certPolicyRec, upd *certPolicy, now int64) error {
	p := pr.Policy
	mergePolicy(&p, upd)
	p.ID = ""
	enabled := p.Attributes
	p.Attributes = nil
	if e := normalizePolicy(&p, p.Issuer != nil && p.Issuer.Name == issuerSelf); e != nil {
		return e
	}
	if enabled != nil && enabled.Enabled != nil {
		p.Attributes = &certPolicyAttrs{Enabled: enabled.Enabled}
	}
	pr.Policy, pr.Updated = p, now
	if _, err := store.PutJSON(ctx, tx, certPolicyKey(iid, lname), pr, store.Any); err != nil {
		return err
	}
	h, _, err := store.GetJSON[certHeadRec](ctx, tx, certHeadKey(iid, lname))
	if notFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return putRenewEntry(ctx, tx, iid, lname, vaultName, h.Meta.Version, &pr.Policy, h.Meta.NotBefore, h.Meta.Expires, false)
}

func (s *Service) getCertPolicy(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	pr, err := s.getPolicyRec(ctx, s.st, iid, lname)
	if err != nil {
		return 0, nil, err
	}
	if pr == nil {
		// A certificate still pending (issuer Unknown) has its policy in
		// the operation until the merge.
		st, _, err := store.GetJSON[certOpState](ctx, s.st, certOpKey(iid, lname))
		if notFound(err) || (err == nil && st.Op.Policy == nil) {
			return 0, nil, errCertNotFound(name)
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, rq.policyWire(name, &certPolicyRec{Policy: *st.Op.Policy}), nil
	}
	if ok, err := exists(ctx, s.st, certHeadKey(iid, lname)); err != nil {
		return 0, nil, err
	} else if !ok {
		if ok, err := exists(ctx, s.st, certOpKey(iid, lname)); err != nil || !ok {
			if err != nil {
				return 0, nil, err
			}
			return 0, nil, errCertNotFound(name)
		}
	}
	return http.StatusOK, rq.policyWire(name, pr), nil
}

func (s *Service) updateCertPolicy(rq *request) (int, any, error) {
	body, e := readBody(rq, maxCertBodyBytes)
	if e != nil {
		return 0, nil, e
	}
	var upd certPolicy
	if e := decodeJSON(body, &upd); e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	now := s.clk.Now().Unix()
	var pr *certPolicyRec
	err := s.update(ctx, func(tx store.Tx) error {
		if err := requireExisting(ctx, tx, errCertNotFound(name), certHeadKey(iid, lname)); err != nil {
			return err
		}
		var err error
		pr, err = s.getPolicyRec(ctx, tx, iid, lname)
		if err != nil {
			return err
		}
		if pr == nil {
			pr = &certPolicyRec{Created: now}
		}
		return applyPolicyUpdate(ctx, tx, iid, lname, rq.vault.Name, pr, &upd, now)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rq.policyWire(name, pr), nil
}

func (s *Service) deleteCert(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	now := s.clk.Now().Unix()
	var d certDeletedRec
	var pr *certPolicyRec
	err := s.update(ctx, func(tx store.Tx) error {
		h, hv, err := getRec[certHeadRec](ctx, tx, certHeadKey(iid, lname), errCertNotFound(name))
		if err != nil {
			return err
		}
		purgeAt := purgeAtFrom(now, rq.vault)
		d = certDeletedRec{Meta: h.Meta, DeletedDate: now, PurgeAt: purgeAt}
		if err := moveRec(ctx, tx, certHeadKey(iid, lname), hv, certDeletedKey(iid, lname), d); err != nil {
			return err
		}
		if _, err := tx.Put(ctx, certPurgeIndexKey(purgeAt, iid, lname), nil, store.Any); err != nil {
			return err
		}
		// The backing key and secret go with it (no purge index entries of
		// their own: the certificate's purge removes them).
		if sh, shv, err := store.GetJSON[headRec](ctx, tx, headKey(iid, lname)); err == nil && sh.Meta.Managed {
			if err := moveRec(ctx, tx, headKey(iid, lname), shv, deletedKey(iid, lname), deletedRec{Meta: sh.Meta, DeletedDate: now, PurgeAt: purgeAt}); err != nil {
				return err
			}
		} else if err != nil && !notFound(err) {
			return err
		}
		if kh, khv, err := store.GetJSON[keyHeadRec](ctx, tx, keyHeadKey(iid, lname)); err == nil && kh.Meta.Managed {
			if err := moveRec(ctx, tx, keyHeadKey(iid, lname), khv, keyDeletedKey(iid, lname), keyDeletedRec{Meta: kh.Meta, DeletedDate: now, PurgeAt: purgeAt}); err != nil {
				return err
			}
		} else if err != nil && !notFound(err) {
			return err
		}
		if err := tx.Delete(ctx, certOpKey(iid, lname), store.Any); err != nil {
			return err
		}
		pr, err = s.getPolicyRec(ctx, tx, iid, lname)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.deletedCertWire(&d, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func getDeletedCertRec(ctx context.Context, r store.Reader, iid, lname, name string) (*certDeletedRec, int64, error) {
	return getRec[certDeletedRec](ctx, r, certDeletedKey(iid, lname), errDeletedCertNotFound(name))
}

func (s *Service) getDeletedCert(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	d, _, err := getDeletedCertRec(ctx, s.st, iid, lname, name)
	if err != nil {
		return 0, nil, err
	}
	pr, err := s.getPolicyRec(ctx, s.st, iid, lname)
	if err != nil {
		return 0, nil, err
	}
	out := rq.deletedCertWire(d, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) recoverCert(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	var m certMeta
	var pr *certPolicyRec
	err := s.update(ctx, func(tx store.Tx) error {
		d, dv, err := getDeletedCertRec(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		m = d.Meta
		if err := moveRec(ctx, tx, certDeletedKey(iid, lname), dv, certHeadKey(iid, lname), certHeadRec{Meta: m}); err != nil {
			return err
		}
		if err := tx.Delete(ctx, certPurgeIndexKey(d.PurgeAt, iid, lname), store.Any); err != nil {
			return err
		}
		if sd, sdv, err := store.GetJSON[deletedRec](ctx, tx, deletedKey(iid, lname)); err == nil && sd.Meta.Managed {
			if err := moveRec(ctx, tx, deletedKey(iid, lname), sdv, headKey(iid, lname), headRec{Meta: sd.Meta}); err != nil {
				return err
			}
		} else if err != nil && !notFound(err) {
			return err
		}
		if kd, kdv, err := store.GetJSON[keyDeletedRec](ctx, tx, keyDeletedKey(iid, lname)); err == nil && kd.Meta.Managed {
			if err := moveRec(ctx, tx, keyDeletedKey(iid, lname), kdv, keyHeadKey(iid, lname), keyHeadRec{Meta: kd.Meta}); err != nil {
				return err
			}
		} else if err != nil && !notFound(err) {
			return err
		}
		pr, err = s.getPolicyRec(ctx, tx, iid, lname)
		if err != nil || pr == nil {
			return err
		}
		// A renewal that fell due while deleted runs at once.
		return putRenewEntry(ctx, tx, iid, lname, rq.vault.Name, m.Version, &pr.Policy, m.NotBefore, m.Expires, false)
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.certWireOf(&m, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) purgeCert(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	err := s.update(ctx, func(tx store.Tx) error {
		d, dv, err := getDeletedCertRec(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		if rq.vault.EnablePurgeProtection {
			return errPurgeProtected(rq.vault)
		}
		return purgeCertTx(ctx, tx, iid, lname, d, dv)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// purgeCertTx removes a deleted certificate for good, with its backing key
// and secret: every version, the policy, the deleted records and the purge
// index entry.
func purgeCertTx(ctx context.Context, tx store.Tx, iid, lname string, d *certDeletedRec, dv int64) error {
	if sd, _, err := store.GetJSON[deletedRec](ctx, tx, deletedKey(iid, lname)); err == nil && sd.Meta.Managed {
		if err := deleteAll(ctx, tx, versionsPrefix(iid, lname)); err != nil {
			return err
		}
		if err := tx.Delete(ctx, deletedKey(iid, lname), store.Any); err != nil {
			return err
		}
	} else if err != nil && !notFound(err) {
		return err
	}
	if kd, _, err := store.GetJSON[keyDeletedRec](ctx, tx, keyDeletedKey(iid, lname)); err == nil && kd.Meta.Managed {
		if err := deleteAll(ctx, tx, keyVersionsPrefix(iid, lname)); err != nil {
			return err
		}
		if err := tx.Delete(ctx, keyDeletedKey(iid, lname), store.Any); err != nil {
			return err
		}
	} else if err != nil && !notFound(err) {
		return err
	}
	for _, k := range []string{certPolicyKey(iid, lname), certOpKey(iid, lname), certPurgeIndexKey(d.PurgeAt, iid, lname)} {
		if err := tx.Delete(ctx, k, store.Any); err != nil {
			return err
		}
	}
	if err := deleteAll(ctx, tx, certVersionsPrefix(iid, lname)); err != nil {
		return err
	}
	return tx.Delete(ctx, certDeletedKey(iid, lname), dv)
}

func (s *Service) listCerts(rq *request) (int, any, error) {
	prefix := certHeadPrefix(rq.vault.InternalID)
	return listRecords(s, rq, prefix, lowerName, "/certificates", func(h *certHeadRec) certWire {
		w := rq.certWireOf(&h.Meta, false, nil)
		w.ID = rq.base + "/certificates/" + h.Meta.Name
		return w
	})
}

func (s *Service) listCertVersions(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	if err := requireExisting(ctx, s.st, errCertNotFound(name), certHeadKey(iid, lname)); err != nil {
		return 0, nil, err
	}
	return listRecords(s, rq, certVersionsPrefix(iid, lname), lowerVersion, "/certificates/"+name+"/versions", func(m *certMeta) certWire {
		return rq.certWireOf(m, false, nil)
	})
}

func (s *Service) listDeletedCerts(rq *request) (int, any, error) {
	prefix := certDeletedPrefix(rq.vault.InternalID)
	return listRecords(s, rq, prefix, lowerName, "/deletedcertificates", func(d *certDeletedRec) certWire {
		w := rq.deletedCertWire(d, false, nil)
		w.ID = rq.base + "/certificates/" + d.Meta.Name
		return w
	})
}

// certOperation answers GET, PATCH (cancel) and DELETE of
// /certificates/{name}/pending.
func (s *Service) certOperation(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	var cancel *bool
	if rq.route.Op == opCertOpUpdate {
		body, e := readBody(rq, maxCertBodyBytes)
		if e != nil {
			return 0, nil, e
		}
		var in certOpIn
		if e := decodeJSON(body, &in); e != nil {
			return 0, nil, e
		}
		if in.Cancel == nil {
			return 0, nil, azerr.BadParameter("Property 'cancellation_requested' is required.")
		}
		cancel = in.Cancel
	}
	var op certOpRec
	err := s.update(ctx, func(tx store.Tx) error {
		st, sv, err := getRec[certOpState](ctx, tx, certOpKey(iid, lname), errCertOpNotFound(name))
		if err != nil {
			return err
		}
		op = st.Op
		switch rq.route.Op {
		case opCertOpDelete:
			return tx.Delete(ctx, certOpKey(iid, lname), sv)
		case opCertOpUpdate:
			if *cancel {
				op.Cancel = true
				if op.Status == "inProgress" {
					op.Status, op.StatusDetails, st.SealedKey = "cancelled", "The certificate operation was cancelled.", nil
				}
				st.Op = op
				_, err := store.PutJSON(ctx, tx, certOpKey(iid, lname), st, sv)
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, rq.certOpWire(name, &op), nil
}

// mergeCert completes an Unknown-issuer operation with the certificate
// (chain) signed elsewhere for its CSR's key.
func (s *Service) mergeCert(rq *request) (int, any, error) {
	body, e := readBody(rq, maxCertBodyBytes)
	if e != nil {
		return 0, nil, e
	}
	var in certMergeIn
	if e := decodeJSON(body, &in); e != nil {
		return 0, nil, e
	}
	if len(in.X5c) == 0 || len(in.X5c) > maxCertChain {
		return 0, nil, azerr.BadParameter("Property 'x5c' must hold 1 to %d base64 DER certificates, the signed certificate first.", maxCertChain)
	}
	var chain []*x509.Certificate
	for _, c := range in.X5c {
		der, err := base64.StdEncoding.DecodeString(c)
		if err != nil {
			return 0, nil, azerr.BadParameter("Property 'x5c' must hold base64 DER certificates.")
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return 0, nil, azerr.BadParameter("A certificate of 'x5c' cannot be parsed.")
		}
		chain = append(chain, cert)
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.certNames()
	st, _, err := getRec[certOpState](ctx, s.st, certOpKey(iid, lname), errCertOpNotFound(name))
	if err != nil {
		return 0, nil, err
	}
	if st.Op.Status != "inProgress" || len(st.SealedKey) == 0 || st.Op.Policy == nil {
		return 0, nil, azerr.Forbidden("The certificate operation of %s is not waiting for a merge (status %s).", name, st.Op.Status)
	}
	der, err := s.sealer.Open(ctx, iid, st.SealedKey, certOpKeyAAD(iid, lname, st.Op.RequestID))
	if err != nil {
		return 0, nil, errIntegrity(name, err)
	}
	k, err := parsePrivate(der)
	clear(der)
	if err != nil {
		return 0, nil, errIntegrity(name, err)
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(k.Public()) {
		return 0, nil, azerr.BadParameter("Public key from x509 certificate and key of this instance doesn't match.")
	}
	req := &certRequest{Tags: st.Op.Tags, TagsSet: st.Op.Tags != nil, Enabled: st.Op.Enabled}
	if in.Attributes != nil {
		req.Enabled = in.Attributes.Enabled
	}
	if in.Tags != nil {
		tags, e := parseTags(in.Tags)
		if e != nil {
			return 0, nil, e
		}
		req.Tags, req.TagsSet = tags, true
	}
	op := st.Op
	op.Status, op.StatusDetails, op.Policy, op.Tags, op.Enabled = "completed", "", nil, nil, nil
	cm, err := s.storeCertVersion(rq, k, chain, st.Op.Policy, req, &op)
	if err != nil {
		return 0, nil, err
	}
	pr := &certPolicyRec{Policy: *st.Op.Policy, Created: cm.Created, Updated: cm.Updated}
	out := rq.certWireOf(&cm, true, pr)
	rq.info.ObjectID = out.ID
	return http.StatusCreated, out, nil
}
