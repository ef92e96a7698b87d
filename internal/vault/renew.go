package vault

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Automatic renewal of self-issued certificates, as Key Vault does for a
// policy whose lifetime action is AutoRenew: when the trigger falls due
// (lifetime_percentage of the validity, or days_before_expiry), a new
// version is issued under the certificate's current policy, with a new key
// unless key_props.reuse_key.
//
// Each due renewal is an entry in an index ordered by time, written with the
// version it renews (when the version is stored, its policy updated, or the
// certificate recovered). An entry is only a hint: RenewDue checks it against
// the certificate as it is then, and drops it when the version is no longer
// the latest, the policy no longer puts the renewal at that time, or the
// certificate is gone. Nothing ever needs to find and remove old entries.

const renewIndexPrefix = "vault/~renew/"

func renewIndexKey(at int64, iid, lname string) string {
	return indexKey(renewIndexPrefix, at, iid, lname)
}

// indexKey is the key of a time-ordered index entry (zero-padded, so key
// order is time order), read back by parseIndexKey.
func indexKey(prefix string, at int64, iid, lname string) string {
	return fmt.Sprintf("%s%020d/%s/%s", prefix, at, iid, lname)
}

// errRenewedElsewhere: the version to renew is no longer the latest when
// the renewal commits (another replica renewed it, or a user created one).
var errRenewedElsewhere = errors.New("vault: the certificate version to renew is no longer the latest")

// renewEntry is an index entry's value.
type renewEntry struct {
	Vault   string `json:"vault"`
	Version string `json:"v"`
}

// renewAt is when policy p renews a version valid from nbf to exp (Unix
// seconds), or 0 when it does not renew automatically (no AutoRenew action,
// or an issuer keyhaven cannot sign for).
func renewAt(p *certPolicy, nbf, exp int64) int64 {
	if p == nil || p.Issuer == nil || p.Issuer.Name != issuerSelf {
		return 0
	}
	for _, la := range p.LifetimeActions {
		if la.Action == nil || la.Action.ActionType != "AutoRenew" || la.Trigger == nil {
			continue
		}
		switch {
		case la.Trigger.LifetimePercentage != nil:
			return nbf + (exp-nbf)*int64(*la.Trigger.LifetimePercentage)/100
		case la.Trigger.DaysBeforeExpiry != nil:
			return max(nbf, exp-int64(*la.Trigger.DaysBeforeExpiry)*86400)
		}
	}
	return 0
}

// putRenewEntry schedules the renewal of version (valid nbf..exp) of the
// certificate lname of vault iid, named vaultName, if p renews it.
func putRenewEntry(ctx context.Context, tx store.Tx, iid, lname, vaultName, version string, p *certPolicy, nbf, exp int64) error {
	at := renewAt(p, nbf, exp)
	if at == 0 {
		return nil
	}
	_, err := store.PutJSON(ctx, tx, renewIndexKey(at, iid, lname), renewEntry{Vault: vaultName, Version: version}, store.Any)
	return err
}

// Renewed is a version made by automatic renewal (a certificate) or
// rotation (a key).
type Renewed struct {
	Vault *VaultInfo
	Kind  string // RenewedCertificate or RenewedKey
	// ID is the new version's id, e.g.
	// https://v1.vault.localhost:8443/certificates/web/{version}.
	ID string
}

// Kinds of Renewed.
const (
	RenewedCertificate = "certificate"
	RenewedKey         = "key"
)

// RenewDue issues a new version of every certificate whose automatic
// renewal, and of every key whose automatic rotation, has fallen due, and
// returns them. The server calls it periodically. One that fails keeps its
// entry and is tried again on the next call; the others still run.
func (s *Service) RenewDue(ctx context.Context) ([]Renewed, error) {
	certs, err := s.drainDue(ctx, renewIndexPrefix, s.renewOne)
	keys, kerr := s.drainDue(ctx, keyRotateIndexPrefix, s.rotateKeyOne)
	return append(certs, keys...), errors.Join(err, kerr)
}

// drainDue runs one on every entry of the index under prefix that is due,
// and drops the entries one reports done or stale.
func (s *Service) drainDue(ctx context.Context, prefix string,
	one func(ctx context.Context, at int64, iid, lname string, e renewEntry) (*Renewed, bool, error)) ([]Renewed, error) {
	now := s.clk.Now().Unix()
	var out []Renewed
	var errs []error
	after := ""
	for {
		recs, err := s.st.List(ctx, prefix, store.ListOptions{After: after, Limit: purgeBatch})
		if err != nil {
			return out, fmt.Errorf("vault: list %s: %w", prefix, err)
		}
		for _, r := range recs {
			after = r.Key
			at, iid, lname, ok := parseIndexKey(prefix, r.Key)
			if ok && at > now {
				return out, errors.Join(errs...)
			}
			var e renewEntry
			if ok {
				ok = json.Unmarshal(r.Value, &e) == nil
			}
			var done *Renewed
			keep := false
			if ok {
				done, keep, err = one(ctx, at, iid, lname, e)
				if err != nil {
					errs = append(errs, fmt.Errorf("vault: renew or rotate %s of vault %s: %w", lname, e.Vault, err))
					continue
				}
			}
			if done != nil {
				out = append(out, *done)
			}
			if keep {
				continue
			}
			if err := s.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, r.Key, store.Any) }); err != nil && !notFound(err) {
				errs = append(errs, err)
			}
		}
		if len(recs) < purgeBatch {
			return out, errors.Join(errs...)
		}
	}
}

// entryVault finds the active vault an entry names. When there is none (the
// vault is deleted or replaced) it returns nil, and keep says whether the
// entry stays: while the object head still exists the vault may be
// recovered, and then the renewal runs late, at once.
func (s *Service) entryVault(ctx context.Context, iid, head string, e renewEntry) (_ *VaultInfo, keep bool, _ error) {
	v, err := s.dir.LookupVault(ctx, e.Vault)
	if err == nil && v.InternalID == iid {
		return v, false, nil
	}
	live, xerr := exists(ctx, s.st, head)
	if xerr != nil {
		return nil, true, xerr
	}
	return nil, live, nil
}

// internalRequest is a request of the platform's own on the object name of
// collection coll in vault v, for the code paths that take one.
func (s *Service) internalRequest(ctx context.Context, v *VaultInfo, coll, name string) (*request, error) {
	base := "https://" + v.Name + "." + strings.TrimPrefix(s.resource, "https://")
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+coll+"/"+name, http.NoBody)
	if err != nil {
		return nil, err
	}
	return &request{r: r, vault: v, base: base, route: route{Name: name}, info: &principal.Info{}}, nil
}

// renewOne renews the certificate an entry names if the entry still holds:
// it returns the new version, or nil for a stale entry. keep is set when the
// entry must stay (its vault is soft-deleted and may come back).
func (s *Service) renewOne(ctx context.Context, at int64, iid, lname string, e renewEntry) (_ *Renewed, keep bool, _ error) {
	v, keep, err := s.entryVault(ctx, iid, certHeadKey(iid, lname), e)
	if v == nil {
		return nil, keep, err
	}
	h, _, err := store.GetJSON[certHeadRec](ctx, s.st, certHeadKey(iid, lname))
	if notFound(err) {
		return nil, false, nil // deleted (recovery schedules it again) or purged
	}
	if err != nil {
		return nil, true, err
	}
	pr, err := s.getPolicyRec(ctx, s.st, iid, lname)
	if err != nil {
		return nil, true, err
	}
	if h.Meta.Version != e.Version || pr == nil || renewAt(&pr.Policy, h.Meta.NotBefore, h.Meta.Expires) != at {
		return nil, false, nil
	}
	policy := pr.Policy
	rq, err := s.internalRequest(ctx, v, "certificates", h.Meta.Name)
	if err != nil {
		return nil, true, err
	}
	var k crypto.Signer
	if policy.KeyProps != nil && policy.KeyProps.ReuseKey != nil && *policy.KeyProps.ReuseKey {
		vr, _, err := getRec[keyVersionRec](ctx, s.st, keyVersionKey(iid, lname, h.Meta.Version), errKeyNotFound(h.Meta.Name))
		if err != nil {
			return nil, true, err
		}
		if err := vr.checkSlot(lname, h.Meta.Version); err != nil {
			return nil, true, err
		}
		if k, err = s.openPrivate(ctx, rq, vr); err != nil {
			return nil, true, err
		}
	} else {
		kp := policy.KeyProps
		if k, err = generateKey(s.rand, &keyRequest{Kty: kp.Kty, Size: kp.KeySize, Crv: kp.Crv}, &keyMeta{}); err != nil {
			return nil, true, err
		}
	}
	now := s.clk.Now()
	der, err := selfSign(s.rand, k, &policy, now)
	if err != nil {
		return nil, true, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, true, err
	}
	reqID, err := s.newVersion()
	if err != nil {
		return nil, true, err
	}
	op := certOpRec{Name: h.Meta.Name, Issuer: *policy.Issuer, RequestID: reqID, Status: "completed"}
	enabled := true
	cm, err := s.storeCertVersion(rq, k, []*x509.Certificate{leaf}, &policy, &certRequest{Tags: h.Meta.Tags, Enabled: &enabled, renews: h.Meta.Version}, &op)
	if errors.Is(err, errRenewedElsewhere) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return &Renewed{Vault: v, Kind: RenewedCertificate, ID: rq.base + "/certificates/" + cm.Name + "/" + cm.Version}, false, nil
}
