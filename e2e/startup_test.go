package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// serveProc is a `keyhaven serve` started without khtest, for what khtest
// fixes itself (it always passes --data-dir and waits for the generated CA)
// and for starts that are meant to fail.
type serveProc struct {
	cmd            *exec.Cmd
	stdout, stderr *khtest.SyncBuffer
	exited         chan struct{}
	port           int
}

// cleanEnv is the test's environment without KEYHAVEN_* variables (a
// developer's own KEYHAVEN_DATA_DIR or root key must not leak in), plus env.
func cleanEnv(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYHAVEN_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// startServe runs keyhaven serve on free ports in dir (the working
// directory) with env and extra args, and returns once it prints that it is
// serving or has exited.
func startServe(t *testing.T, dir string, env []string, args ...string) *serveProc {
	t.Helper()
	p := &serveProc{stdout: &khtest.SyncBuffer{}, stderr: &khtest.SyncBuffer{}, exited: make(chan struct{}), port: khtest.FreePort(t)}
	all := append([]string{"serve", "--listen", fmt.Sprintf("127.0.0.1:%d", p.port),
		"--mi-listen", fmt.Sprintf("127.0.0.1:%d", khtest.FreePort(t))}, args...)
	p.cmd = exec.Command(khtest.Binary(t), all...)
	p.cmd.Dir = dir
	p.cmd.Env = cleanEnv(env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.stop)
	deadline := time.After(60 * time.Second)
	for !strings.Contains(p.stdout.String(), "keyhaven is serving") {
		select {
		case <-p.exited:
			return p
		case <-deadline:
			t.Fatalf("keyhaven serve neither served nor exited in 60s:\n%s%s", p.stdout, p.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return p
}

// stop ends the process gracefully (SIGTERM), killing it after 20s.
func (p *serveProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// exitCode waits for the process to end on its own (a start meant to fail)
// and returns its exit code.
func (p *serveProc) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("keyhaven serve still running, want it to refuse to start:\n%s%s", p.stdout, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// client trusts pool and dials every host to the process's port.
func (p *serveProc) client(pool *x509.CertPool) *http.Client {
	addr := fmt.Sprintf("127.0.0.1:%d", p.port)
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// stdoutField returns the text after prefix on the first stdout line that
// starts with it (after indentation).
func stdoutField(t *testing.T, out, prefix string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), prefix); ok {
			return strings.TrimSpace(rest)
		}
	}
	t.Fatalf("startup output has no %q line:\n%s", prefix, out)
	return ""
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s has mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

func poolFromFile(t *testing.T, path string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("%s holds no PEM certificate", path)
	}
	return pool
}

// A first start with no flags but KEYHAVEN_DATA_DIR (relative, as an
// operator would type it) puts everything there with private modes, prints
// the URL, the CA file and a login command that works as printed, and writes
// the administrator's credential once.
func TestServeFirstStart(t *testing.T) {
	cwd := t.TempDir()
	p := startServe(t, cwd, []string{"KEYHAVEN_DATA_DIR=kh-data"})
	if !strings.Contains(p.stdout.String(), "keyhaven is serving") {
		t.Fatalf("keyhaven serve did not start:\n%s%s", p.stdout, p.stderr)
	}
	dataDir := filepath.Join(cwd, "kh-data")
	credFile := filepath.Join(dataDir, "admin-credentials.json")
	out := p.stdout.String()
	credBytes, err := os.ReadFile(credFile)
	if err != nil {
		t.Fatalf("admin credentials: %v\n%s", err, out)
	}
	var cred khtest.AdminCredentials
	mustJSON(t, string(credBytes), &cred)
	url := fmt.Sprintf("https://localhost:%d", p.port)
	caPath := stdoutField(t, out, "CA certificate for clients:")

	checks := []struct {
		name  string
		check func(t *testing.T)
	}{
		{name: "ok/data-dir-from-env", check: func(t *testing.T) {
			for _, f := range []string{"keyhaven.db", "root.key", "admin-credentials.json", "tls/ca.pem"} {
				if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
					t.Fatalf("KEYHAVEN_DATA_DIR not used: %v", err)
				}
			}
			if _, err := os.Stat(filepath.Join(cwd, "keyhaven-data")); !os.IsNotExist(err) {
				t.Fatalf("the default ./keyhaven-data was created too (%v)", err)
			}
		}},
		{name: "ok/private-modes", check: func(t *testing.T) {
			wantMode(t, dataDir, 0o700)
			wantMode(t, credFile, 0o600)
			wantMode(t, filepath.Join(dataDir, "root.key"), 0o600)
			wantMode(t, filepath.Join(dataDir, "keyhaven.db"), 0o600)
		}},
		{name: "ok/credentials-file-contents", check: func(t *testing.T) {
			if cred.Server != url || cred.Username == "" || cred.Password == "" || cred.TenantID == "" || cred.SubscriptionID == "" {
				t.Fatalf("incomplete admin credentials: server %q user %q tenant %q subscription %q (password set: %v)",
					cred.Server, cred.Username, cred.TenantID, cred.SubscriptionID, cred.Password != "")
			}
			if cred.CAFile != caPath {
				t.Fatalf("credentials name CA %q, startup output %q", cred.CAFile, caPath)
			}
		}},
		{name: "ok/prints-url", check: func(t *testing.T) {
			if got := stdoutField(t, out, "keyhaven is serving on"); !strings.HasPrefix(got, url+" ") {
				t.Fatalf("printed URL %q, want %s", got, url)
			}
		}},
		{name: "ok/prints-ca-that-verifies-the-server", check: func(t *testing.T) {
			// Absolute, so it can be copied into a command run anywhere.
			if !filepath.IsAbs(caPath) || !sameFile(t, caPath, filepath.Join(dataDir, "tls", "ca.pem")) {
				t.Fatalf("printed CA path %q, want the absolute path of kh-data/tls/ca.pem", caPath)
			}
			resp, err := p.client(poolFromFile(t, caPath)).Get(url + "/readyz")
			if err != nil {
				t.Fatalf("the printed CA does not verify the server: %v", err)
			}
			resp.Body.Close()
			mustStatus(t, 200, resp.StatusCode)
		}},
		{name: "ok/prints-credential-location-not-password", check: func(t *testing.T) {
			written := stdoutField(t, out, "bootstrap administrator "+cred.Username+": credential written to")
			if path, _, _ := strings.Cut(written, " "); !sameFile(t, path, credFile) {
				t.Fatalf("startup output names credential file %q, want %s", written, credFile)
			}
			if strings.Contains(out+p.stderr.String(), cred.Password) {
				t.Fatal("the administrator's password is in the startup output or logs")
			}
		}},
		{name: "ok/printed-login-command-works", check: func(t *testing.T) {
			args := strings.Fields(stdoutField(t, out, "log in:"))
			if len(args) < 2 || args[0] != "keyhaven" || args[1] != "login" {
				t.Fatalf("printed login command %q", args)
			}
			cfgDir := t.TempDir()
			cmd := exec.Command(khtest.Binary(t), append(args[1:], "-o", "none")...)
			cmd.Dir = cwd
			// The password comes from the credential file, as the output says.
			cmd.Env = cleanEnv("KEYHAVEN_CONFIG_DIR="+cfgDir, "KEYHAVEN_PASSWORD="+cred.Password)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, b)
			}
			cliWorks(t, cwd, cfgDir, cred.SubscriptionID)
		}},
		{name: "ok/credentials-file-login-from-another-directory", check: func(t *testing.T) {
			cfgDir := t.TempDir()
			cmd := exec.Command(khtest.Binary(t), "login", "--credentials-file", credFile, "-o", "none")
			cmd.Dir = t.TempDir()
			cmd.Env = cleanEnv("KEYHAVEN_CONFIG_DIR=" + cfgDir)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("login --credentials-file %s from another directory: %v\n%s", credFile, err, b)
			}
			cliWorks(t, cmd.Dir, cfgDir, cred.SubscriptionID)
		}},
	}
	for _, c := range checks {
		t.Run(c.name, c.check)
	}

	// A second start finds the administrator and leaves the file alone.
	p.stop()
	p2 := startServe(t, cwd, []string{"KEYHAVEN_DATA_DIR=kh-data"})
	if !strings.Contains(p2.stdout.String(), "(written on first start)") {
		t.Fatalf("second start output:\n%s%s", p2.stdout, p2.stderr)
	}
	after, err := os.ReadFile(credFile)
	if err != nil || !bytes.Equal(after, credBytes) {
		t.Fatalf("admin credentials rewritten on the second start (%v)", err)
	}
	wantMode(t, credFile, 0o600)
}

// sameFile reports whether a and b name the same existing file.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		return false
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	return os.SameFile(fa, fb)
}

// cliWorks runs an authenticated CLI command with the login in cfgDir.
func cliWorks(t *testing.T, dir, cfgDir, subscriptionID string) {
	t.Helper()
	cmd := exec.Command(khtest.Binary(t), "account", "show", "--query", "id", "-o", "tsv")
	cmd.Dir = dir
	cmd.Env = cleanEnv("KEYHAVEN_CONFIG_DIR=" + cfgDir)
	b, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(b)) != subscriptionID {
		t.Fatalf("CLI after login: %v\n%s", err, b)
	}
}

// keySource is where a server takes its root key from: KEYHAVEN_ROOT_KEY
// (env) and/or --root-key-file (file, relative to the test's directory).
type keySource struct {
	env  string
	file string
}

func (k keySource) options(dir, dataDir string) khtest.Options {
	o := khtest.Options{DataDir: dataDir}
	if k.env != "" {
		o.Env = []string{"KEYHAVEN_ROOT_KEY=" + k.env}
	}
	if k.file != "" {
		o.Args = []string{"--root-key-file", filepath.Join(dir, k.file)}
	}
	return o
}

func randomKey(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// --root-key-file and KEYHAVEN_ROOT_KEY are honoured: a server given the key
// the data was written under reads it; one given another key, or an unusable
// one, refuses to start with a clear error (and harms nothing: the right key
// still reads afterwards). The environment wins over the file.
func TestServeRootKeySources(t *testing.T) {
	keyA, keyB := randomKey(32), randomKey(32)
	const mismatch = "does not unwrap the data key"
	cases := []struct {
		name          string
		first, second keySource
		keyFileMode   os.FileMode // set on first.file before the second start
		wantErr       string      // "" = the second start serves the data
	}{
		{name: "ok/root-key-file", first: keySource{file: "keys/root.key"}, second: keySource{file: "keys/root.key"}},
		{name: "ok/env-root-key", first: keySource{env: keyA}, second: keySource{env: keyA}},
		{name: "fail/other-root-key-file", first: keySource{file: "keys/root.key"}, second: keySource{file: "other/root.key"}, wantErr: mismatch},
		{name: "fail/other-env-root-key", first: keySource{env: keyA}, second: keySource{env: keyB}, wantErr: mismatch},
		{name: "fail/env-root-key-overrides-file", first: keySource{file: "keys/root.key"},
			second: keySource{env: keyB, file: "keys/root.key"}, wantErr: mismatch},
		{name: "fail/root-key-file-group-readable", first: keySource{file: "keys/root.key"}, second: keySource{file: "keys/root.key"},
			keyFileMode: 0o640, wantErr: "accessible by group or others"},
		{name: "fail/env-root-key-not-base64", first: keySource{env: keyA}, second: keySource{env: "not*base64*at*all"},
			wantErr: "KEYHAVEN_ROOT_KEY is not valid standard base64"},
		{name: "fail/env-root-key-16-bytes", first: keySource{env: keyA}, second: keySource{env: randomKey(16)},
			wantErr: "root key must be 32 bytes, got 16"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dataDir := filepath.Join(dir, "data")
			w := newWorld(t, tc.first.options(dir, dataDir))
			value := "root-key-value-" + randHex(8)
			code, body := w.setSecret(t, "k", value)
			mustStatus(t, 200, code, body)
			w.srv.Stop()
			// An explicit key source means no keyring in the data directory.
			if _, err := os.Stat(filepath.Join(dataDir, "root.key")); !os.IsNotExist(err) {
				t.Fatalf("root.key written to the data directory although the key came from elsewhere (%v)", err)
			}
			if tc.first.file != "" {
				wantMode(t, filepath.Join(dir, tc.first.file), 0o600)
			}
			if tc.keyFileMode != 0 {
				if err := os.Chmod(filepath.Join(dir, tc.first.file), tc.keyFileMode); err != nil {
					t.Fatal(err)
				}
			}

			readWith := func(t *testing.T, k keySource) {
				t.Helper()
				again := *w
				again.srv = khtest.Start(t, k.options(dir, dataDir))
				again.reconnect(t)
				code, got, body := again.getSecret(t, "k")
				mustStatus(t, 200, code, body)
				if got != value {
					t.Fatalf("read %q, want %q", got, value)
				}
				again.srv.Stop()
			}
			if tc.wantErr == "" {
				readWith(t, tc.second)
				return
			}

			o := tc.second.options(dir, dataDir)
			p := startServe(t, dir, o.Env, append(o.Args, "--data-dir", dataDir)...)
			if code := p.exitCode(t); code == 0 {
				t.Fatalf("keyhaven serve exited 0, want a refusal:\n%s%s", p.stdout, p.stderr)
			}
			if strings.Contains(p.stdout.String(), "keyhaven is serving") {
				t.Fatalf("keyhaven serve served before refusing:\n%s", p.stdout)
			}
			if !strings.Contains(p.stderr.String(), tc.wantErr) {
				t.Fatalf("refusal does not say %q:\n%s", tc.wantErr, p.stderr)
			}
			if tc.second.env != "" && strings.Contains(p.stdout.String()+p.stderr.String(), tc.second.env) {
				t.Fatal("the root key from the environment is in the output")
			}
			// The refused start changed nothing the right key cannot read.
			if tc.keyFileMode != 0 {
				if err := os.Chmod(filepath.Join(dir, tc.first.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			readWith(t, tc.first)
		})
	}
}

// testPKI is a CA and a server certificate for localhost issued by it,
// written as PEM files.
type testPKI struct {
	caPool   *x509.CertPool
	leafDER  []byte
	certFile string // the leaf
	chain    string // the leaf then the CA
	keyFile  string
}

func newTestPKI(t *testing.T, dir string) *testPKI {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e operator CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames: []string{"localhost", "*.vault.localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	p := &testPKI{caPool: x509.NewCertPool(), leafDER: leafDER, certFile: filepath.Join(dir, "server.pem"),
		chain: filepath.Join(dir, "chain.pem"), keyFile: filepath.Join(dir, "server-key.pem")}
	p.caPool.AddCert(ca)
	for f, b := range map[string][]byte{
		p.certFile: certPEM, p.chain: append(append([]byte{}, certPEM...), caPEM...),
		p.keyFile: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// --tls-cert/--tls-key serve the operator's certificate (no local CA is
// generated), and unusable TLS flags refuse to start with a clear error.
func TestServeOwnTLSCertificate(t *testing.T) {
	dir := t.TempDir()
	pk := newTestPKI(t, dir)
	other := newTestPKI(t, t.TempDir())
	cases := []struct {
		name    string
		args    []string
		wantErr string // "" = serves pk's certificate
	}{
		{name: "ok/leaf", args: []string{"--tls-cert", pk.certFile, "--tls-key", pk.keyFile}},
		{name: "ok/leaf-and-ca-chain", args: []string{"--tls-cert", pk.chain, "--tls-key", pk.keyFile}},
		{name: "fail/cert-without-key", args: []string{"--tls-cert", pk.certFile}, wantErr: "--tls-cert and --tls-key go together"},
		{name: "fail/key-of-another-certificate", args: []string{"--tls-cert", pk.certFile, "--tls-key", other.keyFile},
			wantErr: "private key does not match public key"},
		{name: "fail/missing-certificate-file", args: []string{"--tls-cert", filepath.Join(dir, "nope.pem"), "--tls-key", pk.keyFile},
			wantErr: "nope.pem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			p := startServe(t, dir, nil, append([]string{"--data-dir", dataDir}, tc.args...)...)
			if tc.wantErr != "" {
				if code := p.exitCode(t); code == 0 || !strings.Contains(p.stderr.String(), tc.wantErr) {
					t.Fatalf("exit %d, want a refusal saying %q:\n%s%s", code, tc.wantErr, p.stdout, p.stderr)
				}
				return
			}
			if !strings.Contains(p.stdout.String(), "keyhaven is serving") {
				t.Fatalf("keyhaven serve did not start:\n%s%s", p.stdout, p.stderr)
			}
			resp, err := p.client(pk.caPool).Get(fmt.Sprintf("https://localhost:%d/readyz", p.port))
			if err != nil {
				t.Fatalf("a client trusting the operator's CA: %v", err)
			}
			resp.Body.Close()
			mustStatus(t, 200, resp.StatusCode)
			if got := resp.TLS.PeerCertificates[0].Raw; !bytes.Equal(got, pk.leafDER) {
				t.Fatal("the server presents another certificate than --tls-cert")
			}
			if _, err := os.Stat(filepath.Join(dataDir, "tls", "ca.pem")); !os.IsNotExist(err) {
				t.Fatalf("a local CA was generated although --tls-cert was given (%v)", err)
			}
			var cred khtest.AdminCredentials
			b, err := os.ReadFile(filepath.Join(dataDir, "admin-credentials.json"))
			if err != nil {
				t.Fatal(err)
			}
			mustJSON(t, string(b), &cred)
			if cred.CAFile != "" {
				t.Fatalf("admin credentials name a CA file %q that keyhaven did not write", cred.CAFile)
			}
			// The start-up text names the operator's certificate and gives a
			// login command without an empty --ca-file.
			out := p.stdout.String()
			if !strings.Contains(out, "--tls-cert "+tc.args[1]) || strings.Contains(out, "--ca-file  ") ||
				strings.Contains(out, "--ca-file --") || !strings.Contains(out, "log in: keyhaven login --server ") {
				t.Fatalf("start-up text with --tls-cert:\n%s", out)
			}
		})
	}
}
