package vault

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Key rotation policies (GET/PUT /keys/{name}/rotationpolicy), as Key Vault
// has them: a Rotate action after creation or before expiry, a Notify
// action (kept, but keyhaven sends no events), and expiryTime, the validity
// of versions that rotation creates. Automatic rotation shares the renewal
// index and pass of certificates (renew.go): each version a policy rotates
// has an entry at its due time, checked again when it falls due.

func keyPolicyKey(iid, lname string) string { return vaultPrefix(iid) + "keys/p/" + lname }

const (
	keyRotateIndexPrefix = "vault/~krotate/"
	// As Key Vault: rotation at least 7 days after creation or before
	// expiry, versions valid at least 28 days.
	minRotateAfter    = 7 * 24 * time.Hour
	minKeyExpiryTime  = 28 * 24 * time.Hour
	maxKeyPolicyBytes = 8 << 10
	actionRotate      = "Rotate"
	actionNotify      = "Notify"
)

func keyRotateIndexKey(at int64, iid, lname string) string {
	return indexKey(keyRotateIndexPrefix, at, iid, lname)
}

// keyRotationPolicy is KeyRotationPolicy on the wire and in storage
// (created and updated as integer seconds).
type keyRotationPolicy struct {
	ID              string              `json:"id,omitempty"`
	LifetimeActions []keyLifetimeAction `json:"lifetimeActions"`
	Attributes      *keyRotationAttrs   `json:"attributes,omitempty"`
}

type keyLifetimeAction struct {
	Trigger *keyTrigger `json:"trigger,omitempty"`
	Action  *keyAction  `json:"action,omitempty"`
}

type keyTrigger struct {
	TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
}

type keyAction struct {
	Type string `json:"type"`
}

type keyRotationAttrs struct {
	ExpiryTime string `json:"expiryTime,omitempty"`
	Created    *int64 `json:"created,omitempty"`
	Updated    *int64 `json:"updated,omitempty"`
}

// defaultKeyRotationPolicy is what a key without a policy answers: notify
// 30 days before expiry, as Key Vault shows it.
func defaultKeyRotationPolicy() keyRotationPolicy {
	return keyRotationPolicy{LifetimeActions: []keyLifetimeAction{{
		Trigger: &keyTrigger{TimeBeforeExpiry: "P30D"}, Action: &keyAction{Type: actionNotify}}}}
}

// normalize validates p as a PUT body and canonicalizes its action names.
// Durations are compared at their shortest and longest (month lengths
// vary), so a policy that holds once holds from every creation date.
func (p *keyRotationPolicy) normalize() *azerr.Error {
	if len(p.LifetimeActions) > 2 {
		return azerr.BadParameter("A key rotation policy has at most two lifetime actions: one Rotate and one Notify.")
	}
	var expiry *isoDuration
	if p.Attributes != nil && p.Attributes.ExpiryTime != "" {
		d, err := parseISODuration(p.Attributes.ExpiryTime)
		if err != nil {
			return azerr.BadParameter("Property 'attributes.expiryTime' is %v.", err)
		}
		if d.shortest() < minKeyExpiryTime {
			return azerr.BadParameter("Property 'attributes.expiryTime' must be at least 28 days (P28D).")
		}
		expiry = &d
	}
	seen := map[string]bool{}
	for i := range p.LifetimeActions {
		la := &p.LifetimeActions[i]
		if la.Action == nil || la.Trigger == nil {
			return azerr.BadParameter("Each lifetime action has a 'trigger' and an 'action'.")
		}
		switch strings.ToLower(la.Action.Type) {
		case "rotate":
			la.Action.Type = actionRotate
		case "notify":
			la.Action.Type = actionNotify
		default:
			return azerr.BadParameter("A lifetime action's type must be Rotate or Notify.")
		}
		if seen[la.Action.Type] {
			return azerr.BadParameter("A key rotation policy has at most one %s action.", la.Action.Type)
		}
		seen[la.Action.Type] = true
		t := la.Trigger
		if (t.TimeAfterCreate == "") == (t.TimeBeforeExpiry == "") {
			return azerr.BadParameter("A lifetime action's trigger names exactly one of 'timeAfterCreate' and 'timeBeforeExpiry'.")
		}
		if t.TimeAfterCreate != "" {
			if la.Action.Type == actionNotify {
				return azerr.BadParameter("A Notify action is triggered by 'timeBeforeExpiry' only.")
			}
			d, err := parseISODuration(t.TimeAfterCreate)
			if err != nil {
				return azerr.BadParameter("Property 'timeAfterCreate' is %v.", err)
			}
			if d.shortest() < minRotateAfter {
				return azerr.BadParameter("Property 'timeAfterCreate' must be at least 7 days (P7D).")
			}
			if expiry != nil && d.longest() >= expiry.shortest() {
				return azerr.BadParameter("Property 'timeAfterCreate' must be shorter than 'expiryTime', or the key expires before it rotates.")
			}
			continue
		}
		d, err := parseISODuration(t.TimeBeforeExpiry)
		if err != nil {
			return azerr.BadParameter("Property 'timeBeforeExpiry' is %v.", err)
		}
		if d.shortest() < minRotateAfter {
			return azerr.BadParameter("Property 'timeBeforeExpiry' must be at least 7 days (P7D).")
		}
		if expiry != nil && d.longest() >= expiry.shortest() {
			return azerr.BadParameter("Property 'timeBeforeExpiry' must be shorter than 'expiryTime'.")
		}
	}
	return nil
}

// rotateAt is when p rotates a version created at created (and expiring at
// exp, when set), or 0 when it does not rotate it.
func (p *keyRotationPolicy) rotateAt(created int64, exp *int64) int64 {
	for _, la := range p.LifetimeActions {
		if la.Action == nil || la.Action.Type != actionRotate || la.Trigger == nil {
			continue
		}
		if d, err := parseISODuration(la.Trigger.TimeAfterCreate); err == nil {
			return d.after(time.Unix(created, 0).UTC()).Unix()
		}
		if d, err := parseISODuration(la.Trigger.TimeBeforeExpiry); err == nil && exp != nil {
			return max(created, d.before(time.Unix(*exp, 0).UTC()).Unix())
		}
	}
	return 0
}

// expiryFrom is the expiry policy p gives a version created at now.
func (p *keyRotationPolicy) expiryFrom(now time.Time) *int64 {
	if p == nil || p.Attributes == nil || p.Attributes.ExpiryTime == "" {
		return nil
	}
	d, err := parseISODuration(p.Attributes.ExpiryTime)
	if err != nil {
		return nil
	}
	exp := d.after(now).Unix()
	return &exp
}

func getKeyPolicy(ctx context.Context, r store.Reader, iid, lname string) (*keyRotationPolicy, error) {
	p, _, err := store.GetJSON[keyRotationPolicy](ctx, r, keyPolicyKey(iid, lname))
	if notFound(err) {
		return nil, nil
	}
	return p, err
}

// putKeyRotateEntry schedules the rotation of version m of the key lname
// when policy p (nil: none) rotates it. rotated says m was made by a
// rotation: such a version that would fall due at once (a trigger reaching
// back past a short month's expiry) is filed at half its life instead
// (floorFor), so no policy rotates a key on every pass.
func putKeyRotateEntry(ctx context.Context, tx store.Tx, iid, lname, vaultName string, p *keyRotationPolicy, m *keyMeta, rotated bool) error {
	if p == nil || m.Managed {
		return nil
	}
	at := p.rotateAt(m.Created, m.Expires)
	if at == 0 {
		return nil
	}
	e := renewEntry{Vault: vaultName, Version: m.Version}
	var exp int64
	if m.Expires != nil {
		exp = *m.Expires
	}
	at, e.Floor = floorFor(at, m.Created, exp, rotated)
	_, err := store.PutJSON(ctx, tx, keyRotateIndexKey(at, iid, lname), e, store.Any)
	return err
}

func (rq *request) keyPolicyWire(name string, p *keyRotationPolicy) keyRotationPolicy {
	out := *p
	out.LifetimeActions = slices.Clone(p.LifetimeActions)
	if out.LifetimeActions == nil {
		out.LifetimeActions = []keyLifetimeAction{}
	}
	if p.Attributes != nil {
		out.ID = rq.base + "/keys/" + name + "/rotationpolicy"
	}
	return out
}

func (s *Service) getKeyRotationPolicy(rq *request) (int, any, error) {
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	var p *keyRotationPolicy
	err := s.st.View(ctx, func(r store.Reader) error {
		if err := requireExisting(ctx, r, errKeyNotFound(name), keyHeadKey(iid, lname)); err != nil {
			return err
		}
		var err error
		p, err = getKeyPolicy(ctx, r, iid, lname)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	if p == nil {
		d := defaultKeyRotationPolicy()
		p = &d
	}
	rq.info.ObjectID = rq.base + "/keys/" + name
	return http.StatusOK, rq.keyPolicyWire(name, p), nil
}

func (s *Service) updateKeyRotationPolicy(rq *request) (int, any, error) {
	body, e := readBody(rq, maxKeyPolicyBytes)
	if e != nil {
		return 0, nil, e
	}
	var p keyRotationPolicy
	if e := decodeJSON(body, &p); e != nil {
		return 0, nil, e
	}
	ctx := rq.r.Context()
	iid, name, lname := rq.keyNames()
	now := s.clk.Now()
	if e := p.normalize(); e != nil {
		return 0, nil, e
	}
	p.ID = ""
	expiry := ""
	if p.Attributes != nil {
		expiry = p.Attributes.ExpiryTime
	}
	err := s.update(ctx, func(tx store.Tx) error {
		h, _, err := getRec[keyHeadRec](ctx, tx, keyHeadKey(iid, lname), errKeyNotFound(name))
		if err != nil {
			return err
		}
		if h.Meta.Managed { // checked before the transaction too (guardManaged)
			return errManaged("setRotationPolicy", innerKeyManaged)
		}
		created, updated := now.Unix(), now.Unix()
		if old, err := getKeyPolicy(ctx, tx, iid, lname); err != nil {
			return err
		} else if old != nil && old.Attributes != nil && old.Attributes.Created != nil {
			created = *old.Attributes.Created
		}
		p.Attributes = &keyRotationAttrs{ExpiryTime: expiry, Created: &created, Updated: &updated}
		if _, err := store.PutJSON(ctx, tx, keyPolicyKey(iid, lname), p, store.Any); err != nil {
			return err
		}
		return putKeyRotateEntry(ctx, tx, iid, lname, rq.vault.Name, &p, &h.Meta, false)
	})
	if err != nil {
		return 0, nil, err
	}
	rq.info.ObjectID = rq.base + "/keys/" + name
	return http.StatusOK, rq.keyPolicyWire(name, &p), nil
}

// rotateLatest writes a new version of the routed key like its latest one
// (type, size or curve, operations, tags) with the expiry of its rotation
// policy. renews, when set, is the version that must still be the latest.
func (s *Service) rotateLatest(rq *request, renews string) (int, any, error) {
	iid, name, lname := rq.keyNames()
	ctx := rq.r.Context()
	var h *keyHeadRec
	var p *keyRotationPolicy
	err := s.st.View(ctx, func(r store.Reader) error {
		var err error
		if h, _, err = getRec[keyHeadRec](ctx, r, keyHeadKey(iid, lname), errKeyNotFound(name)); err != nil {
			return err
		}
		p, err = getKeyPolicy(ctx, r, iid, lname)
		return err
	})
	if err != nil {
		return 0, nil, err
	}
	req := &keyRequest{Kty: h.Meta.Kty, Size: h.Meta.Size, Crv: h.Meta.Crv,
		Ops: slices.Clone(nonNil(h.Meta.Ops)), attrsUpdate: attrsUpdate{Tags: h.Meta.Tags, TagsSet: true}, renews: renews}
	if exp := p.expiryFrom(s.clk.Now()); exp != nil {
		req.Expires, req.ExpiresSet = exp, true
	}
	var m keyMeta
	k, err := generateKey(s.rand, req, &m)
	if err != nil {
		return 0, nil, azerr.Internal(err)
	}
	return s.storeNewKey(rq, req, k, m)
}

// errKeyRotatedElsewhere: the version to rotate is no longer the latest.
var errKeyRotatedElsewhere = errors.New("vault: the key version to rotate is no longer the latest")

// rotateKeyOne rotates the key an index entry names if the entry still
// holds (see renewOne).
func (s *Service) rotateKeyOne(ctx context.Context, at int64, iid, lname string, e renewEntry) (*Renewed, bool, error) {
	v, keep, err := s.entryVault(ctx, iid, keyHeadKey(iid, lname), e)
	if v == nil {
		return nil, keep, err
	}
	h, _, err := store.GetJSON[keyHeadRec](ctx, s.st, keyHeadKey(iid, lname))
	if notFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	p, err := getKeyPolicy(ctx, s.st, iid, lname)
	if err != nil {
		return nil, true, err
	}
	if h.Meta.Version != e.Version || p == nil || !e.holds(at, p.rotateAt(h.Meta.Created, h.Meta.Expires)) {
		return nil, false, nil
	}
	rq, err := s.internalRequest(ctx, v, "keys", h.Meta.Name)
	if err != nil {
		return nil, true, err
	}
	_, out, err := s.rotateLatest(rq, h.Meta.Version)
	if errors.Is(err, errKeyRotatedElsewhere) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return &Renewed{Vault: v, Kind: RenewedKey, ID: out.(keyWire).Key.Kid}, false, nil
}
