package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/crypto/argon2"

	"github.com/keyhaven/keyhaven/internal/store"
)

// argon2id parameters (OWASP's 19 MiB / t=2 / p=1 profile). They are recorded
// in each hash, so they can be raised later without breaking old hashes.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024 // KiB
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
	// Upper bounds accepted when parsing a stored hash, so a corrupted record
	// cannot make a login allocate unbounded memory.
	argonMaxMemory = 256 * 1024
	argonMaxTime   = 10
)

func newGUID() string { return uuid.New().String() }

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("identity: crypto/rand failed: " + err.Error()) // never happens on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashPassword returns an argon2id hash in the PHC string format.
func hashPassword(password string) string {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		panic("identity: crypto/rand failed: " + err.Error())
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// dummyHash is verified against when a user does not exist, so a login for
// an unknown name costs the same time as a wrong password.
var dummyHash = hashPassword(randomToken(16))

var errBadHash = errors.New("identity: malformed password hash")

// checkPassword compares password with a PHC argon2id hash in constant time.
func checkPassword(encoded, password string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, errBadHash
	}
	if m == 0 || m > argonMaxMemory || t == 0 || t > argonMaxTime || p == 0 {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// pepperKey returns the per-deployment HMAC key used for high-entropy
// secrets, creating it on first use. It is sealed at rest so a store dump
// alone cannot be used to test guesses.
func (s *Service) pepperKey(ctx context.Context) ([]byte, error) {
	s.pepperMu.Lock()
	defer s.pepperMu.Unlock()
	if s.pepper != nil {
		return s.pepper, nil
	}
	aad := []byte(kPepper)
	load := func() ([]byte, error) {
		rec, err := s.st.Get(ctx, kPepper)
		if err != nil {
			return nil, err
		}
		return s.sealer.Open(ctx, "sys", rec.Value, aad)
	}
	p, err := load()
	if isNotFound(err) {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		sealed, serr := s.sealer.Seal(ctx, "sys", fresh, aad)
		if serr != nil {
			return nil, fmt.Errorf("identity: seal pepper: %w", serr)
		}
		uerr := s.st.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Put(ctx, kPepper, sealed, store.Absent)
			return err
		})
		if uerr != nil && !errors.Is(uerr, store.ErrConflict) {
			return nil, uerr
		}
		// Another replica may have won the race: always read back.
		p, err = load()
	}
	if err != nil {
		return nil, fmt.Errorf("identity: load pepper: %w", err)
	}
	s.pepper = p
	return p, nil
}

// secretHash is HMAC-SHA256(pepper, secret) in hex; fit for high-entropy
// secrets only (client secrets, refresh tokens, workload secrets).
func (s *Service) secretHash(ctx context.Context, secret string) (string, error) {
	p, err := s.pepperKey(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, p)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil)), nil
}

func equalHash(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
