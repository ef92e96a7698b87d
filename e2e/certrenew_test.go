package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// TestCertificateAutoRenewal runs the server's renewal pass through the real
// binary: a certificate imported with ten days left and a Self policy whose
// AutoRenew action is due 30 days before expiry is renewed at once by the
// server, as a new self-issued version valid for the policy's 12 months;
// the vault's audit log records it as the platform's CertificateCreate.
func TestCertificateAutoRenewal(t *testing.T) {
	w := newWorld(t, khtest.Options{Args: []string{"--renew-interval", "200ms"}})
	s := w.srv
	kh := cliSession(t, s)

	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, policyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "policy.json")
	pemBytes := []byte(keyAndCertPEM(t, k, selfSigned(t, k, "renewing.example.com", time.Now().Add(-80*24*time.Hour), time.Now().Add(10*24*time.Hour))))
	policy := `{"issuer":{"name":"Self"},"x509_props":{"validity_months":12},"lifetime_actions":[{"trigger":{"days_before_expiry":30},"action":{"action_type":"AutoRenew"}}]}`
	for f, b := range map[string][]byte{certFile: pemBytes, policyFile: []byte(policy)} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	imported := tsv(kh("keyvault", "certificate", "import", "--vault-name", w.vault, "-n", "renewing", "-f", certFile,
		"--policy", "@"+policyFile, "--query", "id", "-o", "tsv"))

	var latest string
	eventually(t, 15*time.Second, "the server renews the certificate", func() (bool, string) {
		latest = tsv(kh("keyvault", "certificate", "show", "--vault-name", w.vault, "-n", "renewing", "--query", "id", "-o", "tsv"))
		return latest != imported, "latest " + latest
	})
	if n := tsv(kh("keyvault", "certificate", "list-versions", "--vault-name", w.vault, "-n", "renewing", "--query", "length(@)", "-o", "tsv")); n != "2" {
		t.Fatalf("%s versions after renewal, want 2", n)
	}
	cer := tsv(kh("keyvault", "certificate", "show", "--vault-name", w.vault, "-n", "renewing", "--query", "cer", "-o", "tsv"))
	raw, err := base64.StdEncoding.DecodeString(cer)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := x509.ParseCertificate(raw)
	if err != nil {
		t.Fatal(err)
	}
	if renewed.Subject.CommonName != "renewing.example.com" || renewed.Issuer.CommonName != "renewing.example.com" ||
		renewed.NotAfter.Before(time.Now().AddDate(0, 11, 0)) || renewed.PublicKey.(*ecdsa.PublicKey).Equal(&k.PublicKey) {
		t.Fatalf("renewed certificate: subject %q issuer %q until %v, same key %v", renewed.Subject.CommonName, renewed.Issuer.CommonName,
			renewed.NotAfter, renewed.PublicKey.(*ecdsa.PublicKey).Equal(&k.PublicKey))
	}
	// Renewed once: the new version's own renewal is eleven months away.
	time.Sleep(time.Second)
	if n := tsv(kh("keyvault", "certificate", "list-versions", "--vault-name", w.vault, "-n", "renewing", "--query", "length(@)", "-o", "tsv")); n != "2" {
		t.Fatalf("%s versions a second after renewal, want 2", n)
	}

	checkPlatformEvent(t, w, "CertificateCreate", latest)
}

// TestKeyAutoRotation: through the real binary and CLI, a key expiring in
// ten days whose rotation policy rotates 30 days before expiry is rotated
// by the server at once; the new version gets the policy's expiryTime and
// the rotation is the platform's KeyRotate in the vault's audit log.
func TestKeyAutoRotation(t *testing.T) {
	w := newWorld(t, khtest.Options{Args: []string{"--renew-interval", "200ms"}})
	kh := cliSession(t, w.srv)
	expires := time.Now().Add(10 * 24 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
	first := tsv(kh("keyvault", "key", "create", "--vault-name", w.vault, "-n", "rotating", "--kty", "EC", "--curve", "P-256",
		"--expires", expires, "--query", "key.kid", "-o", "tsv"))
	policy := `{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P60D"}}`
	kh("keyvault", "key", "rotation-policy", "update", "--vault-name", w.vault, "-n", "rotating", "--value", policy, "-o", "none")
	if got := tsv(kh("keyvault", "key", "rotation-policy", "show", "--vault-name", w.vault, "-n", "rotating", "--query", "attributes.expiryTime", "-o", "tsv")); got != "P60D" {
		t.Fatalf("policy expiryTime %q", got)
	}
	var latest string
	eventually(t, 15*time.Second, "the server rotates the key", func() (bool, string) {
		latest = tsv(kh("keyvault", "key", "show", "--vault-name", w.vault, "-n", "rotating", "--query", "key.kid", "-o", "tsv"))
		return latest != first, "latest " + latest
	})
	exp := tsv(kh("keyvault", "key", "show", "--vault-name", w.vault, "-n", "rotating", "--query", "attributes.exp", "-o", "tsv"))
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Unix(secs, 0).Sub(time.Now().AddDate(0, 0, 60)).Abs() > time.Hour {
		t.Fatalf("rotated version expires %q, want in 60 days", exp)
	}
	time.Sleep(time.Second)
	if n := tsv(kh("keyvault", "key", "list-versions", "--vault-name", w.vault, "-n", "rotating", "--query", "length(@)", "-o", "tsv")); n != "2" {
		t.Fatalf("%s versions, want 2 (rotated once)", n)
	}
	checkPlatformEvent(t, w, "KeyRotate", latest)
}

// checkPlatformEvent finds the vault's audit event op for the object id,
// made by the platform (an object id, no user) and successful.
func checkPlatformEvent(t *testing.T, w *world, op, id string) {
	t.Helper()
	for _, e := range auditEvents(t, w, w.vaultID) {
		if e.OperationName == op && strings.EqualFold(e.Properties.ID, id) {
			if e.Identity == nil || e.Identity.Claim.OID == "" || e.Identity.Claim.UPN != "" || e.ResultType != "Success" {
				t.Fatalf("%s event for %s: %+v", op, id, e)
			}
			return
		}
	}
	t.Fatalf("no platform %s event for %s", op, id)
}
