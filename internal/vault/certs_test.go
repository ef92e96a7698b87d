package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"strings"
	"testing"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestCertCreate(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name, cert, body string
		status           int
		code, msg        string
		check            func(t *testing.T, c *x509.Certificate)
	}{
		{"ok/rsa-default-pkcs12", "c-rsa", selfPolicy(""), 202, "", "", func(t *testing.T, c *x509.Certificate) {
			if k, ok := c.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
				t.Fatalf("want RSA 2048, got %T", c.PublicKey)
			}
			if c.Subject.CommonName != "app.example.com" || c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Fatalf("subject %v usage %v", c.Subject, c.KeyUsage)
			}
			if len(c.UnknownExtKeyUsage)+len(c.ExtKeyUsage) != 2 {
				t.Fatalf("ekus %v %v", c.ExtKeyUsage, c.UnknownExtKeyUsage)
			}
		}},
		{"ok/rsa-3072-pem-sans", "c-rsa3", `{"policy":{"issuer":{"name":"self"},"key_props":{"kty":"RSA","key_size":3072},"secret_props":{"contentType":"application/x-pem-file"},"x509_props":{"subject":"CN=a, O=Contoso, C=NL","sans":{"dns_names":["a.example","*.b.example"],"ipAddresses":["10.0.0.1"],"emails":["ops@example.com"],"uris":["spiffe://x/y"]},"validity_months":24,"key_usage":["digitalSignature"],"ekus":["1.3.6.1.5.5.7.3.1"]}}}`, 202, "", "", func(t *testing.T, c *x509.Certificate) {
			if k := c.PublicKey.(*rsa.PublicKey); k.N.BitLen() != 3072 {
				t.Fatalf("bits %d", k.N.BitLen())
			}
			if len(c.DNSNames) != 2 || len(c.IPAddresses) != 1 || len(c.EmailAddresses) != 1 || len(c.URIs) != 1 || c.Subject.Organization[0] != "Contoso" {
				t.Fatalf("sans %v %v %v %v", c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs)
			}
			if months := c.NotAfter.Sub(c.NotBefore).Hours() / 24 / 30; months < 23 || months > 25 {
				t.Fatalf("validity %v", months)
			}
		}},
		{"ok/ec-p384", "c-ec", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"EC","crv":"P-384"},"x509_props":{"subject":"CN=ec"}}}`, 202, "", "", func(t *testing.T, c *x509.Certificate) {
			if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P384() {
				t.Fatalf("want P-384, got %T", c.PublicKey)
			}
		}},
		{"ok/ec-p521-sans-only", "c-ec5", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"EC","crv":"P-521"},"x509_props":{"sans":{"dns_names":["only.example"]}}}}`, 202, "", "", nil},
		{"ok/ec-p256-by-crv", "c-ec2", `{"policy":{"issuer":{"name":"Self"},"key_props":{"crv":"P-256"},"x509_props":{"subject":"CN=ec2"}}}`, 202, "", "", nil},
		{"fail/issuer-ca", "c-x", `{"policy":{"issuer":{"name":"DigiCert"},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "no certificate authority integration", nil},
		{"fail/issuer-missing", "c-x", `{"policy":{"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "'policy.issuer.name' is required", nil},
		{"fail/no-policy", "c-x", `{}`, 400, "BadParameter", "'policy' is required", nil},
		{"fail/value", "c-x", `{"value":"abc","policy":{"issuer":{"name":"Self"}}}`, 400, "BadParameter", "belong to certificate import", nil},
		{"fail/hsm", "c-x", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"RSA-HSM"},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "HSM", nil},
		{"fail/rsa-1024", "c-x", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"RSA","key_size":1024},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "2048, 3072 or 4096", nil},
		{"fail/ec-size", "c-x", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"EC","key_size":256},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "does not apply", nil},
		{"fail/curve", "c-x", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"EC","crv":"P-256K"},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "P-256K", nil},
		{"fail/oct", "c-x", `{"policy":{"issuer":{"name":"Self"},"key_props":{"kty":"oct"},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "not supported", nil},
		{"fail/content-type", "c-x", `{"policy":{"issuer":{"name":"Self"},"secret_props":{"contentType":"text/plain"},"x509_props":{"subject":"CN=x"}}}`, 400, "BadParameter", "content type", nil},
		{"fail/validity-high", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","validity_months":1201}}}`, 400, "BadParameter", "between 1 and 1200", nil},
		{"fail/validity-negative", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","validity_months":-1}}}`, 400, "BadParameter", "between 1 and 1200", nil},
		{"fail/no-subject", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{}}}`, 400, "BadParameter", "subject", nil},
		{"fail/subject-attr", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"XX=a"}}}`, 400, "BadParameter", "not supported", nil},
		{"fail/subject-syntax", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"hello"}}}`, 400, "BadParameter", "distinguished name", nil},
		{"fail/subject-long", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=` + strings.Repeat("a", 1100) + `"}}}`, 400, "BadParameter", "maximum length", nil},
		{"fail/too-many-sans", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","sans":{"dns_names":[` + strings.TrimSuffix(strings.Repeat(`"a.b",`, 101), ",") + `]}}}}`, 400, "BadParameter", "at most 100", nil},
		{"fail/bad-dns", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","sans":{"dns_names":["a b"]}}}}`, 400, "BadParameter", "DNS name", nil},
		{"fail/bad-ip", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","sans":{"ipAddresses":["300.1.1.1"]}}}}`, 400, "BadParameter", "IP address", nil},
		{"fail/bad-email", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","sans":{"emails":["nope"]}}}}`, 400, "BadParameter", "e-mail", nil},
		{"fail/bad-uri", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","sans":{"uris":["relative"]}}}}`, 400, "BadParameter", "URI", nil},
		{"fail/upns", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","sans":{"upns":["a@b"]}}}}`, 400, "BadParameter", "upns", nil},
		{"fail/key-usage", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","key_usage":["everything"]}}}`, 400, "BadParameter", "Key usage", nil},
		{"fail/eku", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","ekus":["serverAuth"]}}}`, 400, "BadParameter", "object identifier", nil},
		{"fail/lifetime-action", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x"},"lifetime_actions":[{"trigger":{"lifetime_percentage":80},"action":{"action_type":"Explode"}}]}}`, 400, "BadParameter", "action_type", nil},
		{"fail/days-before-expiry-beyond-validity", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x","validity_months":2},"lifetime_actions":[{"trigger":{"days_before_expiry":55},"action":{"action_type":"AutoRenew"}}]}}`, 400, "BadParameter", "between 1 and 54", nil},
		{"fail/days-before-expiry-zero", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x"},"lifetime_actions":[{"trigger":{"days_before_expiry":0},"action":{"action_type":"AutoRenew"}}]}}`, 400, "BadParameter", "between 1 and 324", nil},
		{"fail/lifetime-trigger", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x"},"lifetime_actions":[{"trigger":{"lifetime_percentage":100},"action":{"action_type":"AutoRenew"}}]}}`, 400, "BadParameter", "between 1 and 99", nil},
		{"fail/too-many-tags", "c-x", `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=x"}},"tags":{` + manyTags(16) + `}}`, 400, "BadParameter", "tags", nil},
		{"fail/not-json", "c-x", `{`, 400, "BadParameter", "JSON", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.serve(call{method: "POST", target: "/certificates/" + c.cert + "/create", body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.code != "" {
				code, _, msg := errCode(t, w)
				if code != c.code || !strings.Contains(msg, c.msg) {
					t.Fatalf("error %s %q, want %s ~%q", code, msg, c.code, c.msg)
				}
				return
			}
			op := decodeMap(t, w)
			if op["status"] != "completed" || op["target"] != "https://v1.vault.localhost:8443/certificates/"+c.cert || op["csr"] == "" {
				t.Fatalf("operation %v", op)
			}
			code, b := e.do("GET", "/certificates/"+c.cert+"/", "")
			if code != 200 {
				t.Fatalf("get %d %v", code, b)
			}
			cert := cerOf(t, b)
			if c.check != nil {
				c.check(t, cert)
			}
			if b["kid"] != "https://v1.vault.localhost:8443/keys/"+c.cert+"/"+versionOf(t, b) || b["sid"] != "https://v1.vault.localhost:8443/secrets/"+c.cert+"/"+versionOf(t, b) {
				t.Fatalf("kid/sid %v %v", b["kid"], b["sid"])
			}
			if attr(b, "exp").(float64) != float64(cert.NotAfter.Unix()) {
				t.Fatalf("exp %v", attr(b, "exp"))
			}
			if p, _ := b["policy"].(map[string]any); p == nil || p["id"] != "https://v1.vault.localhost:8443/certificates/"+c.cert+"/policy" {
				t.Fatalf("policy %v", b["policy"])
			}
			checkBackingSecret(t, e, c.cert, cert)
		})
	}
}

// checkBackingSecret reads the managed secret and checks that it holds the
// certificate and its private key.
func checkBackingSecret(t *testing.T, e *env, name string, cert *x509.Certificate) {
	t.Helper()
	code, s := e.do("GET", "/secrets/"+name+"/", "")
	if code != 200 || s["managed"] != true || !strings.HasSuffix(s["kid"].(string), "/keys/"+name+"/"+versionOf(t, s)) {
		t.Fatalf("secret %d %v", code, s)
	}
	value := s["value"].(string)
	var key any
	var got *x509.Certificate
	switch s["contentType"] {
	case ctPEM:
		rest := []byte(value)
		for {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type == "PRIVATE KEY" {
				key, _ = x509.ParsePKCS8PrivateKey(b.Bytes)
			} else if got == nil {
				got, _ = x509.ParseCertificate(b.Bytes) // the leaf comes first
			}
		}
	case ctPKCS12:
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			t.Fatal(err)
		}
		if key, got, err = pkcs12.Decode(raw, ""); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("content type %v", s["contentType"])
	}
	if got == nil || !got.Equal(cert) {
		t.Fatalf("secret holds another certificate")
	}
	signer, ok := key.(interface{ Public() crypto.PublicKey })
	if !ok || !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		t.Fatalf("secret has no private key of the certificate")
	}
	code, k := e.do("GET", "/keys/"+name+"/", "")
	if code != 200 || k["managed"] != true {
		t.Fatalf("key %d %v", code, k)
	}
}

func TestCertManagedRefusals(t *testing.T) {
	e := newEnv(t)
	e.mustCert("web", selfPolicy(""))
	cases := []struct {
		name, method, target, body string
		status                     int
		code, inner                string
	}{
		{"fail/secret-set", "PUT", "/secrets/web", `{"value":"x"}`, 403, "Forbidden", innerSecretManaged},
		{"fail/secret-update", "PATCH", "/secrets/web/", `{"contentType":"x"}`, 403, "Forbidden", innerSecretManaged},
		{"fail/secret-delete", "DELETE", "/secrets/web", ``, 403, "Forbidden", innerSecretManaged},
		{"fail/secret-backup", "POST", "/secrets/web/backup", ``, 403, "Forbidden", innerSecretManaged},
		{"fail/key-delete", "DELETE", "/keys/web", ``, 403, "Forbidden", innerKeyManaged},
		{"fail/key-create", "POST", "/keys/web/create", `{"kty":"EC"}`, 403, "Forbidden", innerKeyManaged},
		{"fail/key-rotate", "POST", "/keys/web/rotate", ``, 403, "Forbidden", innerKeyManaged},
		{"fail/key-update", "PATCH", "/keys/web/", `{"tags":{"a":"b"}}`, 403, "Forbidden", innerKeyManaged},
		{"fail/key-backup", "POST", "/keys/web/backup", ``, 403, "Forbidden", innerKeyManaged},
		{"ok/key-get", "GET", "/keys/web", ``, 200, "", ""},
		{"ok/secret-list-marks-managed", "GET", "/secrets", ``, 200, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.serve(call{method: c.method, target: c.target, body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.code != "" {
				code, inner, msg := errCode(t, w)
				if code != c.code || inner != c.inner || !strings.Contains(msg, "managed by Key Vault") {
					t.Fatalf("error %s/%s %q", code, inner, msg)
				}
			}
		})
	}
	_, list := e.do("GET", "/secrets", "")
	items := list["value"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["managed"] != true {
		t.Fatalf("secret list %v", items)
	}
	// A certificate cannot take the name of a secret or key of its own.
	e.mustSet("plain", `{"value":"v"}`)
	e.mustKey("plainkey", `{"kty":"EC"}`)
	for _, n := range []string{"plain", "plainkey"} {
		w := e.serve(call{method: "POST", target: "/certificates/" + n + "/create", body: selfPolicy("")})
		if code, _, _ := errCode(t, w); w.Code != 409 || code != "Conflict" {
			t.Fatalf("%s: %d %s", n, w.Code, w.Body)
		}
	}
	// And those secrets and keys are not touched by a refusal.
	if code, _ := e.do("GET", "/secrets/plain", ""); code != 200 {
		t.Fatalf("plain secret %d", code)
	}
}

func TestCertImport(t *testing.T) {
	e := newEnv(t)
	leaf := testCert(t, testRSAKey, "imp.example", nil, nil)
	ecLeaf := testCert(t, testECKey, "ec.example", nil, nil)
	caKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ca := testCert(t, caKey, "ca", nil, nil)
	chained := testCert(t, testECKey, "chained.example", ca, caKey)
	pfx, err := pkcs12.Modern.Encode(testRSAKey, leaf, nil, "pw")
	if err != nil {
		t.Fatal(err)
	}
	pfxB64 := base64.StdEncoding.EncodeToString(pfx)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallLeaf := testCert(t, small, "small", nil, nil)
	pkcs1 := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(testRSAKey)})) + pemOf(t, nil, leaf)
	cases := []struct {
		name   string
		fields map[string]any
		status int
		msg    string
		ct     string
	}{
		{"ok/pem-rsa", map[string]any{"value": pemOf(t, testRSAKey, leaf), "policy": map[string]any{"secret_props": map[string]any{"contentType": ctPEM}}}, 200, "", ctPEM},
		{"ok/pem-pkcs1-key-after", map[string]any{"value": pemOf(t, nil, leaf) + pkcs1}, 200, "", ctPEM},
		{"ok/pem-ec-chain-leaf-second", map[string]any{"value": pemOf(t, testECKey, ca, chained)}, 200, "", ctPEM},
		{"ok/pem-openssl-bag-attributes", map[string]any{"value": "Bag Attributes\n    localKeyID: 01\n" + pemOf(t, testRSAKey) + "Bag Attributes: <No Attributes>\nsubject=CN=imp.example\n" + pemOf(t, nil, leaf)}, 200, "", ctPEM},
		{"ok/pem-ec", map[string]any{"value": pemOf(t, testECKey, ecLeaf), "tags": map[string]any{"a": "b"}}, 200, "", ctPEM},
		{"ok/pfx-password", map[string]any{"value": pfxB64, "pwd": "pw"}, 200, "", ctPKCS12},
		{"fail/pfx-wrong-password", map[string]any{"value": pfxB64, "pwd": "nope"}, 400, "password", ""},
		{"fail/pfx-garbage", map[string]any{"value": base64.StdEncoding.EncodeToString([]byte("not a pfx"))}, 400, "PKCS #12", ""},
		{"fail/not-base64", map[string]any{"value": "%%%"}, 400, "neither PEM nor base64", ""},
		{"fail/empty", map[string]any{"value": "  "}, 400, "required", ""},
		{"fail/missing", map[string]any{}, 400, "required", ""},
		{"fail/no-key", map[string]any{"value": pemOf(t, nil, leaf)}, 400, "no private key", ""},
		{"fail/no-cert", map[string]any{"value": pemOf(t, testRSAKey)}, 400, "no certificate", ""},
		{"fail/key-mismatch", map[string]any{"value": pemOf(t, testECKey, leaf)}, 400, "does not match", ""},
		{"fail/rsa-1024", map[string]any{"value": pemOf(t, small, smallLeaf)}, 400, "2048, 3072 or 4096", ""},
		{"fail/encrypted-pem", map[string]any{"value": "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"}, 400, "Encrypted PEM", ""},
		{"fail/other-pem", map[string]any{"value": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}, 400, "not expected", ""},
		{"fail/bad-cert-pem", map[string]any{"value": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, 400, "cannot be parsed", ""},
		{"fail/trailing-junk", map[string]any{"value": pemOf(t, testRSAKey, leaf) + "junk"}, 400, "to its end", ""},
		{"fail/too-big", map[string]any{"value": strings.Repeat("A", maxCertImportBytes+1)}, 400, "maximum size", ""},
		{"fail/content-type-mismatch", map[string]any{"value": pfxB64, "pwd": "pw", "policy": map[string]any{"secret_props": map[string]any{"contentType": ctPEM}}}, 400, "does not match", ""},
		{"fail/issuer-ca", map[string]any{"value": pfxB64, "pwd": "pw", "policy": map[string]any{"issuer": map[string]any{"name": "DigiCert"}}}, 400, "certificate authority", ""},
		{"fail/password-long", map[string]any{"value": pfxB64, "pwd": strings.Repeat("p", 1025)}, 400, "'pwd'", ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			name := "imp" + string(rune('a'+i))
			w := e.serve(call{method: "POST", target: "/certificates/" + name + "/import", body: importJSON(t, c.fields)})
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.status != 200 {
				_, _, msg := errCode(t, w)
				if !strings.Contains(msg, c.msg) || strings.Contains(msg, "PRIVATE KEY") {
					t.Fatalf("message %q, want ~%q", msg, c.msg)
				}
				return
			}
			b := decodeMap(t, w)
			cert := cerOf(t, b)
			if b["contentType"] != c.ct || b["policy"].(map[string]any)["issuer"].(map[string]any)["name"] != "Unknown" {
				t.Fatalf("bundle %v", b)
			}
			checkBackingSecret(t, e, name, cert)
		})
	}
}

func TestCertLifecycle(t *testing.T) {
	e := newEnv(t)
	v1 := e.mustCert("life", selfPolicy(`"secret_props":{"contentType":"application/x-pem-file"}`))
	// A second create without a policy reuses the stored one.
	code, op := e.do("POST", "/certificates/life/create", `{"tags":{"env":"prod"}}`)
	if code != 202 || op["status"] != "completed" {
		t.Fatalf("second create %d %v", code, op)
	}
	_, v2 := e.do("GET", "/certificates/life", "")
	if versionOf(t, v2) == versionOf(t, v1) || v2["tags"].(map[string]any)["env"] != "prod" || v2["contentType"] != ctPEM {
		t.Fatalf("v2 %v", v2)
	}
	code, vs := e.do("GET", "/certificates/life/versions?maxresults=1", "")
	if code != 200 || len(vs["value"].([]any)) != 1 || vs["nextLink"] == nil {
		t.Fatalf("versions %d %v", code, vs)
	}
	code, got := e.do("GET", "/certificates/life/"+versionOf(t, v1), "")
	if code != 200 || got["cer"] != v1["cer"] {
		t.Fatalf("get version %d", code)
	}
	if code, _ := e.do("GET", "/certificates/life/0123456789abcdef0123456789abcdef", ""); code != 404 {
		t.Fatalf("unknown version %d", code)
	}
	code, list := e.do("GET", "/certificates", "")
	if code != 200 || len(list["value"].([]any)) != 1 || list["value"].([]any)[0].(map[string]any)["id"] != "https://v1.vault.localhost:8443/certificates/life" {
		t.Fatalf("list %v", list)
	}
	// Update: disabling the certificate disables its secret too.
	code, up := e.do("PATCH", "/certificates/life/", `{"attributes":{"enabled":false},"tags":{"t":"1"}}`)
	if code != 200 || attr(up, "enabled") != false || up["tags"].(map[string]any)["t"] != "1" {
		t.Fatalf("update %d %v", code, up)
	}
	if w := e.serve(call{method: "GET", target: "/secrets/life"}); w.Code != 403 {
		t.Fatalf("disabled secret %d", w.Code)
	}
	e.do("PATCH", "/certificates/life/"+versionOf(t, v2), `{"attributes":{"enabled":true}}`)
	// Policy get and update.
	code, pol := e.do("GET", "/certificates/life/policy", "")
	if code != 200 || pol["issuer"].(map[string]any)["name"] != "Self" || pol["x509_props"].(map[string]any)["validity_months"].(float64) != 12 {
		t.Fatalf("policy %d %v", code, pol)
	}
	code, pol = e.do("PATCH", "/certificates/life/policy", `{"x509_props":{"validity_months":6,"subject":"CN=new"}}`)
	if code != 200 || pol["x509_props"].(map[string]any)["validity_months"].(float64) != 6 || pol["x509_props"].(map[string]any)["subject"] != "CN=new" {
		t.Fatalf("policy update %d %v", code, pol)
	}
	for _, bad := range []string{`{"issuer":{"name":"GlobalSign"}}`, `{"x509_props":{"validity_months":5000}}`, `{"key_props":{"kty":"RSA","key_size":1}}`} {
		if code, m := e.do("PATCH", "/certificates/life/policy", bad); code != 400 {
			t.Fatalf("bad policy %s: %d %v", bad, code, m)
		}
	}
	e.do("POST", "/certificates/life/create", `{}`)
	_, v3 := e.do("GET", "/certificates/life", "")
	if c := cerOf(t, v3); c.Subject.CommonName != "new" {
		t.Fatalf("new policy not used: %v", c.Subject)
	}
	// Delete takes the key and secret along.
	code, del := e.do("DELETE", "/certificates/life", "")
	if code != 200 || del["recoveryId"] != "https://v1.vault.localhost:8443/deletedcertificates/life" || del["scheduledPurgeDate"] == nil {
		t.Fatalf("delete %d %v", code, del)
	}
	for _, p := range []string{"/certificates/life", "/secrets/life", "/keys/life", "/certificates/life/policy"} {
		if code, _ := e.do("GET", p, ""); code != 404 {
			t.Fatalf("%s after delete: %d", p, code)
		}
	}
	if code, m := e.do("GET", "/deletedcertificates/life", ""); code != 200 || m["cer"] == nil {
		t.Fatalf("get deleted %d %v", code, m)
	}
	if code, m := e.do("GET", "/deletedcertificates", ""); code != 200 || len(m["value"].([]any)) != 1 {
		t.Fatalf("list deleted %d %v", code, m)
	}
	if w := e.serve(call{method: "POST", target: "/certificates/life/create", body: selfPolicy("")}); w.Code != 409 {
		t.Fatalf("create over deleted: %d", w.Code)
	}
	if w := e.serve(call{method: "DELETE", target: "/deletedsecrets/life"}); w.Code != 403 {
		t.Fatalf("purge managed secret: %d %s", w.Code, w.Body)
	}
	if w := e.serve(call{method: "POST", target: "/deletedkeys/life/recover"}); w.Code != 403 {
		t.Fatalf("recover managed key: %d %s", w.Code, w.Body)
	}
	code, rec := e.do("POST", "/deletedcertificates/life/recover", "")
	if code != 200 || versionOf(t, rec) != versionOf(t, v3) {
		t.Fatalf("recover %d %v", code, rec)
	}
	for _, p := range []string{"/certificates/life", "/secrets/life", "/keys/life", "/certificates/life/policy"} {
		if code, _ := e.do("GET", p, ""); code != 200 {
			t.Fatalf("%s after recover: %d", p, code)
		}
	}
	// Purge removes everything of the certificate.
	e.do("DELETE", "/certificates/life", "")
	if code, _ := e.do("DELETE", "/deletedcertificates/life", ""); code != 204 {
		t.Fatalf("purge %d", code)
	}
	for k := range e.snapshot() {
		if strings.Contains(k, "/life") {
			t.Fatalf("left after purge: %s", k)
		}
	}
	for _, p := range []string{"/deletedcertificates/life", "/deletedsecrets/life", "/deletedkeys/life"} {
		if code, _ := e.do("GET", p, ""); code != 404 {
			t.Fatalf("%s after purge: %d", p, code)
		}
	}
	// The name is free again, for a plain secret too.
	e.mustSet("life", `{"value":"x"}`)
}

func TestCertPurgeProtectionAndExpiry(t *testing.T) {
	e := newEnv(t)
	v := newVault("pp", tenant1)
	v.EnablePurgeProtection = true
	v.SoftDeleteRetentionInDays = 7
	e.dir.put(v)
	if w := e.serve(call{vault: "pp", method: "POST", target: "/certificates/c/create", body: selfPolicy("")}); w.Code != 202 {
		t.Fatal(w.Body)
	}
	e.serve(call{vault: "pp", method: "DELETE", target: "/certificates/c"})
	if w := e.serve(call{vault: "pp", method: "DELETE", target: "/deletedcertificates/c"}); w.Code != 403 {
		t.Fatalf("purge protected: %d", w.Code)
	}
	e.clk.Advance(8 * 24 * 3600 * 1e9)
	n, err := e.svc.PurgeExpired(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("PurgeExpired %d %v", n, err)
	}
	for k := range e.snapshot() {
		if strings.Contains(k, "iid-pp/") {
			t.Fatalf("left after expiry: %s", k)
		}
	}
}

func TestCertOperation(t *testing.T) {
	e := newEnv(t)
	// Unknown issuer: the operation waits with a CSR until a merge.
	code, op := e.do("POST", "/certificates/ext/create", `{"policy":{"issuer":{"name":"Unknown"},"key_props":{"kty":"EC"},"x509_props":{"subject":"CN=ext.example"}}}`)
	if code != 202 || op["status"] != "inProgress" || op["csr"] == "" || op["target"] != nil {
		t.Fatalf("unknown create %d %v", code, op)
	}
	der, _ := base64.StdEncoding.DecodeString(op["csr"].(string))
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil || csr.CheckSignature() != nil || csr.Subject.CommonName != "ext.example" {
		t.Fatalf("csr %v %v", err, csr)
	}
	if code, _ := e.do("GET", "/certificates/ext/pending", ""); code != 200 {
		t.Fatalf("pending %d", code)
	}
	// Until the merge the certificate shows as pending: disabled, no cer.
	code, pend := e.do("GET", "/certificates/ext/", "")
	if code != 200 || pend["cer"] != nil || attr(pend, "enabled") != false || pend["pending"].(map[string]any)["id"] != "https://v1.vault.localhost:8443/certificates/ext/pending" {
		t.Fatalf("pending certificate %d %v", code, pend)
	}
	if code, pol := e.do("GET", "/certificates/ext/policy", ""); code != 200 || pol["issuer"].(map[string]any)["name"] != "Unknown" {
		t.Fatalf("pending policy %d %v", code, pol)
	}
	if code, _ := e.do("GET", "/certificates/nothing/", ""); code != 404 {
		t.Fatalf("unknown certificate %d", code)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := testCert(t, caKey, "ca", nil, nil)
	other := testCert(t, testECKey, "ext.example", ca, caKey)
	if code, m := e.do("POST", "/certificates/ext/pending/merge", importJSON(t, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(other.Raw)}})); code != 400 {
		t.Fatalf("merge mismatched key %d %v", code, m)
	}
	if code, _ := e.do("POST", "/certificates/ext/pending/merge", `{"x5c":[]}`); code != 400 {
		t.Fatalf("merge empty %d", code)
	}
	// Sign the CSR's key with the CA.
	tmpl := testCert(t, testECKey, "x", nil, nil)
	tmpl.Subject = csr.Subject
	signed, err := x509.CreateCertificate(rand.Reader, tmpl, ca, csr.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	code, b := e.do("POST", "/certificates/ext/pending/merge", importJSON(t, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(signed), base64.StdEncoding.EncodeToString(ca.Raw)}}))
	if code != 201 || b["cer"] != base64.StdEncoding.EncodeToString(signed) {
		t.Fatalf("merge %d %v", code, b)
	}
	_, op = e.do("GET", "/certificates/ext/pending", "")
	if op["status"] != "completed" || op["target"] == nil {
		t.Fatalf("after merge %v", op)
	}
	if code, _ := e.do("POST", "/certificates/ext/pending/merge", importJSON(t, map[string]any{"x5c": []string{base64.StdEncoding.EncodeToString(signed)}})); code != 403 {
		t.Fatalf("second merge %d", code)
	}
	// Cancel and delete.
	e.do("POST", "/certificates/ext2/create", `{"policy":{"issuer":{"name":"Unknown"},"x509_props":{"subject":"CN=e2"}}}`)
	code, op = e.do("PATCH", "/certificates/ext2/pending", `{"cancellation_requested":true}`)
	if code != 200 || op["status"] != "cancelled" || op["cancellation_requested"] != true {
		t.Fatalf("cancel %d %v", code, op)
	}
	if code, _ := e.do("PATCH", "/certificates/ext2/pending", `{}`); code != 400 {
		t.Fatalf("cancel without field %d", code)
	}
	if code, _ := e.do("DELETE", "/certificates/ext2/pending", ""); code != 200 {
		t.Fatalf("delete op %d", code)
	}
	if code, _ := e.do("GET", "/certificates/ext2/pending", ""); code != 404 {
		t.Fatalf("op after delete %d", code)
	}
}

func TestCertRoutes(t *testing.T) {
	cases := []struct {
		name, method, path string
		op                 opKind
		version            string
		status             int
	}{
		{"ok/list", "GET", "/certificates", opCertList, "", 0},
		{"ok/get-latest-slash", "GET", "/certificates/a/", opCertGet, "", 0},
		{"ok/get-version", "GET", "/certificates/a/0123456789ABCDEF0123456789abcdef", opCertGet, "0123456789abcdef0123456789abcdef", 0},
		{"ok/update", "PATCH", "/certificates/a", opCertUpdate, "", 0},
		{"ok/delete", "DELETE", "/certificates/a", opCertDelete, "", 0},
		{"ok/create", "POST", "/certificates/a/create", opCertCreate, "", 0},
		{"ok/import", "POST", "/certificates/a/import", opCertImport, "", 0},
		{"ok/versions", "GET", "/certificates/a/versions", opCertListVersions, "", 0},
		{"ok/policy", "GET", "/certificates/a/policy", opCertPolicyGet, "", 0},
		{"ok/policy-update", "PATCH", "/certificates/a/policy", opCertPolicyUpdate, "", 0},
		{"ok/pending", "GET", "/certificates/a/pending", opCertOpGet, "", 0},
		{"ok/pending-cancel", "PATCH", "/certificates/a/pending", opCertOpUpdate, "", 0},
		{"ok/pending-delete", "DELETE", "/certificates/a/pending", opCertOpDelete, "", 0},
		{"ok/merge", "POST", "/certificates/a/pending/merge", opCertMerge, "", 0},
		{"ok/backup", "POST", "/certificates/a/backup", opCertBackup, "", 0},
		{"ok/restore", "POST", "/certificates/restore", opCertRestore, "", 0},
		{"ok/deleted-list", "GET", "/deletedcertificates", opCertListDeleted, "", 0},
		{"ok/deleted-get", "GET", "/deletedcertificates/a", opCertGetDeleted, "", 0},
		{"ok/purge", "DELETE", "/deletedcertificates/a", opCertPurge, "", 0},
		{"ok/recover", "POST", "/deletedcertificates/a/recover", opCertRecover, "", 0},
		{"fail/issuers", "GET", "/certificates/issuers", 0, "", 400},
		{"fail/issuer", "PUT", "/certificates/issuers/x", 0, "", 400},
		{"fail/contacts", "GET", "/certificates/contacts", 0, "", 400},
		{"fail/put-cert", "PUT", "/certificates/a", 0, "", 405},
		{"fail/create-get", "GET", "/certificates/a/create", 0, "", 405},
		{"fail/bad-name", "GET", "/certificates/a_b", 0, "", 400},
		{"fail/bad-version", "GET", "/certificates/a/xyz", 0, "", 404},
		{"fail/deep", "GET", "/certificates/a/b/c/d", 0, "", 404},
		{"fail/empty-seg", "GET", "/certificates//a", 0, "", 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt, err := parsePath(c.method, c.path)
			if c.status != 0 {
				if err == nil || err.Status != c.status {
					t.Fatalf("want %d, got %v %v", c.status, rt, err)
				}
				return
			}
			if err != nil || rt.Op != c.op || rt.Version != c.version {
				t.Fatalf("got %v %v", rt, err)
			}
			if specOf(rt.Op).Kind != authz.KindCertificates {
				t.Fatalf("spec %v", specOf(rt.Op))
			}
		})
	}
}

func TestCertAuthorization(t *testing.T) {
	cases := []struct {
		name, method, path  string
		action, perm, audit string
	}{
		{"ok/create", "POST", "/certificates/c/create", "create/action", "create", "CertificateCreate"},
		{"ok/import", "POST", "/certificates/c/import", "import/action", "import", "CertificateImport"},
		{"ok/get", "GET", "/certificates/c", "read", "get", "CertificateGet"},
		{"ok/list", "GET", "/certificates", "read", "list", "CertificateList"},
		{"ok/versions", "GET", "/certificates/c/versions", "read", "list", "CertificateListVersions"},
		{"ok/update", "PATCH", "/certificates/c", "update/action", "update", "CertificateUpdate"},
		{"ok/policy-get", "GET", "/certificates/c/policy", "read", "get", "CertificatePolicyGet"},
		{"ok/policy-update", "PATCH", "/certificates/c/policy", "update/action", "update", "CertificatePolicyUpdate"},
		{"ok/delete", "DELETE", "/certificates/c", "delete", "delete", "CertificateDelete"},
		{"ok/get-deleted", "GET", "/deletedcertificates/c", "read", "get", "CertificateGetDeleted"},
		{"ok/list-deleted", "GET", "/deletedcertificates", "read", "list", "CertificateListDeleted"},
		{"ok/recover", "POST", "/deletedcertificates/c/recover", "recover/action", "recover", "CertificateRecover"},
		{"ok/purge", "DELETE", "/deletedcertificates/c", "purge/action", "purge", "CertificatePurge"},
		{"ok/backup", "POST", "/certificates/c/backup", "backup/action", "backup", "CertificateBackup"},
		{"ok/restore", "POST", "/certificates/restore", "restore/action", "restore", "CertificateRestore"},
		{"ok/pending", "GET", "/certificates/c/pending", "read", "get", "CertificatePendingGet"},
		{"ok/pending-delete", "DELETE", "/certificates/c/pending", "update/action", "update", "CertificatePendingDelete"},
	}
	e := newEnv(t)
	pv := newVault("ap", tenant1)
	pv.EnableRBACAuthorization = false
	e.dir.put(pv)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info := &principal.Info{}
			e.serve(call{method: c.method, target: c.path, info: info})
			if got := e.dec.last(); got.Action != certActionPrefix+c.action || !got.DataAction {
				t.Fatalf("action %q", got.Action)
			}
			if info.OperationName != c.audit {
				t.Fatalf("audit %q", info.OperationName)
			}
			// Access policies: the permission alone grants, its absence refuses.
			others := []string{"get", "list", "create", "import", "update", "delete", "recover", "purge", "backup", "restore"}
			var without []string
			for _, p := range others {
				if p != c.perm {
					without = append(without, p)
				}
			}
			pv.AccessPolicies = []authz.AccessPolicy{{TenantID: tenant1, ObjectID: e.alice.ObjectID, Permissions: authz.Permissions{Certificates: without}}}
			e.dir.put(pv)
			w := e.serve(call{vault: "ap", method: c.method, target: c.path})
			if code, inner, msg := errCode(t, w); w.Code != 403 || inner != innerAccessPolicy || !strings.Contains(msg, "certificates "+c.perm+" permission") {
				t.Fatalf("without %s: %d %s %s", c.perm, w.Code, code, msg)
			}
			pv.AccessPolicies = []authz.AccessPolicy{{TenantID: tenant1, ObjectID: e.alice.ObjectID, Permissions: authz.Permissions{Certificates: []string{c.perm}}}}
			e.dir.put(pv)
			if w := e.serve(call{vault: "ap", method: c.method, target: c.path}); w.Code == 403 {
				t.Fatalf("with %s: %s", c.perm, w.Body)
			}
		})
	}
}

func TestCertBackupRestore(t *testing.T) {
	e := newEnv(t)
	e.dir.put(newVault("v2", tenant1))
	other := newVault("vt2", tenant2)
	e.dir.put(other)
	v1 := e.mustCert("bk", selfPolicy(`"secret_props":{"contentType":"application/x-pem-file"}`))
	e.do("POST", "/certificates/bk/create", `{"tags":{"n":"2"}}`)
	_, latest := e.do("GET", "/certificates/bk", "")
	code, b := e.do("POST", "/certificates/bk/backup", "")
	if code != 200 || b["value"] == "" {
		t.Fatalf("backup %d %v", code, b)
	}
	blob := `{"value":"` + b["value"].(string) + `"}`
	if code, _ := e.do("POST", "/certificates/missing/backup", ""); code != 404 {
		t.Fatalf("backup missing %d", code)
	}
	secretBlob := func() string {
		e.mustSet("plain", `{"value":"v"}`)
		_, sb := e.do("POST", "/secrets/plain/backup", "")
		return `{"value":"` + sb["value"].(string) + `"}`
	}()
	cases := []struct {
		name, vault, target, body string
		status                    int
		msg                       string
	}{
		{"fail/over-existing", "v1", "/certificates/restore", blob, 409, "already exists"},
		{"fail/other-tenant", "vt2", "/certificates/restore", blob, 400, "another tenant"},
		{"fail/garbage", "v1", "/certificates/restore", `{"value":"AAAA"}`, 400, "backup blob"},
		{"fail/empty", "v1", "/certificates/restore", `{}`, 400, "required"},
		{"fail/secret-blob-as-certificate", "v2", "/certificates/restore", secretBlob, 400, "backup blob"},
		{"fail/certificate-blob-as-secret", "v2", "/secrets/restore", blob, 400, "backup blob"},
		{"fail/certificate-blob-as-key", "v2", "/keys/restore", blob, 400, "backup blob"},
		{"ok/other-vault-same-tenant", "v2", "/certificates/restore", blob, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.vault == "vt2" {
				defer func(p *principal.Principal) { e.alice = p }(e.alice)
				e.alice = newPrincipal(tenant2, "oid-alice")
			}
			w := e.serve(call{vault: c.vault, method: "POST", target: c.target, body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d want %d: %s", w.Code, c.status, w.Body)
			}
			if c.msg != "" {
				if _, _, msg := errCode(t, w); !strings.Contains(msg, c.msg) {
					t.Fatalf("message %q", msg)
				}
			}
		})
	}
	// Restored in v2: the certificate, its versions, policy, managed key and secret.
	w := e.serve(call{vault: "v2", method: "GET", target: "/certificates/bk/"})
	got := decodeMap(t, w)
	if w.Code != 200 || got["cer"] != latest["cer"] || versionOf(t, got) != versionOf(t, latest) || got["policy"] == nil {
		t.Fatalf("restored %d %v", w.Code, got)
	}
	w = e.serve(call{vault: "v2", method: "GET", target: "/certificates/bk/versions"})
	if m := decodeMap(t, w); len(m["value"].([]any)) != 2 {
		t.Fatalf("versions %v", m)
	}
	w = e.serve(call{vault: "v2", method: "GET", target: "/secrets/bk/" + versionOf(t, v1)})
	s := decodeMap(t, w)
	if w.Code != 200 || s["managed"] != true || !strings.Contains(s["value"].(string), "PRIVATE KEY") ||
		s["kid"] != "https://v2.vault.localhost:8443/keys/bk/"+versionOf(t, v1) {
		t.Fatalf("restored secret %d %v", w.Code, s)
	}
	if w := e.serve(call{vault: "v2", method: "DELETE", target: "/secrets/bk"}); w.Code != 403 {
		t.Fatalf("restored secret is not managed: %d", w.Code)
	}
	// Purged in v1, then restored there again.
	e.do("DELETE", "/certificates/bk", "")
	e.do("DELETE", "/deletedcertificates/bk", "")
	if code, m := e.do("POST", "/certificates/restore", blob); code != 200 || versionOf(t, m) != versionOf(t, latest) {
		t.Fatalf("restore after purge %d %v", code, m)
	}
	if code, _ := e.do("POST", "/keys/bk/sign", `{"alg":"RS256","value":"`+b64(make([]byte, 32))+`"}`); code != 200 {
		t.Fatalf("restored key cannot sign: %d", code)
	}
}

// TestCertNoPlaintextAtRest: the private key of a certificate is stored
// only sealed: neither its PEM, its PKCS #8 bytes nor the secret's PFX
// appear in any record.
func TestCertNoPlaintextAtRest(t *testing.T) {
	e := newEnv(t)
	e.mustCert("pem", selfPolicy(`"secret_props":{"contentType":"application/x-pem-file"}`))
	e.mustCert("pfx", selfPolicy(""))
	_, ps := e.do("GET", "/secrets/pem", "")
	_, xs := e.do("GET", "/secrets/pfx", "")
	block, _ := pem.Decode([]byte(ps["value"].(string)))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("pem secret %v", ps)
	}
	pfx, _ := base64.StdEncoding.DecodeString(xs["value"].(string))
	needles := map[string][]byte{"PEM header": []byte("PRIVATE KEY"), "PKCS #8": block.Bytes[:64], "PFX": pfx[:64],
		"PKCS #8 base64": []byte(base64.StdEncoding.EncodeToString(block.Bytes)[:64]), "PFX base64": []byte(xs["value"].(string)[:64])}
	for k, v := range e.snapshot() {
		for what, n := range needles {
			if strings.Contains(v, string(n)) {
				t.Fatalf("%s found in %s", what, k)
			}
		}
	}
	// The kid names the backing key on the vault as addressed.
	r := e.serve(call{method: "GET", target: "/secrets/pem/"})
	if s := decodeMap(t, r); !strings.HasPrefix(s["kid"].(string), "https://v1.vault.localhost:8443/keys/pem/") {
		t.Fatalf("kid %v", s["kid"])
	}
}

// TestCertBuiltinRoles runs certificate operations through the real
// authorization engine with Azure's built-in roles.
func TestCertBuiltinRoles(t *testing.T) {
	m := newMatrixEnv(t)
	scope := vaultRG + "v1"
	callers := map[string]*principal.Principal{}
	for name, role := range map[string]string{
		"officer": authz.RoleKeyVaultCertificatesOfficer, "user": authz.RoleKeyVaultCertificateUser,
		"secrets-user": authz.RoleKeyVaultSecretsUser, "reader": authz.RoleKeyVaultReader, "crypto-officer": authz.RoleKeyVaultCryptoOfficer,
	} {
		callers[name] = matrixPrincipal()
		m.assign(t, callers[name], role, scope)
	}
	if w := m.serve(call{p: m.admin, method: "POST", target: "/certificates/rc/create", body: selfPolicy("")}); w.Code != 202 {
		t.Fatalf("admin create %d %s", w.Code, w.Body)
	}
	cases := []struct {
		name, caller, method, target, body string
		status                             int
	}{
		{"ok/officer-create", "officer", "POST", "/certificates/oc/create", selfPolicy(""), 202},
		{"ok/officer-policy-update", "officer", "PATCH", "/certificates/rc/policy", `{"x509_props":{"validity_months":3}}`, 200},
		{"ok/officer-backup", "officer", "POST", "/certificates/rc/backup", ``, 200},
		{"fail/officer-reads-no-secret", "officer", "GET", "/secrets/rc", ``, 403},
		{"ok/user-get", "user", "GET", "/certificates/rc", ``, 200},
		{"ok/user-list", "user", "GET", "/certificates", ``, 200},
		{"ok/user-policy", "user", "GET", "/certificates/rc/policy", ``, 200},
		{"ok/user-reads-private-key", "user", "GET", "/secrets/rc", ``, 200},
		{"ok/user-reads-key", "user", "GET", "/keys/rc", ``, 200},
		{"fail/user-create", "user", "POST", "/certificates/uc/create", selfPolicy(""), 403},
		{"fail/user-update", "user", "PATCH", "/certificates/rc", `{"tags":{"a":"b"}}`, 403},
		{"fail/user-delete", "user", "DELETE", "/certificates/rc", ``, 403},
		{"fail/user-import", "user", "POST", "/certificates/ui/import", `{"value":"x"}`, 403},
		{"fail/secrets-user-get-certificate", "secrets-user", "GET", "/certificates/rc", ``, 403},
		{"ok/secrets-user-get-secret", "secrets-user", "GET", "/secrets/rc", ``, 200},
		{"ok/reader-get-certificate", "reader", "GET", "/certificates/rc", ``, 200},
		{"fail/reader-get-secret", "reader", "GET", "/secrets/rc", ``, 403},
		{"fail/crypto-officer-create", "crypto-officer", "POST", "/certificates/co/create", selfPolicy(""), 403},
		{"fail/crypto-officer-delete-key", "crypto-officer", "DELETE", "/keys/rc", ``, 403},
		{"ok/officer-delete", "officer", "DELETE", "/certificates/rc", ``, 200},
		{"ok/officer-purge", "officer", "DELETE", "/deletedcertificates/rc", ``, 204},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := m.serve(call{p: callers[c.caller], method: c.method, target: c.target, body: c.body})
			if w.Code != c.status {
				t.Fatalf("status %d want %d: %s", w.Code, c.status, w.Body)
			}
		})
	}
}
