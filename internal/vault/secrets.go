package vault

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// maxTxAttempts bounds retries of a write that lost a precondition race.
const maxTxAttempts = 8

// retentionDays is the vault's soft-delete retention (Azure's default 90).
func retentionDays(v *VaultInfo) int {
	if v.SoftDeleteRetentionInDays <= 0 {
		return 90
	}
	return v.SoftDeleteRetentionInDays
}

// purgeAtFrom is when an object of vault v deleted at now is purged.
func purgeAtFrom(now int64, v *VaultInfo) int64 { return now + int64(retentionDays(v))*86400 }

// recoveryLevel is the deletion recovery level Key Vault reports for the
// vault's soft-delete settings.
func recoveryLevel(v *VaultInfo) string {
	level := "Recoverable"
	if retentionDays(v) < 90 {
		level = "CustomizedRecoverable"
	}
	if !v.EnablePurgeProtection {
		level += "+Purgeable"
	}
	return level
}

// attributes renders a version's attributes with the vault's recovery
// level (and, from 7.1, its recoverable days).
func (rq *request) attributes(enabled bool, nbf, exp *int64, created, updated int64) attributesWire {
	a := attributesWire{
		Enabled: &enabled, NotBefore: nbf, Expires: exp,
		Created: &created, Updated: &updated, RecoveryLevel: recoveryLevel(rq.vault),
	}
	if hasRecoverableDays(rq.api) {
		d := retentionDays(rq.vault)
		a.RecoverableDays = &d
	}
	return a
}

// wire renders a version's metadata; the value is added by the caller.
func (rq *request) wire(m *meta, withVersion bool) secretWire {
	id := rq.base + "/secrets/" + m.Name
	if withVersion {
		id += "/" + m.Version
	}
	w := secretWire{
		ID: id, ContentType: m.ContentType, Tags: m.Tags, Kid: m.Kid,
		Attributes: rq.attributes(m.Enabled, m.NotBefore, m.Expires, m.Created, m.Updated),
	}
	if m.Managed {
		t := true
		w.Managed = &t
		// The backing key of a certificate, named on the vault as addressed.
		w.Kid = rq.base + "/keys/" + m.Name + "/" + m.Version
		w.PreviousVersion = m.Prev
	}
	return w
}

// deletion renders the deletion facts of the object name in the deleted
// collection coll.
func (rq *request) deletion(coll, name string, deletedDate, purgeAt int64) deletionWire {
	return deletionWire{RecoveryID: rq.base + "/" + coll + "/" + name, DeletedDate: &deletedDate, ScheduledPurgeDate: &purgeAt}
}

func (rq *request) deletedWire(d *deletedRec, withVersion bool) secretWire {
	w := rq.wire(&d.Meta, withVersion)
	w.deletionWire = rq.deletion("deletedsecrets", d.Meta.Name, d.DeletedDate, d.PurgeAt)
	return w
}

func applyUpdate(m *meta, req *setRequest) {
	if req.ContentType != nil {
		m.ContentType = *req.ContentType
	}
	req.apply(&m.Enabled, &m.NotBefore, &m.Expires, &m.Tags)
}

// retryConflicts runs a write again when it lost a precondition race with a
// concurrent writer of the same records.
func retryConflicts(fn func() error) error {
	var err error
	for range maxTxAttempts {
		if err = fn(); !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return err
}

// update runs fn in a write transaction, again when it loses a
// precondition race with a concurrent writer.
func (s *Service) update(ctx context.Context, fn func(tx store.Tx) error) error {
	return retryConflicts(func() error { return s.st.Update(ctx, fn) })
}

// getHead reads a secret's head record; a missing one is SecretNotFound.
func getHead(ctx context.Context, r store.Reader, iid, lname, name string) (*headRec, int64, error) {
	return getRec[headRec](ctx, r, headKey(iid, lname), errSecretNotFound(name))
}

// getDeletedRec reads a deleted secret; a missing one is
// DeletedSecretNotFound.
func getDeletedRec(ctx context.Context, r store.Reader, iid, lname, name string) (*deletedRec, int64, error) {
	return getRec[deletedRec](ctx, r, deletedKey(iid, lname), errDeletedNotFound(name))
}

// readSecretBody reads and parses a set (requireValue) or update body.
func readSecretBody(rq *request, requireValue bool) (*setRequest, *azerr.Error) {
	body, e := readBody(rq, maxSetBodyBytes)
	if e != nil {
		return nil, e
	}
	return parseSecretBody(body, requireValue)
}

// secretNames returns the vault's internal id, the secret name as routed,
// and the lower-cased name that keys its records (names are
// case-insensitive).
func (rq *request) secretNames() (iid, name, lname string) {
	return rq.vault.InternalID, rq.route.Name, strings.ToLower(rq.route.Name)
}

func (s *Service) setSecret(rq *request) (int, any, error) {
	req, e := readSecretBody(rq, true)
	if e != nil {
		return 0, nil, e
	}
	// The event identifies the value (for forensics) by its audit HMAC,
	// also when the set then fails: an attempt is worth tracing too.
	if h := rq.info.HMAC; h != nil {
		rq.info.ValueHMAC = h(*req.Value)
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	now := s.clk.Now().Unix()
	var m meta
	var sealed []byte
	err := retryConflicts(func() error {
		version, err := s.newVersion()
		if err != nil {
			return err
		}
		m = meta{Name: name, Version: version, Enabled: true, Created: now, Updated: now}
		applyUpdate(&m, req)
		// Sealing happens outside the transaction: Update may run its
		// function more than once.
		sealed, err = s.sealer.Seal(ctx, iid, []byte(*req.Value), sealAAD(iid, lname, version))
		if err != nil {
			return err
		}
		return s.st.Update(ctx, func(tx store.Tx) error {
			if err := refuseExisting(ctx, tx, errDeletedConflict(name), deletedKey(iid, lname)); err != nil {
				return err
			}
			headVer := store.Absent
			if rec, err := tx.Get(ctx, headKey(iid, lname)); err == nil {
				headVer = rec.Version
				if prev, ok, err := s.replayOf(ctx, tx, rec, iid, lname, req); err != nil {
					return err
				} else if ok {
					m = prev
					return nil
				}
			} else if !notFound(err) {
				return err
			}
			if _, err := store.PutJSON(ctx, tx, versionKey(iid, lname, version), versionRec{meta: m, Sealed: sealed}, store.Absent); err != nil {
				return err
			}
			_, err = store.PutJSON(ctx, tx, headKey(iid, lname), headRec{Meta: m}, headVer)
			return err
		})
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.wire(&m, true)
	out.Value = req.Value
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

// DeliveryTag makes a set idempotent: a set whose tags carry the same
// non-empty deliveryId as the latest version, with the same value, is a
// repeat of that delivery (a writer that crashed after the vault accepted it
// and before it recorded so) and answers with the existing version instead of
// adding an identical one. Writers such as the rotation engine's delivery
// identity may not read secrets back, so they cannot check for themselves.
const DeliveryTag = "deliveryId"

// replayOf reports whether req repeats the delivery of the latest version.
func (s *Service) replayOf(ctx context.Context, tx store.Tx, headRecord store.Record, iid, lname string, req *setRequest) (meta, bool, error) {
	id := req.Tags[DeliveryTag]
	if id == "" {
		return meta{}, false, nil
	}
	var h headRec
	if err := json.Unmarshal(headRecord.Value, &h); err != nil {
		return meta{}, false, err
	}
	if h.Meta.Tags[DeliveryTag] != id {
		return meta{}, false, nil
	}
	vr, _, err := store.GetJSON[versionRec](ctx, tx, versionKey(iid, lname, h.Meta.Version))
	if err != nil {
		return meta{}, false, err
	}
	if err := vr.checkSlot(lname, h.Meta.Version); err != nil {
		return meta{}, false, err
	}
	stored, err := s.sealer.Open(ctx, iid, vr.Sealed, sealAAD(iid, lname, vr.Version))
	if err != nil {
		return meta{}, false, errIntegrity(lname, err)
	}
	if subtle.ConstantTimeCompare(stored, []byte(*req.Value)) != 1 {
		return meta{}, false, nil // same id, other value: not a repeat; keep both
	}
	return h.Meta, true, nil
}

// loadVersion reads the head and the requested (or latest) version.
func (s *Service) loadVersion(rq *request) (*versionRec, error) {
	ctx := rq.r.Context()
	iid, name, version := rq.vault.InternalID, rq.route.Name, rq.route.Version
	lname := strings.ToLower(name)
	var vr *versionRec
	err := s.st.View(ctx, func(r store.Reader) error {
		h, _, err := getRec[headRec](ctx, r, headKey(iid, lname), errSecretNotFound(nameOrID(name, version)))
		if err != nil {
			return err
		}
		if version == "" {
			version = h.Meta.Version
		}
		vr, _, err = getRec[versionRec](ctx, r, versionKey(iid, lname, version), errSecretNotFound(name+"/"+version))
		if err != nil {
			return err
		}
		return vr.checkSlot(lname, version)
	})
	return vr, err
}

func (s *Service) getSecret(rq *request) (int, any, error) {
	vr, err := s.loadVersion(rq)
	if err != nil {
		return 0, nil, err
	}
	now := s.clk.Now().Unix()
	switch {
	case !vr.Enabled:
		return 0, nil, errDisabled()
	case vr.NotBefore != nil && now < *vr.NotBefore:
		return 0, nil, errNotYetValid()
	case vr.Expires != nil && now >= *vr.Expires:
		return 0, nil, errExpired()
	}
	iid := rq.vault.InternalID
	// The aad names the slot the record was read from (checked by
	// loadVersion), never fields carried inside the record itself.
	plain, err := s.sealer.Open(rq.r.Context(), iid, vr.Sealed, sealAAD(iid, strings.ToLower(rq.route.Name), vr.Version))
	if err != nil {
		return 0, nil, errIntegrity(rq.route.Name, err)
	}
	defer clear(plain)
	out := rq.wire(&vr.meta, true)
	v, ct, e := convertOut(&vr.meta, plain, rq.r.URL.Query().Get("outContentType"))
	if e != nil {
		return 0, nil, e
	}
	out.Value, out.ContentType = &v, ct
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) updateSecret(rq *request) (int, any, error) {
	req, e := readSecretBody(rq, false)
	if e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	now := s.clk.Now().Unix()
	var m meta
	err := s.update(ctx, func(tx store.Tx) error {
		h, hv, err := getHead(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		version := rq.route.Version
		if version == "" {
			version = h.Meta.Version
		}
		vr, vv, err := getRec[versionRec](ctx, tx, versionKey(iid, lname, version), errSecretNotFound(name+"/"+version))
		if err != nil {
			return err
		}
		applyUpdate(&vr.meta, req)
		vr.Updated = now
		m = vr.meta
		if _, err := store.PutJSON(ctx, tx, versionKey(iid, lname, version), vr, vv); err != nil {
			return err
		}
		if version == h.Meta.Version {
			_, err := store.PutJSON(ctx, tx, headKey(iid, lname), headRec{Meta: m}, hv)
			return err
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.wire(&m, true)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) deleteSecret(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	now := s.clk.Now().Unix()
	var d deletedRec
	err := s.update(ctx, func(tx store.Tx) error {
		h, hv, err := getHead(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		d = deletedRec{Meta: h.Meta, DeletedDate: now, PurgeAt: purgeAtFrom(now, rq.vault)}
		if err := moveRec(ctx, tx, headKey(iid, lname), hv, deletedKey(iid, lname), d); err != nil {
			return err
		}
		_, err = tx.Put(ctx, purgeIndexKey(d.PurgeAt, iid, lname), nil, store.Any)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.deletedWire(&d, true)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) getDeleted(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	d, _, err := getDeletedRec(ctx, s.st, iid, lname, name)
	if err != nil {
		return 0, nil, err
	}
	out := rq.deletedWire(d, true)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) recoverDeleted(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	var m meta
	err := s.update(ctx, func(tx store.Tx) error {
		d, dv, err := getDeletedRec(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		m = d.Meta
		if err := moveRec(ctx, tx, deletedKey(iid, lname), dv, headKey(iid, lname), headRec{Meta: m}); err != nil {
			return err
		}
		return tx.Delete(ctx, purgeIndexKey(d.PurgeAt, iid, lname), store.Any)
	})
	if err != nil {
		return 0, nil, err
	}
	out := rq.wire(&m, true)
	rq.info.ObjectID = out.ID
	return http.StatusOK, out, nil
}

func (s *Service) purgeDeleted(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	err := s.update(ctx, func(tx store.Tx) error {
		d, dv, err := getDeletedRec(ctx, tx, iid, lname, name)
		if err != nil {
			return err
		}
		if rq.vault.EnablePurgeProtection {
			return errPurgeProtected(rq.vault)
		}
		return purgeTx(ctx, tx, iid, lname, d, dv)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// paging reads maxresults and $skiptoken. The token is the base64url of the
// last key component returned, so a page resumes with one ordered List.
func paging(rq *request, valid func(string) bool) (limit int, explicit bool, after string, e *azerr.Error) {
	q := rq.r.URL.Query()
	limit = MaxResultsLimit
	if v := q.Get("maxresults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxResultsLimit {
			return 0, false, "", azerr.BadParameter("The value of parameter 'maxresults' must be an integer between 1 and %d.", MaxResultsLimit)
		}
		limit, explicit = n, true
	}
	if tok := q.Get("$skiptoken"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(clip(tok, 256))
		if err != nil || !valid(string(b)) {
			return 0, false, "", azerr.BadParameter("The value of parameter '$skiptoken' is invalid.")
		}
		after = string(b)
	}
	return limit, explicit, after, nil
}

// nextLink is the absolute link to the page after last.
func (rq *request) nextLink(path, last string, limit int, explicit bool) *string {
	q := "api-version=" + url.QueryEscape(rq.api) + "&$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte(last))
	if explicit {
		q += "&maxresults=" + strconv.Itoa(limit)
	}
	link := rq.base + path + "?" + q
	return &link
}

func lowerName(s string) bool { return validName(s) && strings.ToLower(s) == s }
func lowerVersion(s string) bool {
	return versionRE.MatchString(s) && strings.ToLower(s) == s
}

// listPage lists one page of records under prefix, resuming after the key
// prefix+after.
func (s *Service) listPage(rq *request, prefix string, valid func(string) bool) ([]store.Record, string, int, bool, error) {
	limit, explicit, after, e := paging(rq, valid)
	if e != nil {
		return nil, "", 0, false, e
	}
	opts := store.ListOptions{Limit: limit + 1}
	if after != "" {
		opts.After = prefix + after
	}
	recs, err := s.st.List(rq.r.Context(), prefix, opts)
	if err != nil {
		return nil, "", 0, false, err
	}
	more := ""
	if len(recs) > limit {
		recs = recs[:limit]
		more = strings.TrimPrefix(recs[len(recs)-1].Key, prefix)
	}
	return recs, more, limit, explicit, nil
}

// listRecords answers a list operation: a page of the records under prefix
// (their last key segment checked with valid), each rendered with item, and
// the next page's link to path.
func listRecords[R, W any](s *Service, rq *request, prefix string, valid func(string) bool, path string, item func(*R) W) (int, any, error) {
	recs, more, limit, explicit, err := s.listPage(rq, prefix, valid)
	if err != nil {
		return 0, nil, err
	}
	out := listWire[W]{Value: make([]W, 0, len(recs))}
	for _, r := range recs {
		v, err := store.DecodeJSON[R](r)
		if err != nil {
			return 0, nil, err
		}
		out.Value = append(out.Value, item(v))
	}
	if more != "" {
		out.NextLink = rq.nextLink(path, more, limit, explicit)
	}
	return http.StatusOK, out, nil
}

func (s *Service) listSecrets(rq *request) (int, any, error) {
	prefix := headPrefix(rq.vault.InternalID)
	return listRecords(s, rq, prefix, lowerName, "/secrets", func(h *headRec) secretWire {
		return rq.wire(&h.Meta, false)
	})
}

func (s *Service) listVersions(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.secretNames()
	if err := requireExisting(ctx, s.st, errSecretNotFound(name), headKey(iid, lname)); err != nil {
		return 0, nil, err
	}
	return listRecords(s, rq, versionsPrefix(iid, lname), lowerVersion, "/secrets/"+name+"/versions", func(vr *versionRec) secretWire {
		return rq.wire(&vr.meta, true)
	})
}

func (s *Service) listDeleted(rq *request) (int, any, error) {
	prefix := deletedPrefix(rq.vault.InternalID)
	return listRecords(s, rq, prefix, lowerName, "/deletedsecrets", func(d *deletedRec) secretWire {
		return rq.deletedWire(d, false)
	})
}
