package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

func TestKeyCreate(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, key, body string
		status          int
		code, msg       string
		kty, crv        string
		bits            int
		ops             []string
	}{
		{"ok/rsa-default", "k-rsa", `{"kty":"RSA"}`, 200, "", "", "RSA", "", 2048, []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}},
		{"ok/rsa-3072-exponent", "k-rsa3", `{"kty":"RSA","key_size":3072,"public_exponent":65537}`, 200, "", "", "RSA", "", 3072, nil},
		{"ok/rsa-4096", "k-rsa4", `{"kty":"RSA","key_size":4096}`, 200, "", "", "RSA", "", 4096, nil},
		{"ok/rsa-ops", "k-rsa-ops", `{"kty":"RSA","key_ops":["sign","verify","sign"]}`, 200, "", "", "RSA", "", 2048, []string{"sign", "verify"}},
		{"ok/ec-default-p256", "k-ec", `{"kty":"EC"}`, 200, "", "", "EC", "P-256", 0, []string{"sign", "verify"}},
		{"ok/ec-p384", "k-ec384", `{"kty":"EC","crv":"P-384"}`, 200, "", "", "EC", "P-384", 0, nil},
		{"ok/ec-p521", "k-ec521", `{"kty":"EC","crv":"P-521"}`, 200, "", "", "EC", "P-521", 0, nil},
		{"fail/no-kty", "k-x", `{}`, 400, "BadParameter", "'kty'", "", "", 0, nil},
		{"fail/rsa-hsm", "k-x", `{"kty":"RSA-HSM"}`, 400, "BadParameter", "HSM", "", "", 0, nil},
		{"fail/ec-hsm", "k-x", `{"kty":"EC-HSM"}`, 400, "BadParameter", "HSM", "", "", 0, nil},
		{"fail/oct", "k-x", `{"kty":"oct"}`, 400, "BadParameter", "Managed HSM", "", "", 0, nil},
		{"fail/unknown-kty", "k-x", `{"kty":"DSA"}`, 400, "BadParameter", "not supported", "", "", 0, nil},
		{"fail/rsa-1024", "k-x", `{"kty":"RSA","key_size":1024}`, 400, "BadParameter", "2048, 3072 or 4096", "", "", 0, nil},
		{"fail/rsa-exponent-3", "k-x", `{"kty":"RSA","public_exponent":3}`, 400, "BadParameter", "65537", "", "", 0, nil},
		{"fail/rsa-crv", "k-x", `{"kty":"RSA","crv":"P-256"}`, 400, "BadParameter", "crv", "", "", 0, nil},
		{"fail/ec-p256k", "k-x", `{"kty":"EC","crv":"P-256K"}`, 400, "BadParameter", "P-256K", "", "", 0, nil},
		{"fail/ec-unknown-curve", "k-x", `{"kty":"EC","crv":"X25519"}`, 400, "BadParameter", "not supported", "", "", 0, nil},
		{"fail/ec-size", "k-x", `{"kty":"EC","key_size":256}`, 400, "BadParameter", "do not apply", "", "", 0, nil},
		{"fail/ec-encrypt-op", "k-x", `{"kty":"EC","key_ops":["encrypt"]}`, 400, "BadParameter", "not supported for key type EC", "", "", 0, nil},
		{"fail/unknown-op", "k-x", `{"kty":"RSA","key_ops":["destroy"]}`, 400, "BadParameter", "invalid", "", "", 0, nil},
		{"fail/export-op", "k-x", `{"kty":"RSA","key_ops":["export"]}`, 400, "BadParameter", "not exportable", "", "", 0, nil},
		{"fail/exportable", "k-x", `{"kty":"RSA","attributes":{"exportable":true}}`, 400, "BadParameter", "not exportable", "", "", 0, nil},
		{"fail/release-policy", "k-x", `{"kty":"RSA","release_policy":{"data":"e30"}}`, 400, "BadParameter", "not exportable", "", "", 0, nil},
		{"fail/import-member", "k-x", `{"kty":"RSA","key":{"kty":"RSA"}}`, 400, "BadParameter", "import", "", "", 0, nil},
		{"fail/too-many-tags", "k-x", `{"kty":"EC","tags":{` + manyTags(16) + `}}`, 400, "BadParameter", "tags", "", "", 0, nil},
		{"fail/bad-nbf", "k-x", `{"kty":"EC","attributes":{"nbf":-1}}`, 400, "BadParameter", "nbf", "", "", 0, nil},
		{"fail/not-json", "k-x", `{"kty":`, 400, "BadParameter", "JSON", "", "", 0, nil},
		{"fail/empty-body", "k-x", ``, 400, "BadParameter", "missing", "", "", 0, nil},
		{"fail/invalid-name", "k_x", `{"kty":"EC"}`, 400, "BadParameter", "invalid name", "", "", 0, nil},
		{"fail/name-too-long", strings.Repeat("a", 128), `{"kty":"EC"}`, 400, "BadParameter", "invalid name", "", "", 0, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.serve(call{method: "POST", target: "/keys/" + c.key + "/create", body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status != 200 {
				code, _, msg := errCode(t, w)
				if code != c.code || !strings.Contains(msg, c.msg) {
					t.Fatalf("error %s %q", code, msg)
				}
				return
			}
			b := decodeMap(t, w)
			for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`, `"dq"`, `"qi"`, `"k"`} {
				if strings.Contains(w.Body.String(), private+":") {
					t.Fatalf("response carries private member %s: %s", private, w.Body)
				}
			}
			k := jwkOf(t, b)
			if k["kty"] != c.kty || !strings.HasPrefix(k["kid"].(string), "https://v1.vault.localhost:8443/keys/"+c.key+"/") ||
				len(kidVersion(t, k["kid"])) != 32 {
				t.Fatalf("jwk %v", k)
			}
			if c.ops != nil && !slices.Equal(toStrings(k["key_ops"]), c.ops) {
				t.Fatalf("key_ops %v, want %v", k["key_ops"], c.ops)
			}
			switch c.kty {
			case "RSA":
				if k["e"] != "AQAB" || len(unb64(t, k["n"]))*8 != c.bits {
					t.Fatalf("rsa jwk e=%v n bits=%d", k["e"], len(unb64(t, k["n"]))*8)
				}
			case "EC":
				size := map[string]int{"P-256": 32, "P-384": 48, "P-521": 66}[c.crv]
				if k["crv"] != c.crv || len(unb64(t, k["x"])) != size || len(unb64(t, k["y"])) != size {
					t.Fatalf("ec jwk %v", k)
				}
				publicOf(t, b) // the point is on the curve
			}
			if attr(b, "enabled") != true || attr(b, "recoveryLevel") != "Recoverable+Purgeable" || attr(b, "recoverableDays") != float64(90) {
				t.Fatalf("attributes %v", b["attributes"])
			}
		})
	}
}

func manyTags(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"t%d":"v"`, i))
	}
	return strings.Join(parts, ",")
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func TestKeyCreateAttributesAndVersions(t *testing.T) {
	e := newEnv(t)
	first := e.mustKey("k1", `{"kty":"EC","tags":{"env":"test"},"attributes":{"nbf":1000,"exp":4102444800,"enabled":true}}`)
	if attr(first, "nbf") != float64(1000) || attr(first, "exp") != float64(4102444800) || first["tags"].(map[string]any)["env"] != "test" {
		t.Fatalf("bundle %v", first)
	}
	second := e.mustKey("K1", `{"kty":"RSA"}`) // names are case-insensitive; a create adds a version
	v1, v2 := kidVersion(t, jwkOf(t, first)["kid"]), kidVersion(t, jwkOf(t, second)["kid"])
	if v1 == v2 {
		t.Fatal("same version")
	}
	cases := []struct {
		name, target string
		status       int
		version, kty string
	}{
		{"ok/latest", "/keys/k1", 200, v2, "RSA"},
		{"ok/latest-trailing-slash", "/keys/k1/", 200, v2, "RSA"},
		{"ok/first-version", "/keys/k1/" + v1, 200, v1, "EC"},
		{"ok/upper-case-version", "/keys/k1/" + strings.ToUpper(v1), 200, v1, "EC"},
		{"fail/unknown-version", "/keys/k1/0123456789abcdef0123456789abcdef", 404, "", ""},
		{"fail/malformed-version", "/keys/k1/xyz", 404, "", ""},
		{"fail/unknown-key", "/keys/nope", 404, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.serve(call{method: "GET", target: c.target})
			if w.Code != c.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if c.status != 200 {
				if code, _, _ := errCode(t, w); code != "KeyNotFound" {
					t.Fatalf("code %s", code)
				}
				return
			}
			k := jwkOf(t, decodeMap(t, w))
			if kidVersion(t, k["kid"]) != c.version || k["kty"] != c.kty {
				t.Fatalf("jwk %v", k)
			}
		})
	}
	t.Run("ok/versions", func(t *testing.T) {
		code, m := e.do("GET", "/keys/k1/versions", "")
		vals, _ := m["value"].([]any)
		if code != 200 || len(vals) != 2 || m["nextLink"] != nil {
			t.Fatalf("%d %v", code, m)
		}
		for _, v := range vals {
			item := v.(map[string]any)
			if item["key"] != nil || !slices.Contains([]string{v1, v2}, kidVersion(t, item["kid"])) {
				t.Fatalf("item %v", item)
			}
		}
	})
	t.Run("fail/versions-unknown-key", func(t *testing.T) {
		if code, _ := e.do("GET", "/keys/nope/versions", ""); code != 404 {
			t.Fatalf("%d", code)
		}
	})
}

func TestKeyListPaging(t *testing.T) {
	e := newEnv(t)
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("page-%d", i)
		e.mustKey(name, `{"kty":"EC"}`)
		want = append(want, "https://v1.vault.localhost:8443/keys/"+name)
	}
	var got []string
	target := "/keys?maxresults=2"
	for pages := 0; target != ""; pages++ {
		if pages > 5 {
			t.Fatal("too many pages")
		}
		code, m := e.do("GET", target, "")
		if code != 200 {
			t.Fatalf("%d %v", code, m)
		}
		for _, v := range m["value"].([]any) {
			item := v.(map[string]any)
			if item["key"] != nil || item["attributes"] == nil {
				t.Fatalf("item %v", item)
			}
			got = append(got, item["kid"].(string))
		}
		target = ""
		if next, ok := m["nextLink"].(string); ok {
			target = strings.TrimPrefix(next, "https://v1.vault.localhost:8443")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	for _, bad := range []string{"/keys?maxresults=0", "/keys?maxresults=26", "/keys?$skiptoken=%21%21"} {
		if code, _ := e.do("GET", bad, ""); code != 400 {
			t.Fatalf("%s: %d", bad, code)
		}
	}
}

func TestKeyUpdate(t *testing.T) {
	e := newEnv(t)
	first := e.mustKey("upd", `{"kty":"RSA","tags":{"a":"1"}}`)
	v1 := kidVersion(t, jwkOf(t, first)["kid"])
	e.clk.Advance(time.Minute)
	e.mustKey("upd", `{"kty":"RSA"}`)
	cases := []struct {
		name, target, body string
		status             int
		check              func(t *testing.T, b map[string]any)
	}{
		{"ok/tags-and-ops", "/keys/upd/", `{"tags":{"b":"2"},"key_ops":["sign","verify"]}`, 200, func(t *testing.T, b map[string]any) {
			if !slices.Equal(toStrings(jwkOf(t, b)["key_ops"]), []string{"sign", "verify"}) || b["tags"].(map[string]any)["b"] != "2" {
				t.Fatalf("%v", b)
			}
		}},
		{"ok/disable-old-version", "/keys/upd/" + v1, `{"attributes":{"enabled":false,"exp":4102444800}}`, 200, func(t *testing.T, b map[string]any) {
			if attr(b, "enabled") != false || attr(b, "exp") != float64(4102444800) || attr(b, "updated") == attr(b, "created") ||
				b["tags"].(map[string]any)["a"] != "1" {
				t.Fatalf("%v", b)
			}
		}},
		{"ok/null-exp-is-absent", "/keys/upd/" + v1, `{"attributes":{"exp":null}}`, 200, func(t *testing.T, b map[string]any) {
			if attr(b, "exp") != float64(4102444800) {
				t.Fatalf("%v", b)
			}
		}},
		{"fail/kty", "/keys/upd", `{"kty":"EC"}`, 400, nil},
		{"fail/bad-op", "/keys/upd", `{"key_ops":["fly"]}`, 400, nil},
		{"fail/export", "/keys/upd", `{"key_ops":["export"]}`, 400, nil},
		{"fail/unknown-key", "/keys/none", `{"tags":{}}`, 404, nil},
		{"fail/unknown-version", "/keys/upd/0123456789abcdef0123456789abcdef", `{"tags":{}}`, 404, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.serve(call{method: "PATCH", target: c.target, body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if c.check != nil {
				c.check(t, decodeMap(t, w))
			}
		})
	}
	// The old version's update left the head (latest) alone.
	if code, m := e.do("GET", "/keys/upd", ""); code != 200 || attr(m, "enabled") != true {
		t.Fatalf("latest %d %v", code, m)
	}
	// An EC key cannot be given RSA operations.
	e.mustKey("upd-ec", `{"kty":"EC"}`)
	if code, _ := e.do("PATCH", "/keys/upd-ec", `{"key_ops":["wrapKey"]}`); code != 400 {
		t.Fatalf("ec wrapKey: %d", code)
	}
}

// TestKeyCrypto round-trips every algorithm through the service and checks
// signatures and ciphertexts with Go's crypto outside it.
func TestKeyCrypto(t *testing.T) {
	e := newEnv(t)
	rsaB := e.mustKey("rsa", `{"kty":"RSA"}`)
	rsaPub := publicOf(t, rsaB).(*rsa.PublicKey)
	msg := []byte("attack at dawn")
	for _, alg := range []string{"RSA-OAEP", "RSA-OAEP-256", "RSA1_5"} {
		for _, pair := range [][2]string{{"encrypt", "decrypt"}, {"wrapkey", "unwrapkey"}} {
			t.Run("ok/"+alg+"/"+pair[0], func(t *testing.T) {
				code, m := e.do("POST", "/keys/rsa//"+pair[0], opBody(alg, msg))
				if code != 200 || kidVersion(t, m["kid"]) != kidVersion(t, jwkOf(t, rsaB)["kid"]) {
					t.Fatalf("%d %v", code, m)
				}
				ct := unb64(t, m["value"])
				if len(ct) != 256 {
					t.Fatalf("ciphertext %d bytes", len(ct))
				}
				code, m = e.do("POST", "/keys/rsa/"+kidVersion(t, m["kid"])+"/"+pair[1], opBody(alg, ct))
				if code != 200 || string(unb64(t, m["value"])) != string(msg) {
					t.Fatalf("%s: %d %v", pair[1], code, m)
				}
			})
		}
	}
	t.Run("ok/decrypt-local-oaep256-ciphertext", func(t *testing.T) {
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rsaPub, msg, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, m := e.do("POST", "/keys/rsa//decrypt", opBody("RSA-OAEP-256", ct))
		if code != 200 || string(unb64(t, m["value"])) != string(msg) {
			t.Fatalf("%d %v", code, m)
		}
	})

	digests := map[crypto.Hash][]byte{}
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		hh := h.New()
		hh.Write(msg)
		digests[h] = hh.Sum(nil)
	}
	ecKeys := map[string]map[string]any{
		"P-256": e.mustKey("ec256", `{"kty":"EC","crv":"P-256"}`),
		"P-384": e.mustKey("ec384", `{"kty":"EC","crv":"P-384"}`),
		"P-521": e.mustKey("ec521", `{"kty":"EC","crv":"P-521"}`),
	}
	sigCases := []struct {
		alg, key string
		hash     crypto.Hash
		bundle   map[string]any
	}{
		{"RS256", "rsa", crypto.SHA256, rsaB}, {"RS384", "rsa", crypto.SHA384, rsaB}, {"RS512", "rsa", crypto.SHA512, rsaB},
		{"PS256", "rsa", crypto.SHA256, rsaB}, {"PS384", "rsa", crypto.SHA384, rsaB}, {"PS512", "rsa", crypto.SHA512, rsaB},
		{"ES256", "ec256", crypto.SHA256, ecKeys["P-256"]}, {"ES384", "ec384", crypto.SHA384, ecKeys["P-384"]},
		{"ES512", "ec521", crypto.SHA512, ecKeys["P-521"]},
	}
	for _, c := range sigCases {
		t.Run("ok/sign-verify/"+c.alg, func(t *testing.T) {
			d := digests[c.hash]
			code, m := e.do("POST", "/keys/"+c.key+"//sign", opBody(c.alg, d))
			if code != 200 {
				t.Fatalf("sign %d %v", code, m)
			}
			sig := unb64(t, m["value"])
			switch pub := publicOf(t, c.bundle).(type) {
			case *rsa.PublicKey:
				var err error
				if strings.HasPrefix(c.alg, "PS") {
					err = rsa.VerifyPSS(pub, c.hash, d, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
				} else {
					err = rsa.VerifyPKCS1v15(pub, c.hash, d, sig)
				}
				if err != nil {
					t.Fatalf("local verify: %v", err)
				}
			case *ecdsa.PublicKey:
				n := (pub.Curve.Params().BitSize + 7) / 8
				if len(sig) != 2*n || !ecdsa.Verify(pub, d, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
					t.Fatalf("local verify failed (%d bytes)", len(sig))
				}
			}
			code, m = e.do("POST", "/keys/"+c.key+"//verify", verifyBody(c.alg, d, sig))
			if code != 200 || m["value"] != true {
				t.Fatalf("verify %d %v", code, m)
			}
			sig[len(sig)/2] ^= 1
			code, m = e.do("POST", "/keys/"+c.key+"//verify", verifyBody(c.alg, d, sig))
			if code != 200 || m["value"] != false {
				t.Fatalf("verify of a bad signature %d %v", code, m)
			}
		})
	}
}

// TestKeyCryptoRules covers the rules a crypto operation must pass.
func TestKeyCryptoRules(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now().Unix()
	e.mustKey("rsa", `{"kty":"RSA"}`)
	e.mustKey("ec", `{"kty":"EC"}`)
	e.mustKey("disabled", `{"kty":"RSA","attributes":{"enabled":false}}`)
	e.mustKey("future", fmt.Sprintf(`{"kty":"RSA","attributes":{"nbf":%d}}`, now+3600))
	e.mustKey("expired", fmt.Sprintf(`{"kty":"RSA","attributes":{"exp":%d}}`, now-1))
	e.mustKey("signonly", `{"kty":"RSA","key_ops":["sign"]}`)
	// A ciphertext of the expired key, made before it expired (locally).
	_, exp := e.do("GET", "/keys/expired", "")
	expPub := publicOf(t, exp).(*rsa.PublicKey)
	oldCT, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, expPub, []byte("old"), nil)
	d256 := sha256.Sum256([]byte("x"))
	d512 := sha512.Sum512([]byte("x"))
	cases := []struct {
		name, target, body string
		status             int
		code, inner, msg   string
	}{
		{"fail/disabled-encrypt", "/keys/disabled//encrypt", opBody("RSA-OAEP", []byte("x")), 403, "Forbidden", "KeyDisabled", "disabled"},
		{"fail/disabled-verify", "/keys/disabled//verify", verifyBody("RS256", d256[:], make([]byte, 256)), 403, "Forbidden", "KeyDisabled", "disabled"},
		{"fail/disabled-get", "/keys/disabled", "", 403, "Forbidden", "KeyDisabled", "disabled"},
		{"fail/not-yet-valid-sign", "/keys/future//sign", opBody("RS256", d256[:]), 403, "Forbidden", "KeyNotYetValid", "not yet valid"},
		{"fail/not-yet-valid-decrypt", "/keys/future//decrypt", opBody("RSA-OAEP", make([]byte, 256)), 403, "Forbidden", "KeyNotYetValid", ""},
		{"fail/expired-encrypt", "/keys/expired//encrypt", opBody("RSA-OAEP", []byte("x")), 403, "Forbidden", "KeyExpired", "expired"},
		{"fail/expired-sign", "/keys/expired//sign", opBody("RS256", d256[:]), 403, "Forbidden", "KeyExpired", ""},
		{"fail/expired-wrap", "/keys/expired//wrapkey", opBody("RSA-OAEP", []byte("x")), 403, "Forbidden", "KeyExpired", ""},
		{"ok/expired-decrypt", "/keys/expired//decrypt", opBody("RSA-OAEP-256", oldCT), 200, "", "", ""},
		{"fail/op-not-in-key-ops", "/keys/signonly//encrypt", opBody("RSA-OAEP", []byte("x")), 403, "Forbidden", "", "key_ops"},
		{"fail/verify-not-in-key-ops", "/keys/signonly//verify", verifyBody("RS256", d256[:], make([]byte, 256)), 403, "Forbidden", "", "key_ops"},
		{"fail/ec-encrypt", "/keys/ec//encrypt", opBody("RSA-OAEP", []byte("x")), 403, "Forbidden", "", "key_ops"},
		{"fail/rsa-oaep-too-long", "/keys/rsa//encrypt", opBody("RSA-OAEP", make([]byte, 215)), 400, "BadParameter", "", "at most 214"},
		{"ok/rsa-oaep-max", "/keys/rsa//encrypt", opBody("RSA-OAEP", make([]byte, 214)), 200, "", "", ""},
		{"fail/rsa-oaep256-too-long", "/keys/rsa//encrypt", opBody("RSA-OAEP-256", make([]byte, 191)), 400, "BadParameter", "", "at most 190"},
		{"fail/rsa15-too-long", "/keys/rsa//wrapkey", opBody("RSA1_5", make([]byte, 246)), 400, "BadParameter", "", "at most 245"},
		{"fail/symmetric-alg", "/keys/rsa//encrypt", opBody("A256GCM", []byte("x")), 400, "BadParameter", "", "not supported for key type RSA"},
		{"fail/iv", "/keys/rsa//encrypt", `{"alg":"RSA-OAEP","value":"eA","iv":"AAAA"}`, 400, "BadParameter", "", "symmetric"},
		{"fail/no-alg", "/keys/rsa//encrypt", `{"value":"eA"}`, 400, "BadParameter", "", "'alg'"},
		{"fail/no-value", "/keys/rsa//encrypt", `{"alg":"RSA-OAEP"}`, 400, "BadParameter", "", "'value'"},
		{"fail/value-not-base64", "/keys/rsa//encrypt", `{"alg":"RSA-OAEP","value":"***"}`, 400, "BadParameter", "", ""},
		{"fail/ciphertext-size", "/keys/rsa//decrypt", opBody("RSA-OAEP", make([]byte, 100)), 400, "BadParameter", "", "256 bytes"},
		{"fail/ciphertext-garbage", "/keys/rsa//decrypt", opBody("RSA-OAEP", make([]byte, 256)), 400, "BadParameter", "", "could not be decrypted"},
		{"fail/digest-length", "/keys/rsa//sign", opBody("RS256", d512[:]), 400, "BadParameter", "", "32-byte digest"},
		{"fail/es-on-rsa", "/keys/rsa//sign", opBody("ES256", d256[:]), 400, "BadParameter", "", "not supported for key type RSA"},
		{"fail/rs-on-ec", "/keys/ec//sign", opBody("RS256", d256[:]), 400, "BadParameter", "", "not supported for key type EC"},
		{"fail/es384-on-p256", "/keys/ec//sign", opBody("ES384", make([]byte, 48)), 400, "BadParameter", "", "curve P-384"},
		{"fail/es256k", "/keys/ec//sign", opBody("ES256K", d256[:]), 400, "BadParameter", "", "secp256k1"},
		{"fail/verify-no-digest", "/keys/ec//verify", opBody("ES256", d256[:]), 400, "BadParameter", "", "'digest'"},
		{"fail/unknown-key", "/keys/nope//sign", opBody("RS256", d256[:]), 404, "KeyNotFound", "", ""},
		{"fail/unknown-version", "/keys/rsa/0123456789abcdef0123456789abcdef/sign", opBody("RS256", d256[:]), 404, "KeyNotFound", "", ""},
		{"fail/get-method", "/keys/rsa//sign", "", 405, "MethodNotAllowed", "", ""},
		{"fail/release", "/keys/rsa//release", `{}`, 400, "BadParameter", "", "not exportable"},
		{"fail/rotation-policy-post", "/keys/rsa/rotationpolicy", `{}`, 405, "MethodNotAllowed", "", ""},
		// The Go SDK drops the empty version: /keys/{name}/{op} is the latest.
		{"ok/sdk-latest-form", "/keys/rsa/sign", opBody("RS256", d256[:]), 200, "", "", ""},
		{"fail/sdk-latest-form-disabled", "/keys/disabled/wrapkey", opBody("RSA-OAEP", []byte("x")), 403, "Forbidden", "KeyDisabled", ""},
		{"fail/release-latest", "/keys/rsa/release", `{}`, 400, "BadParameter", "", "not exportable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			method := "POST"
			if c.body == "" {
				method = "GET"
			}
			w := e.serve(call{method: method, target: c.target, body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status == 200 {
				return
			}
			code, inner, msg := errCode(t, w)
			if code != c.code || inner != c.inner || !strings.Contains(msg, c.msg) {
				t.Fatalf("error %s/%s %q", code, inner, msg)
			}
		})
	}
}

func TestKeyImport(t *testing.T) {
	e := newEnv(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	ek, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	mismatched := ecJWK(ek)
	mismatched["x"] = ecJWK(other)["x"]
	noPrivate := rsaJWK(rk)
	delete(noPrivate, "d")
	badDP := rsaJWK(rk)
	badDP["dp"] = b64([]byte{1, 2, 3})
	withOps := rsaJWK(rk)
	withOps["key_ops"] = []string{"sign", "verify"}
	hsm := rsaJWK(rk)
	hsm["kty"] = "RSA-HSM"
	byok := rsaJWK(rk)
	byok["key_hsm"] = b64([]byte("blob"))
	ecOps := ecJWK(ek)
	ecOps["key_ops"] = []string{"decrypt"}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	cases := []struct {
		name, key, body string
		status          int
		msg             string
	}{
		{"ok/rsa", "imp-rsa", importBody(t, rsaJWK(rk), map[string]any{"tags": map[string]string{"src": "import"}}), 200, ""},
		{"ok/ec-p384", "imp-ec", importBody(t, ecJWK(ek), nil), 200, ""},
		{"ok/rsa-ops", "imp-ops", importBody(t, withOps, map[string]any{"Hsm": false}), 200, ""},
		{"fail/mismatched-point", "imp-x", importBody(t, mismatched, nil), 400, "does not match"},
		{"fail/no-private", "imp-x", importBody(t, noPrivate, nil), 400, "no private part"},
		{"fail/inconsistent-crt", "imp-x", importBody(t, badDP, nil), 400, "not valid"},
		{"fail/hsm-flag", "imp-x", importBody(t, rsaJWK(rk), map[string]any{"Hsm": true}), 400, "HSM"},
		{"fail/hsm-kty", "imp-x", importBody(t, hsm, nil), 400, "HSM"},
		{"fail/byok", "imp-x", importBody(t, byok, nil), 400, "HSM"},
		{"fail/ec-decrypt-op", "imp-x", importBody(t, ecOps, nil), 400, "not supported for key type EC"},
		{"fail/rsa-1024", "imp-x", importBody(t, rsaJWK(small), nil), 400, "2048 to 4096"},
		{"fail/oct", "imp-x", `{"key":{"kty":"oct","k":"AAAA"}}`, 400, "Managed HSM"},
		{"fail/no-key", "imp-x", `{"tags":{}}`, 400, "'key'"},
		{"fail/kty-outside-key", "imp-x", `{"kty":"RSA","key":{"kty":"RSA"}}`, 400, "inside 'key'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.serve(call{method: "PUT", target: "/keys/" + c.key, body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if c.status != 200 {
				if code, _, msg := errCode(t, w); code != "BadParameter" || !strings.Contains(msg, c.msg) {
					t.Fatalf("%s %q", code, msg)
				}
				for _, v := range []any{rsaJWK(rk)["d"], ecJWK(ek)["d"]} {
					if strings.Contains(w.Body.String(), v.(string)) {
						t.Fatal("error echoes key material")
					}
				}
				return
			}
			if strings.Contains(w.Body.String(), `"d":`) {
				t.Fatalf("private member in response: %s", w.Body)
			}
		})
	}
	// The imported keys work, and their signatures verify with the originals.
	d := sha256.Sum256([]byte("imported"))
	code, m := e.do("POST", "/keys/imp-rsa//sign", opBody("PS256", d[:]))
	if code != 200 || rsa.VerifyPSS(&rk.PublicKey, crypto.SHA256, d[:], unb64(t, m["value"]), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) != nil {
		t.Fatalf("imported rsa sign: %d %v", code, m)
	}
	d384 := sha512.Sum384([]byte("imported"))
	code, m = e.do("POST", "/keys/imp-ec//sign", opBody("ES384", d384[:]))
	if sig := unb64(t, m["value"]); code != 200 || !ecdsa.Verify(&ek.PublicKey, d384[:], new(big.Int).SetBytes(sig[:48]), new(big.Int).SetBytes(sig[48:])) {
		t.Fatalf("imported ec sign: %d %v", code, m)
	}
	if code, m := e.do("GET", "/keys/imp-ops", ""); code != 200 || !slices.Equal(toStrings(jwkOf(t, m)["key_ops"]), []string{"sign", "verify"}) {
		t.Fatalf("imported ops: %d %v", code, m)
	}
}

func TestKeyDeleteRecoverPurge(t *testing.T) {
	e := newEnv(t)
	e.mustKey("dk", `{"kty":"EC"}`)
	code, m := e.do("DELETE", "/keys/dk", "")
	if code != 200 || m["recoveryId"] != "https://v1.vault.localhost:8443/deletedkeys/dk" || m["deletedDate"] == nil ||
		m["scheduledPurgeDate"].(float64)-m["deletedDate"].(float64) != 90*86400 || jwkOf(t, m)["kty"] != "EC" {
		t.Fatalf("delete %d %v", code, m)
	}
	steps := []struct {
		name, method, target, body string
		status                     int
		code                       string
	}{
		{"fail/get-after-delete", "GET", "/keys/dk", "", 404, "KeyNotFound"},
		{"fail/sign-after-delete", "POST", "/keys/dk//sign", opBody("ES256", make([]byte, 32)), 404, "KeyNotFound"},
		{"fail/delete-again", "DELETE", "/keys/dk", "", 404, "KeyNotFound"},
		{"fail/create-over-deleted", "POST", "/keys/dk/create", `{"kty":"EC"}`, 409, "Conflict"},
		{"fail/import-over-deleted", "PUT", "/keys/DK", importBody(t, ecJWK(mustEC(t)), nil), 409, "Conflict"},
		{"ok/get-deleted", "GET", "/deletedkeys/dk", "", 200, ""},
		{"ok/list-deleted", "GET", "/deletedkeys", "", 200, ""},
		{"ok/recover", "POST", "/deletedkeys/dk/recover", "", 200, ""},
		{"ok/get-after-recover", "GET", "/keys/dk", "", 200, ""},
		{"fail/recover-again", "POST", "/deletedkeys/dk/recover", "", 404, "KeyNotFound"},
		{"ok/delete-again", "DELETE", "/keys/dk", "", 200, ""},
		{"ok/purge", "DELETE", "/deletedkeys/dk", "", 204, ""},
		{"fail/get-deleted-after-purge", "GET", "/deletedkeys/dk", "", 404, "KeyNotFound"},
		{"ok/create-after-purge", "POST", "/keys/dk/create", `{"kty":"EC"}`, 200, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			w := e.serve(call{method: s.method, target: s.target, body: s.body})
			if w.Code != s.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if s.code != "" {
				code, inner, _ := errCode(t, w)
				if code != s.code || (s.status == 409 && inner != innerDeleted) {
					t.Fatalf("%s/%s", code, inner)
				}
			}
			if s.name == "ok/list-deleted" {
				items := decodeMap(t, w)["value"].([]any)
				if len(items) != 1 || items[0].(map[string]any)["kid"] != "https://v1.vault.localhost:8443/keys/dk" {
					t.Fatalf("%v", items)
				}
			}
		})
	}
	// The purge left no version behind: only the re-created one exists.
	versions := 0
	for k := range e.snapshot() {
		if strings.HasPrefix(k, keyVersionsPrefix("iid-v1", "dk")) {
			versions++
		}
		if strings.HasPrefix(k, keyPurgeIndexPrefix) || strings.HasPrefix(k, keyDeletedKey("iid-v1", "dk")) {
			t.Fatalf("left behind %s", k)
		}
	}
	if versions != 1 {
		t.Fatalf("%d versions of dk, want the re-created one", versions)
	}

	t.Run("fail/purge-protected", func(t *testing.T) {
		v := newVault("pp", tenant1)
		v.EnablePurgeProtection = true
		v.SoftDeleteRetentionInDays = 7
		e.dir.put(v)
		w := e.serve(call{vault: "pp", method: "POST", target: "/keys/k/create", body: `{"kty":"EC"}`})
		if w.Code != 200 || attr(decodeMap(t, w), "recoveryLevel") != "CustomizedRecoverable" {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		e.serve(call{vault: "pp", method: "DELETE", target: "/keys/k"})
		w = e.serve(call{vault: "pp", method: "DELETE", target: "/deletedkeys/k"})
		if code, _, _ := errCode(t, w); w.Code != 403 || code != "Forbidden" {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		// The system purge at the end of retention still removes it.
		e.clk.Advance(8 * 24 * time.Hour)
		n, err := e.svc.PurgeExpired(context.Background())
		if err != nil || n != 1 {
			t.Fatalf("PurgeExpired = %d, %v", n, err)
		}
		if w := e.serve(call{vault: "pp", method: "GET", target: "/deletedkeys/k"}); w.Code != 404 {
			t.Fatalf("after expiry %d", w.Code)
		}
		for k := range e.snapshot() {
			if strings.Contains(k, "iid-pp/keys/") || strings.HasPrefix(k, keyPurgeIndexPrefix) {
				t.Fatalf("left behind %s", k)
			}
		}
	})
}

func mustEC(t testing.TB) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyBackupRestore(t *testing.T) {
	e := newEnv(t)
	first := e.mustKey("bk", `{"kty":"RSA","tags":{"t":"1"}}`)
	e.mustKey("bk", `{"kty":"RSA"}`)
	pub := publicOf(t, first).(*rsa.PublicKey)
	ct, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, []byte("kept"), nil)
	code, m := e.do("POST", "/keys/bk/backup", "")
	if code != 200 {
		t.Fatalf("backup %d %v", code, m)
	}
	blob := m["value"].(string)
	restore := func(vault, value string) (int, map[string]any) {
		w := e.serve(call{vault: vault, method: "POST", target: "/keys/restore", body: `{"value":"` + value + `"}`})
		return w.Code, decodeMap(t, w)
	}
	if code, _ := restore("v1", blob); code != 409 {
		t.Fatalf("restore over a live key: %d", code)
	}
	e.do("DELETE", "/keys/bk", "")
	if code, m := restore("v1", blob); code != 409 || m["error"].(map[string]any)["innererror"] == nil {
		t.Fatalf("restore over a deleted key: %d %v", code, m)
	}
	e.do("DELETE", "/deletedkeys/bk", "")
	code, m = restore("v1", blob)
	if code != 200 || jwkOf(t, m)["kty"] != "RSA" {
		t.Fatalf("restore %d %v", code, m)
	}
	// Every version came back; the first still decrypts what it encrypted.
	if code, m := e.do("GET", "/keys/bk/versions", ""); code != 200 || len(m["value"].([]any)) != 2 {
		t.Fatalf("versions %d %v", code, m)
	}
	v1 := kidVersion(t, jwkOf(t, first)["kid"])
	if code, m := e.do("POST", "/keys/bk/"+v1+"/decrypt", opBody("RSA-OAEP-256", ct)); code != 200 || string(unb64(t, m["value"])) != "kept" {
		t.Fatalf("decrypt after restore %d %v", code, m)
	}
	// Into another vault of the same tenant, and not of another tenant.
	e.dir.put(newVault("v2", tenant1))
	if code, _ := restore("v2", blob); code != 200 {
		t.Fatalf("restore into v2: %d", code)
	}
	e.dir.put(newVault("t2", tenant2))
	p2 := newPrincipal(tenant2, "oid-bob")
	w := e.serve(call{vault: "t2", p: p2, method: "POST", target: "/keys/restore", body: `{"value":"` + blob + `"}`})
	if w.Code != 400 {
		t.Fatalf("restore into another tenant: %d %s", w.Code, w.Body)
	}
	// A secret blob is not a key blob, and tampering is caught.
	e.mustSet("sec", `{"value":"x"}`)
	_, sb := e.do("POST", "/secrets/sec/backup", "")
	tampered := []byte(blob)
	tampered[len(tampered)/2] ^= 2
	for name, value := range map[string]string{"secret-blob": sb["value"].(string), "tampered": string(tampered), "garbage": "not-a-blob", "empty": ""} {
		t.Run("fail/"+name, func(t *testing.T) {
			e.do("DELETE", "/keys/bk", "")
			e.do("DELETE", "/deletedkeys/bk", "")
			if code, m := restore("v1", value); code != 400 {
				t.Fatalf("%d %v", code, m)
			}
		})
	}
	if code, _ := e.do("POST", "/keys/none/backup", ""); code != 404 {
		t.Fatalf("backup of a missing key: %d", code)
	}
}

// TestKeySealedAtRest: the store holds no private key in the clear, and a
// version record moved to another slot does not open.
func TestKeySealedAtRest(t *testing.T) {
	e := newEnv(t)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	if code, m := e.do("PUT", "/keys/sealed", importBody(t, rsaJWK(rk), nil)); code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rk)
	for k, v := range e.snapshot() {
		for _, secret := range [][]byte{rk.D.Bytes(), rk.Primes[0].Bytes(), der} {
			if strings.Contains(v, string(secret)) || strings.Contains(v, b64(secret)) ||
				strings.Contains(v, base64Std(secret)) {
				t.Fatalf("record %s holds private key material", k)
			}
		}
	}
	e.mustKey("other", `{"kty":"RSA"}`)
	// Copy sealed's version record into other's head version slot.
	ctx := context.Background()
	_, om := e.do("GET", "/keys/other", "")
	ov := kidVersion(t, jwkOf(t, om)["kid"])
	_, sm := e.do("GET", "/keys/sealed", "")
	sv := kidVersion(t, jwkOf(t, sm)["kid"])
	rec, err := e.st.Get(ctx, keyVersionKey("iid-v1", "sealed", sv))
	if err != nil {
		t.Fatal(err)
	}
	var vr keyVersionRec
	if err := json.Unmarshal(rec.Value, &vr); err != nil {
		t.Fatal(err)
	}
	vr.Name, vr.Version = "other", ov // even with the names rewritten, the aad differs
	if err := e.st.Update(ctx, func(tx store.Tx) error {
		_, err := store.PutJSON(ctx, tx, keyVersionKey("iid-v1", "other", ov), vr, store.Any)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("x"))
	w := e.serve(call{method: "POST", target: "/keys/other//sign", body: opBody("RS256", d[:])})
	if code, _, _ := errCode(t, w); w.Code != 500 || code != "InternalError" {
		t.Fatalf("moved record: %d %s", w.Code, w.Body)
	}
}

func base64Std(b []byte) string {
	s, _ := json.Marshal(b) // encoding/json writes []byte as standard base64
	return strings.Trim(string(s), `"`)
}

// TestKeyVaultPurgeData: a vault's purge removes its keys with its secrets.
func TestKeyVaultPurgeData(t *testing.T) {
	e := newEnv(t)
	e.mustKey("k", `{"kty":"EC"}`)
	e.mustSet("s", `{"value":"x"}`)
	if err := e.svc.PurgeVaultData(context.Background(), "iid-v1"); err != nil {
		t.Fatal(err)
	}
	for k := range e.snapshot() {
		if strings.HasPrefix(k, "vault/iid-v1/") {
			t.Fatalf("left behind %s", k)
		}
	}
}

// TestKeyAudit: operations are audited under Key Vault's AuditEvent names
// and name the key version they used.
func TestKeyAudit(t *testing.T) {
	e := newEnv(t)
	b := e.mustKey("au", `{"kty":"EC"}`)
	kid := jwkOf(t, b)["kid"].(string)
	d := sha256.Sum256([]byte("x"))
	cases := []struct {
		method, target, body, op, object string
	}{
		{"POST", "/keys/au2/create", `{"kty":"EC"}`, "KeyCreate", ""},
		{"GET", "/keys/au", "", "KeyGet", kid},
		{"GET", "/keys", "", "KeyList", "https://v1.vault.localhost:8443/keys"},
		{"GET", "/keys/au/versions", "", "KeyListVersions", ""},
		{"PATCH", "/keys/au", `{"tags":{"a":"b"}}`, "KeyUpdate", kid},
		{"POST", "/keys/au//sign", opBody("ES256", d[:]), "KeySign", kid},
		{"POST", "/keys/au//verify", verifyBody("ES256", d[:], make([]byte, 64)), "KeyVerify", kid},
		{"POST", "/keys/au/backup", "", "KeyBackup", ""},
		{"DELETE", "/keys/au", "", "KeyDelete", kid},
		{"GET", "/deletedkeys/au", "", "KeyGetDeleted", kid},
		{"GET", "/deletedkeys", "", "KeyListDeleted", ""},
		{"POST", "/deletedkeys/au/recover", "", "KeyRecover", kid},
		{"POST", "/keys/au//encrypt", opBody("RSA-OAEP", []byte("x")), "KeyEncrypt", ""},
		{"POST", "/keys/au//decrypt", opBody("RSA-OAEP", []byte("x")), "KeyDecrypt", ""},
		{"POST", "/keys/au//wrapkey", opBody("RSA-OAEP", []byte("x")), "KeyWrap", ""},
		{"POST", "/keys/au//unwrapkey", opBody("RSA-OAEP", []byte("x")), "KeyUnwrap", ""},
		{"PUT", "/keys/au3", `{}`, "KeyImport", ""},
		{"POST", "/keys/restore", `{}`, "KeyRestore", ""},
		{"POST", "/keys/au/rotate", "", "KeyRotate", ""},
		{"DELETE", "/deletedkeys/au", "", "KeyPurge", ""},
	}
	for _, c := range cases {
		t.Run(c.op, func(t *testing.T) {
			info := &principal.Info{}
			e.serve(call{method: c.method, target: c.target, body: c.body, info: info})
			if info.OperationName != c.op || (c.object != "" && info.ObjectID != c.object) {
				t.Fatalf("audit %q %q", info.OperationName, info.ObjectID)
			}
		})
	}
}

// TestKeyAuthorizeScope: a key operation is authorized at the key, lists
// and restore at the vault, with the keys data actions.
func TestKeyAuthorizeScope(t *testing.T) {
	e := newEnv(t)
	e.mustKey("sc", `{"kty":"EC"}`)
	d := sha256.Sum256([]byte("x"))
	cases := []struct{ method, target, body, action, scope string }{
		{"POST", "/keys/sc//sign", opBody("ES256", d[:]), "Microsoft.KeyVault/vaults/keys/sign/action", vaultRG + "v1/keys/sc"},
		{"POST", "/keys/sc//wrapkey", opBody("RSA-OAEP", d[:]), "Microsoft.KeyVault/vaults/keys/wrap/action", vaultRG + "v1/keys/sc"},
		{"GET", "/keys/sc", "", "Microsoft.KeyVault/vaults/keys/read", vaultRG + "v1/keys/sc"},
		{"GET", "/keys", "", "Microsoft.KeyVault/vaults/keys/read", vaultRG + "v1"},
		{"POST", "/keys/restore", `{}`, "Microsoft.KeyVault/vaults/keys/restore/action", vaultRG + "v1"},
	}
	for _, c := range cases {
		e.serve(call{method: c.method, target: c.target, body: c.body})
		if r := e.dec.last(); r.Action != c.action || r.Scope != c.scope || !r.DataAction {
			t.Fatalf("%s %s: decided %+v", c.method, c.target, r)
		}
	}
}

// TestKeyConcurrentCreate: concurrent creates of one key each add a version;
// the head names one of them.
func TestKeyConcurrentCreate(t *testing.T) {
	e := newEnv(t)
	const n = 8
	versions := make(chan string, n)
	errs := make(chan string, n)
	for range n {
		go func() {
			w := e.serve(call{method: "POST", target: "/keys/race/create", body: `{"kty":"EC"}`})
			if w.Code != 200 {
				errs <- w.Body.String()
				versions <- ""
				return
			}
			var b map[string]any
			_ = json.Unmarshal(w.Body.Bytes(), &b)
			versions <- kidVersion(t, b["key"].(map[string]any)["kid"])
		}()
	}
	seen := map[string]bool{}
	for range n {
		if v := <-versions; v != "" {
			seen[v] = true
		}
	}
	close(errs)
	for msg := range errs {
		t.Errorf("create failed: %s", msg)
	}
	code, m := e.do("GET", "/keys/race/versions", "")
	if code != 200 || len(m["value"].([]any)) != n || len(seen) != n {
		t.Fatalf("%d versions listed, %d distinct answered", len(m["value"].([]any)), len(seen))
	}
	_, head := e.do("GET", "/keys/race", "")
	if !seen[kidVersion(t, jwkOf(t, head)["kid"])] {
		t.Fatal("head names no created version")
	}
}

// TestKeyRotate: rotate adds a version with new material of the same type,
// size or curve, with the latest version's operations and tags.
func TestKeyRotate(t *testing.T) {
	e := newEnv(t)
	first := e.mustKey("rot", `{"kty":"RSA","key_size":3072,"key_ops":["sign","verify"],"tags":{"a":"b"},"attributes":{"exp":4102444800}}`)
	e.mustKey("rot-ec", `{"kty":"EC","crv":"P-521"}`)
	code, m := e.do("POST", "/keys/rot/rotate", "")
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	k, k0 := jwkOf(t, m), jwkOf(t, first)
	if kidVersion(t, k["kid"]) == kidVersion(t, k0["kid"]) || k["n"] == k0["n"] || len(unb64(t, k["n"])) != 384 ||
		!slices.Equal(toStrings(k["key_ops"]), []string{"sign", "verify"}) || m["tags"].(map[string]any)["a"] != "b" || attr(m, "exp") != nil {
		t.Fatalf("rotated %v", m)
	}
	if code, m := e.do("GET", "/keys/rot/versions", ""); code != 200 || len(m["value"].([]any)) != 2 {
		t.Fatalf("versions %d %v", code, m)
	}
	if code, m := e.do("POST", "/keys/rot-ec/rotate", ""); code != 200 || jwkOf(t, m)["crv"] != "P-521" {
		t.Fatalf("ec %d %v", code, m)
	}
	for _, c := range []struct {
		method, target string
		status         int
	}{{"POST", "/keys/none/rotate", 404}, {"GET", "/keys/rot/rotate", 405}} {
		if w := e.serve(call{method: c.method, target: c.target}); w.Code != c.status {
			t.Fatalf("%s %s: %d", c.method, c.target, w.Code)
		}
	}
}
