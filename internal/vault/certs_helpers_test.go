package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// selfPolicy is a create body with a Self-issued policy.
func selfPolicy(extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=app.example.com"}` + extra + `}}`
}

// mustCert creates a certificate and returns its bundle.
func (e *env) mustCert(name, body string) map[string]any {
	e.t.Helper()
	code, m := e.do("POST", "/certificates/"+name+"/create", body)
	if code != 202 {
		e.t.Fatalf("create certificate %s: %d %v", name, code, m)
	}
	if m["status"] != "completed" {
		e.t.Fatalf("operation not completed: %v", m)
	}
	code, m = e.do("GET", "/certificates/"+name+"/", "")
	if code != 200 {
		e.t.Fatalf("get certificate %s: %d %v", name, code, m)
	}
	return m
}

func cerOf(t testing.TB, bundle map[string]any) *x509.Certificate {
	t.Helper()
	s, _ := bundle["cer"].(string)
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("cer: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("cer: %v", err)
	}
	return c
}

// testCert issues a certificate for k, signed by parent/parentKey (self
// when nil).
func testCert(t testing.TB, k crypto.Signer, cn string, parent *x509.Certificate, parentKey crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC),
		DNSNames: []string{cn}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: parent == nil,
	}
	if parent == nil {
		parent, parentKey = tmpl, k
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, k.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func pemOf(t testing.TB, k crypto.Signer, certs ...*x509.Certificate) string {
	t.Helper()
	var out []byte
	if k != nil {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return string(out)
}

func importJSON(t testing.TB, fields map[string]any) string {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	testRSAKey = func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}()
	testECKey = func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		return k
	}()
)
