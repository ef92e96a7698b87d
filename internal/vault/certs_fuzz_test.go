package vault

import (
	"encoding/base64"
	"testing"

	"software.sslmate.com/src/go-pkcs12"
)

// FuzzCertImport feeds the import parser PEM and PKCS #12 inputs: it never
// panics, refuses with a 400, and what it accepts is a supported key with
// the certificate of that key first.
func FuzzCertImport(f *testing.F) {
	leaf := testCert(f, testRSAKey, "fuzz.example", nil, nil)
	ecLeaf := testCert(f, testECKey, "ec.example", nil, nil)
	pfx, _ := pkcs12.Modern.Encode(testRSAKey, leaf, nil, "pw")
	f.Add(pemOf(f, testRSAKey, leaf), "")
	f.Add(pemOf(f, testECKey, ecLeaf), "")
	f.Add(pemOf(f, nil, leaf), "")
	f.Add(base64.StdEncoding.EncodeToString(pfx), "pw")
	f.Add(base64.StdEncoding.EncodeToString(pfx), "")
	f.Add("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n", "")
	f.Add("MIIB", "x")
	f.Fuzz(func(t *testing.T, value, pwd string) {
		k, chain, ct, e := parseCertImport(value, pwd)
		if e != nil {
			if e.Status != 400 {
				t.Fatalf("status %d", e.Status)
			}
			return
		}
		if ct != ctPEM && ct != ctPKCS12 {
			t.Fatalf("content type %q", ct)
		}
		if len(chain) == 0 || len(chain) > maxCertChain || checkCertKey(k) != nil {
			t.Fatalf("accepted %d certificates", len(chain))
		}
		if p, ok := chain[0].PublicKey.(interface{ Equal(any) bool }); ok && !p.Equal(k.Public()) {
			t.Fatalf("leaf does not match the key")
		}
	})
}
