package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/pki"
)

// TestSelfRoots: the server's own client (the rotation engine's delivery
// path) trusts a --tls-cert issued by a private CA that is not bundled,
// and still trusts a generated CA's certificates.
func TestSelfRoots(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "private CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost", "*.vault.localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	caPool := x509.NewCertPool()
	caPool.AddCert(ca)

	tests := []struct {
		name string
		m    *pki.Material
	}{
		{"ok/operator certificate without its CA", &pki.Material{Certificate: tls.Certificate{Leaf: leaf}}},
		{"ok/generated CA", &pki.Material{Certificate: tls.Certificate{Leaf: leaf}, CAPool: caPool}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, host := range []string{"localhost", "myvault.vault.localhost"} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: selfRoots(tc.m), DNSName: host}); err != nil {
					t.Fatalf("%s: %v", host, err)
				}
			}
		})
	}
	// Without the leaf pinned, the private CA's certificate is not trusted
	// (what the fix is for).
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: x509.NewCertPool(), DNSName: "localhost"}); err == nil {
		t.Fatal("an empty pool verified the leaf")
	}
	// The generated CA's pool is not modified in place.
	if _, err := (&x509.Certificate{}).Verify(x509.VerifyOptions{Roots: caPool}); err == nil {
		t.Fatal("unexpected")
	}
}
