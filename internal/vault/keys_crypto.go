package vault

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"hash"
	"io"
	"math/big"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Key material: generation, JWK import and rendering, and the operations.
// Only Go's standard crypto is used; nothing here implements a primitive.

// curveOf maps a JWK curve name to its curve.
func curveOf(crv string) elliptic.Curve {
	switch crv {
	case "P-256":
		return elliptic.P256()
	case "P-384":
		return elliptic.P384()
	case "P-521":
		return elliptic.P521()
	}
	return nil
}

// coordSize is the byte length of a curve's coordinates and scalars.
func coordSize(c elliptic.Curve) int { return (c.Params().BitSize + 7) / 8 }

// generateKey creates a private key for a validated create request and
// fills m's type and public members.
func generateKey(rnd io.Reader, req *keyRequest, m *keyMeta) (crypto.Signer, error) {
	switch req.Kty {
	case ktyRSA:
		k, err := rsa.GenerateKey(rnd, req.Size)
		if err != nil {
			return nil, err
		}
		setPublic(m, k)
		return k, nil
	case ktyEC:
		k, err := ecdsa.GenerateKey(curveOf(req.Crv), rnd)
		if err != nil {
			return nil, err
		}
		setPublic(m, k)
		return k, nil
	}
	return nil, errors.New("vault: unsupported key type " + req.Kty)
}

// setPublic records k's type, size or curve and public key in m.
func setPublic(m *keyMeta, k crypto.Signer) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		m.Kty, m.Size, m.Crv = ktyRSA, k.N.BitLen(), ""
		m.N = k.N.Bytes()
		m.E = big.NewInt(int64(k.E)).Bytes()
		m.X, m.Y = nil, nil
	case *ecdsa.PrivateKey:
		m.Kty, m.Size, m.Crv = ktyEC, 0, k.Curve.Params().Name
		raw, _ := k.PublicKey.Bytes() // 0x04 || X || Y
		n := coordSize(k.Curve)
		m.X, m.Y = raw[1:1+n], raw[1+n:]
		m.N, m.E = nil, nil
	}
}

// marshalPrivate is the PKCS #8 form that is sealed at rest.
func marshalPrivate(k crypto.Signer) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(k) }

func parsePrivate(der []byte) (crypto.Signer, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("vault: sealed key is not a signer")
	}
	return s, nil
}

// importJWK builds a private key from a JSON web key. Only software RSA and
// EC keys with their private members are accepted. Errors never echo key
// material.
func importJWK(j *jwkWire) (crypto.Signer, *azerr.Error) {
	if j == nil || j.Kty == "" {
		return nil, azerr.BadParameter("Property 'key.kty' is required.")
	}
	if len(j.T) > 0 {
		return nil, errHSMUnsupported()
	}
	kty, e := parseKty(j.Kty)
	if e != nil {
		return nil, e
	}
	switch kty {
	case ktyRSA:
		return importRSA(j)
	default:
		return importEC(j)
	}
}

func importRSA(j *jwkWire) (crypto.Signer, *azerr.Error) {
	if len(j.X) > 0 || len(j.Y) > 0 || j.Crv != "" {
		return nil, azerr.BadParameter("Members 'crv', 'x' and 'y' do not belong to an RSA key.")
	}
	if len(j.N) == 0 || len(j.E) == 0 {
		return nil, azerr.BadParameter("An RSA key needs its modulus 'n' and exponent 'e'.")
	}
	if len(j.D) == 0 || len(j.P) == 0 || len(j.Q) == 0 {
		return nil, azerr.BadParameter("The key to import has no private part: an RSA key needs 'd', 'p' and 'q'.")
	}
	if len(j.N) > 512 || len(j.E) > 4 || len(j.D) > 512 || len(j.P) > 512 || len(j.Q) > 512 {
		return nil, errBadRSAImport()
	}
	n := new(big.Int).SetBytes(j.N)
	e := new(big.Int).SetBytes(j.E)
	if bits := n.BitLen(); bits < 2048 || bits > 4096 {
		return nil, azerr.BadParameter("RSA keys of 2048 to 4096 bits can be imported.")
	}
	if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return nil, errBadRSAImport()
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: n, E: int(e.Int64())},
		D:         new(big.Int).SetBytes(j.D),
		Primes:    []*big.Int{new(big.Int).SetBytes(j.P), new(big.Int).SetBytes(j.Q)},
	}
	if err := k.Validate(); err != nil {
		return nil, errBadRSAImport()
	}
	k.Precompute()
	if len(j.DP) > 0 && !bytes.Equal(trimZero(j.DP), k.Precomputed.Dp.Bytes()) ||
		len(j.DQ) > 0 && !bytes.Equal(trimZero(j.DQ), k.Precomputed.Dq.Bytes()) ||
		len(j.QI) > 0 && !bytes.Equal(trimZero(j.QI), k.Precomputed.Qinv.Bytes()) {
		return nil, errBadRSAImport()
	}
	return k, nil
}

func trimZero(b []byte) []byte { return bytes.TrimLeft(b, "\x00") }

func importEC(j *jwkWire) (crypto.Signer, *azerr.Error) {
	if len(j.N) > 0 || len(j.E) > 0 || len(j.P) > 0 || len(j.Q) > 0 {
		return nil, azerr.BadParameter("Members 'n', 'e', 'p' and 'q' do not belong to an EC key.")
	}
	crv, e := parseCurve(j.Crv)
	if e != nil {
		return nil, e
	}
	c := curveOf(crv)
	size := coordSize(c)
	if len(j.D) == 0 {
		return nil, azerr.BadParameter("The key to import has no private part: an EC key needs 'd'.")
	}
	if len(j.X) != size || len(j.Y) != size || len(j.D) != size {
		return nil, azerr.BadParameter("Members 'x', 'y' and 'd' of a %s key must be %d bytes each.", crv, size)
	}
	k, err := ecdsa.ParseRawPrivateKey(c, j.D)
	if err != nil {
		return nil, azerr.BadParameter("The EC private key is not valid for curve %s.", crv)
	}
	raw, _ := k.PublicKey.Bytes()
	if !bytes.Equal(raw[1:1+size], j.X) || !bytes.Equal(raw[1+size:], j.Y) {
		return nil, azerr.BadParameter("The EC key's public point (x, y) does not match its private scalar d.")
	}
	return k, nil
}

// jwk renders the public JSON web key of a version.
func (m *keyMeta) jwk(kid string) *jwkWire {
	return &jwkWire{Kid: kid, Kty: m.Kty, KeyOps: nonNil(m.Ops), N: m.N, E: m.E, Crv: m.Crv, X: m.X, Y: m.Y}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Algorithms.

// encAlg is an RSA encryption (and key wrapping) algorithm.
type encAlg struct {
	oaepHash func() hash.Hash // nil: PKCS #1 v1.5
	overhead int              // bytes of the modulus the padding takes
}

var encAlgs = map[string]encAlg{
	"RSA-OAEP":     {oaepHash: sha1.New, overhead: 2*sha1.Size + 2},
	"RSA-OAEP-256": {oaepHash: sha256.New, overhead: 2*sha256.Size + 2},
	"RSA1_5":       {overhead: 11},
}

// sigAlg is a signature algorithm over a client-computed digest.
type sigAlg struct {
	kty  string
	hash crypto.Hash
	pss  bool
	crv  string // EC: the curve the algorithm is defined on
}

var sigAlgs = map[string]sigAlg{
	"RS256": {kty: ktyRSA, hash: crypto.SHA256},
	"RS384": {kty: ktyRSA, hash: crypto.SHA384},
	"RS512": {kty: ktyRSA, hash: crypto.SHA512},
	"PS256": {kty: ktyRSA, hash: crypto.SHA256, pss: true},
	"PS384": {kty: ktyRSA, hash: crypto.SHA384, pss: true},
	"PS512": {kty: ktyRSA, hash: crypto.SHA512, pss: true},
	"ES256": {kty: ktyEC, hash: crypto.SHA256, crv: "P-256"},
	"ES384": {kty: ktyEC, hash: crypto.SHA384, crv: "P-384"},
	"ES512": {kty: ktyEC, hash: crypto.SHA512, crv: "P-521"},
}

func errBadAlg(alg, kty string) *azerr.Error {
	return azerr.BadParameter("Algorithm '%s' is not supported for key type %s.", clip(alg, 32), kty)
}

// encAlgFor validates an encryption algorithm for a key.
func encAlgFor(alg string, m *keyMeta) (encAlg, *azerr.Error) {
	a, ok := encAlgs[alg]
	if !ok || m.Kty != ktyRSA {
		return encAlg{}, errBadAlg(alg, m.Kty)
	}
	return a, nil
}

// sigAlgFor validates a signature algorithm and digest length for a key.
func sigAlgFor(alg string, m *keyMeta, digest []byte) (sigAlg, *azerr.Error) {
	a, ok := sigAlgs[alg]
	if alg == "ES256K" {
		return sigAlg{}, azerr.BadParameter("Algorithm 'ES256K' (secp256k1) is not supported by keyhaven; use ES256, ES384 or ES512.")
	}
	if !ok || a.kty != m.Kty {
		return sigAlg{}, errBadAlg(alg, m.Kty)
	}
	if a.crv != "" && a.crv != m.Crv {
		return sigAlg{}, azerr.BadParameter("Algorithm '%s' requires a key on curve %s; this key is on %s.", alg, a.crv, m.Crv)
	}
	if len(digest) != a.hash.Size() {
		return sigAlg{}, azerr.BadParameter("Algorithm '%s' signs a %d-byte digest; the value is %d bytes.", alg, a.hash.Size(), len(digest))
	}
	return a, nil
}

// rsaPublic is the public key of an RSA version, from its metadata.
func rsaPublic(m *keyMeta) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(m.N), E: int(new(big.Int).SetBytes(m.E).Int64())}
}

func ecPublic(m *keyMeta) (*ecdsa.PublicKey, error) {
	c := curveOf(m.Crv)
	if c == nil {
		return nil, errors.New("vault: unknown curve " + m.Crv)
	}
	return ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, m.X...), m.Y...))
}

// encrypt uses the public key only.
func encrypt(rnd io.Reader, m *keyMeta, a encAlg, plain []byte) ([]byte, *azerr.Error) {
	pub := rsaPublic(m)
	if max := pub.Size() - a.overhead; len(plain) > max {
		return nil, azerr.BadParameter("The value is %d bytes; this key and algorithm encrypt at most %d.", len(plain), max)
	}
	var out []byte
	var err error
	if a.oaepHash != nil {
		out, err = rsa.EncryptOAEP(a.oaepHash(), rnd, pub, plain, nil)
	} else {
		//lint:ignore SA1019 RSA1_5 is a Key Vault algorithm clients still send; OAEP is the default
		out, err = rsa.EncryptPKCS1v15(rnd, pub, plain)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return out, nil
}

// decrypt needs the private key. A ciphertext that does not decrypt is a
// bad parameter, reported without detail.
func decrypt(k crypto.Signer, a encAlg, ct []byte) ([]byte, *azerr.Error) {
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, azerr.Internal(errors.New("vault: decrypt with a non-RSA key"))
	}
	if len(ct) != priv.Size() {
		return nil, azerr.BadParameter("The ciphertext must be %d bytes for this key.", priv.Size())
	}
	var out []byte
	var err error
	if a.oaepHash != nil {
		out, err = rsa.DecryptOAEP(a.oaepHash(), nil, priv, ct, nil)
	} else {
		// Key Vault offers RSA1_5 (and so reveals padding failures, as
		// it does); a key limited to RSA-OAEP is the way to avoid it.
		//lint:ignore SA1019 RSA1_5 is a Key Vault algorithm clients still send
		out, err = rsa.DecryptPKCS1v15(nil, priv, ct)
	}
	if err != nil {
		return nil, azerr.BadParameter("The value could not be decrypted with this key and algorithm.")
	}
	return out, nil
}

// sign signs digest; EC signatures are R||S, each padded to the curve size
// (the JWS form Key Vault returns).
func sign(rnd io.Reader, k crypto.Signer, a sigAlg, digest []byte) ([]byte, *azerr.Error) {
	switch priv := k.(type) {
	case *rsa.PrivateKey:
		var sig []byte
		var err error
		if a.pss {
			sig, err = rsa.SignPSS(rnd, priv, a.hash, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(nil, priv, a.hash, digest)
		}
		if err != nil {
			return nil, azerr.Internal(err)
		}
		return sig, nil
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rnd, priv, digest)
		if err != nil {
			return nil, azerr.Internal(err)
		}
		n := coordSize(priv.Curve)
		sig := make([]byte, 2*n)
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
		return sig, nil
	}
	return nil, azerr.Internal(errors.New("vault: sign with an unknown key type"))
}

// verify uses the public key only.
func verify(m *keyMeta, a sigAlg, digest, sig []byte) (bool, error) {
	switch m.Kty {
	case ktyRSA:
		pub := rsaPublic(m)
		if a.pss {
			return rsa.VerifyPSS(pub, a.hash, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil, nil
		}
		return rsa.VerifyPKCS1v15(pub, a.hash, digest, sig) == nil, nil
	case ktyEC:
		pub, err := ecPublic(m)
		if err != nil {
			return false, err
		}
		n := coordSize(pub.Curve)
		if len(sig) != 2*n {
			return false, nil
		}
		r := new(big.Int).SetBytes(sig[:n])
		s := new(big.Int).SetBytes(sig[n:])
		return ecdsa.Verify(pub, digest, r, s), nil
	}
	return false, errors.New("vault: verify with an unknown key type")
}
