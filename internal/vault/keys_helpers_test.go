package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
)

// mustKey creates a key with body and returns its bundle.
func (e *env) mustKey(name, body string) map[string]any {
	e.t.Helper()
	code, m := e.do("POST", "/keys/"+name+"/create", body)
	if code != 200 {
		e.t.Fatalf("create key %s: %d %v", name, code, m)
	}
	return m
}

// jwkOf is the "key" member of a bundle.
func jwkOf(t testing.TB, bundle map[string]any) map[string]any {
	t.Helper()
	k, ok := bundle["key"].(map[string]any)
	if !ok {
		t.Fatalf("bundle has no key: %v", bundle)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func unb64(t testing.TB, v any) []byte {
	t.Helper()
	s, _ := v.(string)
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("not base64url: %q", s)
	}
	return b
}

func kidVersion(t testing.TB, kid any) string {
	t.Helper()
	s, _ := kid.(string)
	parts := strings.Split(s, "/")
	return parts[len(parts)-1]
}

// publicOf rebuilds the public key a bundle's JWK describes.
func publicOf(t testing.TB, bundle map[string]any) any {
	t.Helper()
	k := jwkOf(t, bundle)
	switch k["kty"] {
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(unb64(t, k["n"])), E: int(new(big.Int).SetBytes(unb64(t, k["e"])).Int64())}
	case "EC":
		c := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}[k["crv"].(string)]
		raw := append(append([]byte{4}, unb64(t, k["x"])...), unb64(t, k["y"])...)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, raw)
		if err != nil {
			t.Fatalf("EC point: %v", err)
		}
		return pub
	}
	t.Fatalf("kty %v", k["kty"])
	return nil
}

// opBody is a crypto request body.
func opBody(alg string, value []byte) string {
	b, _ := json.Marshal(map[string]string{"alg": alg, "value": b64(value)})
	return string(b)
}

func verifyBody(alg string, digest, sig []byte) string {
	b, _ := json.Marshal(map[string]string{"alg": alg, "digest": b64(digest), "value": b64(sig)})
	return string(b)
}

// rsaJWK is the private JWK of k, as a client imports it.
func rsaJWK(k *rsa.PrivateKey) map[string]any {
	k.Precompute()
	return map[string]any{
		"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()), "d": b64(k.D.Bytes()),
		"p": b64(k.Primes[0].Bytes()), "q": b64(k.Primes[1].Bytes()),
		"dp": b64(k.Precomputed.Dp.Bytes()), "dq": b64(k.Precomputed.Dq.Bytes()), "qi": b64(k.Precomputed.Qinv.Bytes()),
	}
}

func ecJWK(k *ecdsa.PrivateKey) map[string]any {
	raw, _ := k.PublicKey.Bytes()
	n := (k.Curve.Params().BitSize + 7) / 8
	d, _ := k.Bytes()
	return map[string]any{"kty": "EC", "crv": k.Curve.Params().Name, "x": b64(raw[1 : 1+n]), "y": b64(raw[1+n:]), "d": b64(d)}
}

func importBody(t testing.TB, jwk map[string]any, extra map[string]any) string {
	t.Helper()
	m := map[string]any{"key": jwk}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
