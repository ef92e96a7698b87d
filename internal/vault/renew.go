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
	"time"

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

// errRenewedElsewhere: the version to renew is no longer the latest when
// the renewal commits (another replica renewed it, or a user created one).
var errRenewedElsewhere = errors.New("vault: the certificate version to renew is no longer the latest")

// renewEntry is an index entry's value.
type renewEntry struct {
	Vault   string `json:"vault"`
	Version string `json:"v"`
	// Floor is set when a version made by renewal or rotation would fall
	// due at once (within a day of its making): the entry is then filed at
	// half the version's life instead, so no policy renews on every pass.
	Floor int64 `json:"floor,omitempty"`
	// Fails and Retry: a renewal that failed is tried again from Retry on,
	// backing off (1 minute, doubling, at most a day).
	Fails int   `json:"fails,omitempty"`
	Retry int64 `json:"retry,omitempty"`
}

// holds reports whether an entry filed at at still stands for a version
// whose policy now puts its renewal at due.
func (e renewEntry) holds(at, due int64) bool {
	if e.Floor != 0 {
		return due != 0 && at == e.Floor && due <= e.Floor
	}
	return due != 0 && at == due
}

// soonAfterMaking is how close to a renewed version's making its own
// renewal may fall before the half-life floor applies.
const soonAfterMaking = 86400

// floorFor files a version made by renewal or rotation (at created,
// expiring at exp, 0 for never) that would fall due at once at half its
// life instead; it returns the time to file at and the entry's Floor.
func floorFor(at, created, exp int64, renewed bool) (int64, int64) {
	if !renewed || at >= created+soonAfterMaking {
		return at, 0
	}
	floor := created + int64(minRotateAfter/time.Second)
	if exp > created {
		floor = created + (exp-created)/2
	}
	return floor, floor
}

// maxRenewalsPerPass bounds the work of one pass (key generation is
// seconds for RSA 4096); the rest wait for the next pass.
const maxRenewalsPerPass = 50

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
// certificate lname of vault iid, named vaultName, if p renews it. A version
// made by renewal is not due before half its life, so a policy stored
// before its trigger was limited cannot renew a certificate on every pass.
func putRenewEntry(ctx context.Context, tx store.Tx, iid, lname, vaultName, version string, p *certPolicy, nbf, exp int64, renewed bool) error {
	at := renewAt(p, nbf, exp)
	if at == 0 {
		return nil
	}
	e := renewEntry{Vault: vaultName, Version: version}
	at, e.Floor = floorFor(at, nbf, exp, renewed)
	_, err := store.PutJSON(ctx, tx, renewIndexKey(at, iid, lname), e, store.Any)
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
	after, tries := "", 0
	for {
		recs, err := s.st.List(ctx, prefix, store.ListOptions{After: after, Limit: purgeBatch})
		if err != nil {
			return out, fmt.Errorf("vault: list %s: %w", prefix, err)
		}
		for _, r := range recs {
			after = r.Key
			at, iid, lname, ok := parseIndexKey(prefix, r.Key)
			if ok && at > now || tries >= maxRenewalsPerPass {
				return out, errors.Join(errs...)
			}
			var e renewEntry
			if ok {
				ok = json.Unmarshal(r.Value, &e) == nil
			}
			if ok && e.Retry > now {
				continue
			}
			var done *Renewed
			keep := false
			if ok {
				tries++
				done, keep, err = one(ctx, at, iid, lname, e)
				if err != nil {
					errs = append(errs, fmt.Errorf("vault: renew or rotate %s of vault %s (attempt %d): %w", lname, e.Vault, e.Fails+1, err))
					e.Fails++
					e.Retry = now + min(int64(60)<<min(e.Fails-1, 11), 86400)
					if perr := s.st.Update(ctx, func(tx store.Tx) error {
						_, err := store.PutJSON(ctx, tx, r.Key, e, store.Any)
						return err
					}); perr != nil {
						errs = append(errs, perr)
					}
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
	if h.Meta.Version != e.Version || pr == nil || !e.holds(at, renewAt(&pr.Policy, h.Meta.NotBefore, h.Meta.Expires)) {
		return nil, false, nil
	}
	// A pending certificate operation (issuer Unknown, awaiting its merge)
	// holds the key the merge needs: renew after it ends.
	if st, _, err := store.GetJSON[certOpState](ctx, s.st, certOpKey(iid, lname)); err == nil && st.Op.Status == "inProgress" {
		return nil, true, nil
	} else if err != nil && !notFound(err) {
		return nil, true, err
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
	enabled := true
	// No operation record: the last one (and a pending one's key) stays.
	cm, err := s.storeCertVersion(rq, k, []*x509.Certificate{leaf}, &policy, &certRequest{Tags: h.Meta.Tags, Enabled: &enabled, renews: h.Meta.Version}, nil)
	if errors.Is(err, errRenewedElsewhere) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return &Renewed{Vault: v, Kind: RenewedCertificate, ID: rq.base + "/certificates/" + cm.Name + "/" + cm.Version}, false, nil
}
