package vault

import (
	"crypto"
	"encoding/pem"
	"strings"
	"testing"
)

// A certificate's secret read with outContentType: PKCS #12 converts to PEM
// (key, then chain; the chain only for a non-exportable key); the stored
// format is returned as is; everything else is a 400 that says why.
func TestCertificateSecretOutContentType(t *testing.T) {
	e := newEnv(t)
	certs := map[string]map[string]any{
		"pfxcert": e.mustCert("pfxcert", selfPolicy(`"secret_props":{"contentType":"application/x-pkcs12"}`)),
		"pemcert": e.mustCert("pemcert", selfPolicy(`"secret_props":{"contentType":"application/x-pem-file"}`)),
		"nokey":   e.mustCert("nokey", selfPolicy(`"key_props":{"exportable":false},"secret_props":{"contentType":"application/x-pkcs12"}`)),
	}
	e.mustSet("plain", `{"value":"not a certificate","contentType":"application/x-pkcs12"}`)
	tests := []struct {
		name, secret, out string
		code              int
		ct                string // 200: the content type answered
		key               bool   // 200 PEM: a private key comes first
		errSub            string // 400: part of the message
	}{
		{name: "pfx as pem", secret: "pfxcert", out: ctPEM, code: 200, ct: ctPEM, key: true},
		{name: "pfx as stored", secret: "pfxcert", out: ctPKCS12, code: 200, ct: ctPKCS12},
		{name: "pfx without outContentType", secret: "pfxcert", code: 200, ct: ctPKCS12},
		{name: "pem as stored", secret: "pemcert", out: ctPEM, code: 200, ct: ctPEM, key: true},
		{name: "non-exportable pfx as pem", secret: "nokey", out: ctPEM, code: 200, ct: ctPEM},
		{name: "pem to pfx is not offered", secret: "pemcert", out: ctPKCS12, code: 400, errSub: "Only a certificate stored as application/x-pkcs12"},
		{name: "not a certificate", secret: "plain", out: ctPEM, code: 400, errSub: "only to the secret of a certificate"},
		{name: "not a certificate, its own type", secret: "plain", out: ctPKCS12, code: 400, errSub: "only to the secret of a certificate"},
		{name: "unknown type", secret: "pfxcert", out: "text/plain", code: 400, errSub: "'text/plain' is not supported"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := "/secrets/" + tc.secret + "/"
			if tc.out != "" {
				target += "?outContentType=" + tc.out
			}
			code, m := e.do("GET", target, "")
			if code != tc.code {
				t.Fatalf("GET %s: %d %v, want %d", target, code, m, tc.code)
			}
			if tc.code != 200 {
				msg, _ := m["error"].(map[string]any)["message"].(string)
				if m["error"].(map[string]any)["code"] != "BadParameter" || !strings.Contains(msg, tc.errSub) {
					t.Fatalf("error %v, want BadParameter containing %q", m, tc.errSub)
				}
				return
			}
			if m["contentType"] != tc.ct {
				t.Fatalf("contentType %v, want %s", m["contentType"], tc.ct)
			}
			if tc.ct != ctPEM {
				return
			}
			leaf := cerOf(t, certs[tc.secret])
			rest := []byte(m["value"].(string))
			var blocks []*pem.Block
			for {
				var b *pem.Block
				if b, rest = pem.Decode(rest); b == nil {
					break
				}
				blocks = append(blocks, b)
			}
			if len(blocks) == 0 {
				t.Fatal("no PEM blocks in the value")
			}
			if tc.key {
				if blocks[0].Type != "PRIVATE KEY" {
					t.Fatalf("first block %s, want PRIVATE KEY", blocks[0].Type)
				}
				k, err := parsePEMKey(blocks[0])
				if err != nil {
					t.Fatal(err)
				}
				if !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.(crypto.Signer).Public()) {
					t.Fatal("the PEM key is not the certificate's")
				}
				blocks = blocks[1:]
			}
			for _, b := range blocks {
				if b.Type != "CERTIFICATE" {
					t.Fatalf("block %s, want only certificates after the key", b.Type)
				}
			}
			if string(blocks[0].Bytes) != string(leaf.Raw) {
				t.Fatal("the first certificate is not the certificate's own")
			}
		})
	}
}

// A certificate's new version names the one before it in its secret's
// previousVersion; the first version has none, nor has a plain secret.
func TestCertificateSecretPreviousVersion(t *testing.T) {
	e := newEnv(t)
	v1 := versionOf(t, e.mustCert("renewed", selfPolicy("")))
	_, s1 := e.do("GET", "/secrets/renewed/"+v1, "")
	if _, ok := s1["previousVersion"]; ok {
		t.Fatalf("first version has previousVersion %v", s1["previousVersion"])
	}
	v2 := versionOf(t, e.mustCert("renewed", selfPolicy("")))
	for _, target := range []string{"/secrets/renewed/", "/secrets/renewed/" + v2} {
		if code, s := e.do("GET", target, ""); code != 200 || s["previousVersion"] != v1 {
			t.Fatalf("GET %s: %d previousVersion %v, want %s", target, code, s["previousVersion"], v1)
		}
	}
	if _, s := e.do("GET", "/secrets/renewed/"+v1, ""); s["previousVersion"] != nil {
		t.Fatalf("the first version gained previousVersion %v", s["previousVersion"])
	}
	e.mustSet("plain", `{"value":"a"}`)
	e.mustSet("plain", `{"value":"b"}`)
	if code, p := e.do("GET", "/secrets/plain", ""); code != 200 || p["previousVersion"] != nil {
		t.Fatalf("a plain secret's second version: %d previousVersion %v", code, p["previousVersion"])
	}
	if code, d := e.do("DELETE", "/certificates/renewed", ""); code != 200 {
		t.Fatalf("delete: %d %v", code, d)
	}
	if code, ds := e.do("GET", "/deletedsecrets/renewed", ""); code != 200 || ds["previousVersion"] != v1 {
		t.Fatalf("deleted secret: %d previousVersion %v, want %s", code, ds["previousVersion"], v1)
	}
}
