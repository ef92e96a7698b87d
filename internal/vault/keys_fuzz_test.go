package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzImportJWK feeds import bodies through the body parser and the JWK
// importer: every failure is a 400 BadParameter, never a panic, and every
// accepted key is a consistent RSA or EC private key of an accepted size.
//
//	go test -run '^$' -fuzz FuzzImportJWK ./internal/vault/
func FuzzImportJWK(f *testing.F) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, jwk := range []map[string]any{rsaJWK(rk), ecJWK(ek)} {
		b, _ := json.Marshal(map[string]any{"key": jwk})
		f.Add(b)
		jwk["d"] = "AA"
		b, _ = json.Marshal(map[string]any{"key": jwk, "Hsm": false, "tags": map[string]string{"a": "b"}})
		f.Add(b)
	}
	for _, s := range []string{
		`{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ","p":"Aw","q":"BQ"}}`,
		`{"key":{"kty":"EC","crv":"P-521","x":"","y":"","d":""}}`,
		`{"key":{"kty":"EC","crv":"P-256K","x":"AA","y":"AA","d":"AA"}}`,
		`{"key":{"kty":"oct","k":"AAAA"}}`, `{"key":{"kty":"RSA-HSM","key_hsm":"AAAA"}}`,
		`{"key":null}`, `{"key":{"kty":"RSA","n":"=="}}`, `[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, e := parseKeyBody(body, keyBodyImport)
		if e != nil {
			if e.Status != 400 || e.Code != "BadParameter" {
				t.Fatalf("%d %s", e.Status, e.Code)
			}
			return
		}
		k, e := importJWK(req.JWK)
		if e != nil {
			if e.Status != 400 || e.Code != "BadParameter" {
				t.Fatalf("%d %s", e.Status, e.Code)
			}
			if d := req.JWK.D; len(d) > 4 && strings.Contains(e.Message, b64(d)) {
				t.Fatal("error echoes the private key")
			}
			return
		}
		var m keyMeta
		setPublic(&m, k)
		switch k := k.(type) {
		case *rsa.PrivateKey:
			if err := k.Validate(); err != nil || m.Size < 2048 || m.Size > 4096 {
				t.Fatalf("invalid RSA key accepted: %v, %d bits", err, m.Size)
			}
		case *ecdsa.PrivateKey:
			raw, err := k.PublicKey.Bytes()
			if curveOf(m.Crv) == nil || err != nil {
				t.Fatalf("invalid EC key accepted: %s", m.Crv)
			}
			if _, err := ecdsa.ParseUncompressedPublicKey(k.Curve, raw); err != nil {
				t.Fatalf("EC point not on the curve: %v", err)
			}
		default:
			t.Fatalf("accepted %T", k)
		}
		if _, err := marshalPrivate(k); err != nil {
			t.Fatalf("accepted key does not marshal: %v", err)
		}
	})
}

// FuzzKeyBody: create and update bodies either parse into a request within
// the limits or fail with 400 BadParameter.
func FuzzKeyBody(f *testing.F) {
	for _, s := range []string{
		`{"kty":"RSA","key_size":3072}`, `{"kty":"EC","crv":"P-384","key_ops":["sign"]}`,
		`{"kty":"RSA","public_exponent":65537,"attributes":{"enabled":false,"nbf":1,"exp":2}}`,
		`{"key_ops":["encrypt","encrypt"],"tags":{"a":null}}`, `{"kty":"oct-HSM"}`, `{"release_policy":{}}`,
		`{"attributes":{"exportable":true}}`, `{"kty":"EC","key_size":1e999}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, create bool) {
		kind := keyBodyUpdate
		if create {
			kind = keyBodyCreate
		}
		req, e := parseKeyBody(body, kind)
		if e != nil {
			if e.Status != 400 || e.Code != "BadParameter" {
				t.Fatalf("%d %s", e.Status, e.Code)
			}
			return
		}
		if create && req.Kty != ktyRSA && req.Kty != ktyEC {
			t.Fatalf("kty %q accepted", req.Kty)
		}
		if create && req.Kty == ktyRSA && req.Size != 2048 && req.Size != 3072 && req.Size != 4096 {
			t.Fatalf("size %d accepted", req.Size)
		}
		if create && req.Kty == ktyEC && curveOf(req.Crv) == nil {
			t.Fatalf("curve %q accepted", req.Crv)
		}
		if len(req.Ops) > maxKeyOps || len(req.Tags) > MaxTags {
			t.Fatal("limits not enforced")
		}
		for _, op := range req.Ops {
			if op == "export" {
				t.Fatal("export accepted")
			}
		}
	})
}

// FuzzKeyPath: any key path routes to a key operation with a spec, a valid
// name and version, or fails with a 4xx (see fuzzPaths).
func FuzzKeyPath(f *testing.F) {
	fuzzPaths(f, "/keys", "/keys/a", "/keys/a/", "/keys/a/create", "/keys/a/versions", "/keys/a/backup", "/keys/restore",
		"/keys/a//sign", "/keys/a/0123456789abcdef0123456789abcdef/decrypt", "/keys/a//", "/keys/a///",
		"/deletedkeys", "/deletedkeys/a", "/deletedkeys/a/recover", "/keys/a/x/release", "/keys/a/rotate")
}
