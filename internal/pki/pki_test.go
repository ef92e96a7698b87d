package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/clock"
)

var testHosts = []string{"localhost", "*.vault.localhost", "127.0.0.1", "::1"}

func ensure(t *testing.T, dir string, hosts []string, clk clock.Clock) *Material {
	t.Helper()
	m, err := EnsureServerTLS(dir, hosts, clk)
	if err != nil {
		t.Fatalf("EnsureServerTLS: %v", err)
	}
	return m
}

func TestGeneratedCertificateNames(t *testing.T) {
	clk := clock.Real{}
	m := ensure(t, t.TempDir(), testHosts, clk)
	if !m.CACreated || !m.Issued {
		t.Fatalf("first call: CACreated=%v Issued=%v", m.CACreated, m.Issued)
	}
	leaf := m.Certificate.Leaf
	tests := []struct {
		name, host string
	}{
		{"ok/localhost", "localhost"},
		{"ok/ipv4-loopback", "127.0.0.1"},
		{"ok/ipv6-loopback", "::1"},
		{"ok/vault-subdomain", "myvault.vault.localhost"},
		{"ok/case-insensitive", "MyVault.Vault.LocalHost"},
		{"fail/two-labels-under-wildcard", "a.b.vault.localhost"},
		{"fail/wildcard-parent", "vault.localhost"},
		{"fail/other-domain", "example.com"},
		{"fail/other-ip", "10.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{DNSName: tc.host, Roots: m.CAPool, CurrentTime: clk.Now()})
			if ok := strings.HasPrefix(tc.name, "ok/"); ok != (err == nil) {
				t.Fatalf("Verify(%q) err = %v", tc.host, err)
			}
		})
	}
	// Without the CA pool the certificate must not verify.
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: x509.NewCertPool()}); err == nil {
		t.Fatal("verified without the CA")
	}
	if leaf.IsCA || leaf.PublicKeyAlgorithm != x509.ECDSA {
		t.Fatalf("server cert: IsCA=%v alg=%v", leaf.IsCA, leaf.PublicKeyAlgorithm)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 360*24*time.Hour || d > 370*24*time.Hour {
		t.Fatalf("server validity %v, want about a year", d)
	}
	ca := caCert(t, m)
	if ca.Subject.CommonName != CAName || !ca.IsCA || ca.NotAfter.Sub(ca.NotBefore) < 3650*24*time.Hour {
		t.Fatalf("CA: %v IsCA=%v validity %v", ca.Subject, ca.IsCA, ca.NotAfter.Sub(ca.NotBefore))
	}
}

func caCert(t *testing.T, m *Material) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(m.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFileModes(t *testing.T) {
	dir := t.TempDir()
	ensure(t, dir, nil, clock.Real{})
	for name, want := range map[string]os.FileMode{CAKeyFile: 0o600, ServerKeyFile: 0o600, CACertFile: 0o644, ServerCertFile: 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %04o, want %04o", name, got, want)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".keyhaven-pki-*"))
	if len(leftovers) > 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestReuseAndReissue(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		change      func(t *testing.T, dir string, clk *clock.Fake) []string // returns hosts for the 2nd call
		wantIssued  bool
		wantNewCA   bool
		wantErrIs   error
		wantErrText string
	}{
		{name: "ok/reuse-same-hosts", change: func(*testing.T, string, *clock.Fake) []string { return testHosts }},
		{name: "ok/reuse-subset-reordered", change: func(*testing.T, string, *clock.Fake) []string {
			return []string{"::1", "LOCALHOST.", "[::1]"}
		}},
		{name: "ok/reuse-after-300-days", change: func(_ *testing.T, _ string, clk *clock.Fake) []string {
			clk.Advance(300 * 24 * time.Hour)
			return testHosts
		}},
		{name: "ok/reissue-new-host", wantIssued: true, change: func(*testing.T, string, *clock.Fake) []string {
			return append(testHosts, "keyhaven.example.internal")
		}},
		{name: "ok/reissue-new-ip", wantIssued: true, change: func(*testing.T, string, *clock.Fake) []string {
			return append(testHosts, "192.168.1.10")
		}},
		{name: "ok/reissue-near-expiry", wantIssued: true, change: func(_ *testing.T, _ string, clk *clock.Fake) []string {
			clk.Advance(340 * 24 * time.Hour)
			return testHosts
		}},
		{name: "ok/reissue-missing-server-key", wantIssued: true, change: func(t *testing.T, dir string, _ *clock.Fake) []string {
			os.Remove(filepath.Join(dir, ServerKeyFile))
			return testHosts
		}},
		{name: "ok/reissue-mismatched-pair", wantIssued: true, change: func(t *testing.T, dir string, _ *clock.Fake) []string {
			// a torn write: certificate of another issuance
			other := t.TempDir()
			ensure(t, other, testHosts, clock.NewFake(start))
			copyFile(t, filepath.Join(other, ServerCertFile), filepath.Join(dir, ServerCertFile))
			return testHosts
		}},
		{name: "ok/new-ca-when-ca-cert-missing", wantIssued: true, wantNewCA: true, change: func(t *testing.T, dir string, _ *clock.Fake) []string {
			os.Remove(filepath.Join(dir, CACertFile))
			return testHosts
		}},
		{name: "ok/new-ca-near-ca-expiry", wantIssued: true, wantNewCA: true, change: func(_ *testing.T, _ string, clk *clock.Fake) []string {
			clk.Advance(CAValidity - 10*24*time.Hour)
			return testHosts
		}},
		{name: "fail/ca-key-missing", wantErrText: "remove", change: func(t *testing.T, dir string, _ *clock.Fake) []string {
			os.Remove(filepath.Join(dir, CAKeyFile))
			return testHosts
		}},
		{name: "fail/ca-key-world-readable", wantErrIs: ErrInsecureKeyFile, change: func(t *testing.T, dir string, _ *clock.Fake) []string {
			os.Chmod(filepath.Join(dir, CAKeyFile), 0o644)
			return testHosts
		}},
		{name: "fail/server-key-group-readable", wantErrIs: ErrInsecureKeyFile, change: func(t *testing.T, dir string, _ *clock.Fake) []string {
			os.Chmod(filepath.Join(dir, ServerKeyFile), 0o640)
			return testHosts
		}},
		{name: "fail/bad-host", wantErrText: "not a valid DNS name", change: func(*testing.T, string, *clock.Fake) []string {
			return []string{"bad_host!"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clk := clock.NewFake(start)
			first := ensure(t, dir, testHosts, clk)
			hosts := tc.change(t, dir, clk)
			m, err := EnsureServerTLS(dir, hosts, clk)
			if tc.wantErrIs != nil || tc.wantErrText != "" {
				if err == nil {
					t.Fatal("want an error")
				}
				if tc.wantErrIs != nil && !errors.Is(err, tc.wantErrIs) {
					t.Fatalf("err = %v, want %v", err, tc.wantErrIs)
				}
				if !strings.Contains(err.Error(), tc.wantErrText) {
					t.Fatalf("err = %q, want it to mention %q", err, tc.wantErrText)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			sameSerial := m.Certificate.Leaf.SerialNumber.Cmp(first.Certificate.Leaf.SerialNumber) == 0
			if m.Issued != tc.wantIssued || sameSerial == tc.wantIssued {
				t.Fatalf("Issued=%v sameSerial=%v, want issued=%v", m.Issued, sameSerial, tc.wantIssued)
			}
			if m.CACreated != tc.wantNewCA {
				t.Fatalf("CACreated=%v, want %v", m.CACreated, tc.wantNewCA)
			}
			// Whatever happened, the result verifies for every host now and
			// a third call reuses it.
			for _, h := range hosts {
				name := strings.Trim(strings.ReplaceAll(h, "*", "x"), "[]")
				if _, err := m.Certificate.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: m.CAPool, CurrentTime: clk.Now()}); err != nil {
					t.Fatalf("verify %q: %v", name, err)
				}
			}
			again := ensure(t, dir, hosts, clk)
			if again.Issued || again.CACreated || again.Certificate.Leaf.SerialNumber.Cmp(m.Certificate.Leaf.SerialNumber) != 0 {
				t.Fatal("third call did not reuse the material")
			}
			if !tc.wantNewCA && !caCert(t, m).Equal(caCert(t, first)) {
				t.Fatal("CA changed")
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseHostsLimits(t *testing.T) {
	tests := []struct {
		name  string
		hosts []string
	}{
		{"fail/too-many", make([]string, MaxHosts+1)},
		{"fail/empty-name", []string{""}},
		{"fail/port", []string{"localhost:8443"}},
		{"fail/bare-wildcard", []string{"*"}},
		{"fail/inner-wildcard", []string{"a.*.localhost"}},
		{"fail/partial-wildcard", []string{"v*.localhost"}},
		{"fail/long-label", []string{strings.Repeat("a", 64) + ".localhost"}},
		{"fail/leading-hyphen", []string{"-a.localhost"}},
		{"fail/too-long", []string{strings.Repeat("a.", 127) + "aa"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseHosts(tc.hosts); err == nil {
				t.Fatalf("parseHosts(%q) accepted", tc.hosts)
			}
		})
	}
	s, err := parseHosts(nil)
	if err != nil || len(s.dns) != 1 || len(s.ips) != 2 {
		t.Fatalf("default hosts: %+v %v", s, err)
	}
}

func TestTLSHandshake(t *testing.T) {
	m := ensure(t, t.TempDir(), testHosts, clock.Real{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello "+r.Host)
	}))
	srv.TLS = m.ServerConfig()
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

	for _, host := range []string{"myvault.vault.localhost", "localhost", "127.0.0.1"} {
		t.Run("ok/"+host, func(t *testing.T) {
			cfg := m.ClientConfig()
			cfg.ServerName = strings.Trim(host, "[]")
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig: cfg,
				// the name need not resolve: always dial the test server
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
				},
			}}
			resp, err := client.Get("https://" + net.JoinHostPort(host, port) + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(body), "hello ") || resp.TLS.Version < tls.VersionTLS12 {
				t.Fatalf("body %q tls %x", body, resp.TLS.Version)
			}
		})
	}
	t.Run("fail/untrusted-client", func(t *testing.T) {
		cfg := &tls.Config{ServerName: "localhost", RootCAs: x509.NewCertPool()}
		conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
		if err == nil {
			conn.Close()
			t.Fatal("handshake succeeded without trusting the CA")
		}
	})
	t.Run("fail/name-not-covered", func(t *testing.T) {
		cfg := m.ClientConfig()
		cfg.ServerName = "example.com"
		conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
		if err == nil {
			conn.Close()
			t.Fatal("handshake succeeded for a name the certificate lacks")
		}
	})
}

func TestLoadServerTLS(t *testing.T) {
	dir := t.TempDir()
	m := ensure(t, dir, testHosts, clock.Real{})
	// a bundle: leaf followed by the CA
	leafPEM, _ := os.ReadFile(filepath.Join(dir, ServerCertFile))
	caPEM, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	bundle := filepath.Join(dir, "bundle.pem")
	os.WriteFile(bundle, append(leafPEM, caPEM...), 0o644)
	tests := []struct {
		name, cert, key string
		wantPool        bool
	}{
		{name: "ok/leaf-only", cert: filepath.Join(dir, ServerCertFile), key: filepath.Join(dir, ServerKeyFile)},
		{name: "ok/bundle-with-ca", cert: bundle, key: filepath.Join(dir, ServerKeyFile), wantPool: true},
		{name: "fail/key-mismatch", cert: filepath.Join(dir, ServerCertFile), key: filepath.Join(dir, CAKeyFile)},
		{name: "fail/missing", cert: filepath.Join(dir, "nope.pem"), key: filepath.Join(dir, ServerKeyFile)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadServerTLS(tc.cert, tc.key)
			if strings.HasPrefix(tc.name, "fail/") {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Certificate.Leaf == nil || got.Certificate.Leaf.SerialNumber.Cmp(m.Certificate.Leaf.SerialNumber) != 0 {
				t.Fatal("wrong leaf")
			}
			if (got.CAPool != nil) != tc.wantPool {
				t.Fatalf("CAPool set = %v, want %v", got.CAPool != nil, tc.wantPool)
			}
			if tc.wantPool {
				if _, err := got.Certificate.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: got.CAPool}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}
