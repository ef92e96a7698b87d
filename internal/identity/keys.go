package identity

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/keyhaven/keyhaven/internal/store"
)

// keyRecord is one signing key as stored: the private key sealed under the
// "sys" scope with aad naming the key, the public key in the clear.
type keyRecord struct {
	KID     string     `json:"kid"`
	Created time.Time  `json:"created"`
	Retired *time.Time `json:"retired,omitempty"` // nil while active
	Sealed  []byte     `json:"sealed"`            // sealed PKCS#8
	Public  []byte     `json:"public"`            // PKIX DER
}

// keyState is the whole key ring, one record so rotation is atomic across
// replicas.
type keyState struct {
	Active string      `json:"active"`
	Keys   []keyRecord `json:"keys"`
}

// keySet is the in-memory view of the ring.
type keySet struct {
	activeKID     string
	activeCreated time.Time
	signer        jose.Signer
	pub           map[string]*rsa.PublicKey // keys still within retention
	jwks          []jose.JSONWebKey
	loaded        time.Time
}

// How long a replica trusts its cached ring before re-reading the store, and
// how often an unknown kid may force a re-read (so random kids cannot turn
// into a store read each).
const (
	keyCacheTTL       = 30 * time.Second
	forcedReloadEvery = 5 * time.Second
)

func keyAAD(kid string) []byte { return []byte(kSigning + "/" + kid) }

// retention is how long a retired key stays published: every token it
// signed has expired by then (the margin covers skew and replicas whose
// cache still named it active).
func (s *Service) retention() time.Duration {
	return s.opts.TokenLifetime + s.opts.ClockSkew + keyRetentionMargin + keyCacheTTL
}

func (s *Service) newKeyRecord(ctx context.Context) (keyRecord, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return keyRecord{}, err
	}
	tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return keyRecord{}, err
	}
	kid := base64.RawURLEncoding.EncodeToString(tp)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return keyRecord{}, err
	}
	sealed, err := s.sealer.Seal(ctx, "sys", der, keyAAD(kid))
	if err != nil {
		return keyRecord{}, fmt.Errorf("identity: seal signing key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return keyRecord{}, err
	}
	return keyRecord{KID: kid, Created: s.now(), Sealed: sealed, Public: pub}, nil
}

// rotate installs a new active key. Unless force is set it does so only when
// there is no key or the active one is older than the rotation interval,
// re-checked inside the transaction so concurrent replicas rotate once.
func (s *Service) rotate(ctx context.Context, force bool) error {
	fresh, err := s.newKeyRecord(ctx)
	if err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		var st keyState
		ver, err := store.LoadJSON(ctx, tx, kSigning, &st)
		if isNotFound(err) {
			ver = store.Absent
		} else if err != nil {
			return err
		}
		now := s.now()
		if !force && ver != store.Absent {
			if a := st.find(st.Active); a != nil && now.Sub(a.Created) < s.opts.KeyRotationInterval {
				return nil
			}
		}
		kept := st.Keys[:0]
		for _, k := range st.Keys {
			if k.KID == st.Active {
				t := now
				k.Retired = &t
			}
			if k.Retired != nil && now.Sub(*k.Retired) > s.retention() {
				continue // every token it signed has expired
			}
			kept = append(kept, k)
		}
		rec := fresh
		rec.Created = now
		st.Keys = append(kept, rec)
		st.Active = rec.KID
		_, err = store.PutJSON(ctx, tx, kSigning, &st, ver)
		return err
	})
}

func (st *keyState) find(kid string) *keyRecord {
	for i := range st.Keys {
		if st.Keys[i].KID == kid {
			return &st.Keys[i]
		}
	}
	return nil
}

// RotateSigningKey makes a new key active at once. The previous key stays
// in the JWKS, and keeps verifying, until every token it signed has expired.
func (s *Service) RotateSigningKey(ctx context.Context) error {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if err := s.rotate(ctx, true); err != nil {
		return err
	}
	_, err := s.reloadLocked(ctx)
	return err
}

// keySetFor returns the current ring, reloading it when the cache is stale
// (or force is set) and rotating when the active key is due.
func (s *Service) keySetFor(ctx context.Context, force bool) (*keySet, error) {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	now := s.now()
	if ks := s.keys; ks != nil && !force && now.Sub(ks.loaded) < keyCacheTTL && now.Sub(ks.activeCreated) < s.opts.KeyRotationInterval {
		return ks, nil
	}
	return s.reloadLocked(ctx)
}

func (s *Service) reloadLocked(ctx context.Context) (*keySet, error) {
	for attempt := 0; ; attempt++ {
		var st keyState
		_, err := store.LoadJSON(ctx, s.st, kSigning, &st)
		if err != nil && !isNotFound(err) {
			return nil, err
		}
		now := s.now()
		a := st.find(st.Active)
		if a == nil || now.Sub(a.Created) >= s.opts.KeyRotationInterval {
			if attempt > 2 {
				return nil, errors.New("identity: could not install a signing key")
			}
			if err := s.rotate(ctx, false); err != nil && !errors.Is(err, store.ErrConflict) {
				return nil, err
			}
			continue
		}
		ks, err := s.buildKeySet(ctx, &st, now)
		if err != nil {
			return nil, err
		}
		s.keys = ks
		return ks, nil
	}
}

func (s *Service) buildKeySet(ctx context.Context, st *keyState, now time.Time) (*keySet, error) {
	ks := &keySet{pub: map[string]*rsa.PublicKey{}, loaded: now}
	for _, k := range st.Keys {
		if k.Retired != nil && now.Sub(*k.Retired) > s.retention() {
			continue
		}
		pk, err := x509.ParsePKIXPublicKey(k.Public)
		if err != nil {
			return nil, fmt.Errorf("identity: signing key %s: %w", k.KID, err)
		}
		rpk, ok := pk.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("identity: signing key %s is not RSA", k.KID)
		}
		ks.pub[k.KID] = rpk
		ks.jwks = append(ks.jwks, jose.JSONWebKey{Key: rpk, KeyID: k.KID, Algorithm: string(jose.RS256), Use: "sig"})
	}
	a := st.find(st.Active)
	der, err := s.sealer.Open(ctx, "sys", a.Sealed, keyAAD(a.KID))
	if err != nil {
		return nil, fmt.Errorf("identity: open signing key: %w", err)
	}
	pk, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("identity: parse signing key: %w", err)
	}
	priv, ok := pk.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("identity: signing key is not RSA")
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: priv, KeyID: a.KID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	ks.activeKID, ks.activeCreated, ks.signer = a.KID, a.Created, signer
	return ks, nil
}

// publicKey returns the verification key for kid. An unknown kid forces a
// (rate-limited) reload, so keys another replica just created verify.
func (s *Service) publicKey(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	ks, err := s.keySetFor(ctx, false)
	if err != nil {
		return nil, err
	}
	if k, ok := ks.pub[kid]; ok {
		return k, nil
	}
	s.keysMu.Lock()
	now := s.now()
	allowed := now.Sub(s.lastForcedReload) >= forcedReloadEvery
	if allowed {
		s.lastForcedReload = now
	}
	s.keysMu.Unlock()
	if !allowed {
		return nil, nil
	}
	if ks, err = s.keySetFor(ctx, true); err != nil {
		return nil, err
	}
	return ks.pub[kid], nil
}

// JWKS returns the published signing keys.
func (s *Service) JWKS(ctx context.Context) (*jose.JSONWebKeySet, error) {
	ks, err := s.keySetFor(ctx, false)
	if err != nil {
		return nil, err
	}
	return &jose.JSONWebKeySet{Keys: append([]jose.JSONWebKey(nil), ks.jwks...)}, nil
}
