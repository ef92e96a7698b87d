// Package khtest runs a real `keyhaven serve` process for end-to-end tests:
// it builds the binary once (or uses $KEYHAVEN_BIN), starts it on free ports
// with a temporary data directory, and gives tests a client that trusts the
// generated CA and reaches per-vault host names (which do not resolve here).
// Test-only: nothing in the product imports it.
package khtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of a keyhaven binary: $KEYHAVEN_BIN, or one built
// once per test process from this checkout.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("KEYHAVEN_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		dir, err := os.MkdirTemp("", "keyhaven-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "keyhaven")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/keyhaven")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Options configure a server.
type Options struct {
	DataDir string   // default: a fresh temp dir
	Store   string   // "" = SQLite; else a postgres DSN
	Env     []string // extra environment
	Args    []string // extra serve flags
	Port    int      // default: a free port
	MIPort  int      // default: a free port
}

// Server is a running keyhaven process.
type Server struct {
	t           testing.TB
	opts        Options
	cmd         *exec.Cmd
	logs        *SyncBuffer
	exited      chan struct{}
	autoPorts   bool // ports were chosen by Start, so a first start may pick others
	started     bool
	Port        int
	MIPort      int
	DataDir     string
	BaseURL     string // https://localhost:{port}
	VaultDomain string
	CAFile      string
	Admin       AdminCredentials
}

// AdminCredentials is the bootstrap administrator file the server writes.
type AdminCredentials struct {
	TenantID       string `json:"tenantId"`
	Username       string `json:"username"`
	Password       string `json:"password"`
	Server         string `json:"server"`
	CAFile         string `json:"caFile"`
	SubscriptionID string `json:"subscriptionId"`
}

// FreePort returns a TCP port free at the time of the call. It is drawn
// from below the kernel's ephemeral range, so that the many outgoing
// connections of parallel tests cannot take it while a server restarts on
// it (an ephemeral-range port once made a restart fail to bind).
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := 20000, ephemeralLow()-1
	for range 200 {
		p := lo + rand.IntN(hi-lo+1)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port the kernel hands to outgoing connections.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 20100 {
			return lo
		}
	}
	return 32768
}

// Start runs keyhaven serve and waits until it is ready. It is stopped at
// the end of the test.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	// A first start that fails to bind may move to fresh ports only when
	// both ports and the data directory are ours: the credentials file of
	// the failed try names the old port.
	autoPorts := opts.Port == 0 && opts.MIPort == 0 && opts.DataDir == ""
	if opts.DataDir == "" {
		opts.DataDir = t.TempDir()
	}
	if opts.Port == 0 {
		opts.Port = FreePort(t)
	}
	if opts.MIPort == 0 {
		opts.MIPort = FreePort(t)
	}
	s := &Server{t: t, opts: opts, Port: opts.Port, MIPort: opts.MIPort, DataDir: opts.DataDir,
		BaseURL: fmt.Sprintf("https://localhost:%d", opts.Port), VaultDomain: "vault.localhost",
		CAFile: filepath.Join(opts.DataDir, "tls", "ca.pem")}
	s.autoPorts = autoPorts
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// start runs the process. A port is only free at the moment it is checked,
// so a bind conflict is retried: with fresh ports on a first start whose
// ports were chosen here, and on the same ports (after a pause) otherwise.
func (s *Server) start() {
	for attempt := 0; ; attempt++ {
		if s.startOnce(attempt < 20) {
			return
		}
		if s.autoPorts && !s.started {
			s.Port, s.MIPort = FreePort(s.t), FreePort(s.t)
			s.BaseURL = fmt.Sprintf("https://localhost:%d", s.Port)
			s.DataDir = s.t.TempDir()
			s.CAFile = filepath.Join(s.DataDir, "tls", "ca.pem")
		} else {
			time.Sleep(250 * time.Millisecond)
		}
	}
}

// startOnce reports false when the process could not bind its ports and
// retry allows another go; every other failure ends the test.
func (s *Server) startOnce(retry bool) bool {
	t := s.t
	args := []string{"serve", "--data-dir", s.DataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", s.Port),
		"--mi-listen", fmt.Sprintf("127.0.0.1:%d", s.MIPort), "--log-format", "json"}
	if s.opts.Store != "" {
		args = append(args, "--store", s.opts.Store)
	}
	args = append(args, s.opts.Args...)
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), s.opts.Env...)
	s.logs = &SyncBuffer{}
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-s.exited:
			if retry && strings.Contains(s.logs.String(), "address already in use") {
				t.Logf("keyhaven serve could not bind its ports; trying again")
				return false
			}
			t.Fatalf("keyhaven serve exited early:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("keyhaven serve not ready after 60s:\n%s", s.logs.String())
		}
		if _, err := os.Stat(s.CAFile); err == nil {
			if resp, err := s.Client().Get(s.BaseURL + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir, "admin-credentials.json"))
	if err != nil {
		t.Fatalf("admin credentials: %v", err)
	}
	if err := json.Unmarshal(b, &s.Admin); err != nil {
		t.Fatalf("admin credentials: %v", err)
	}
	s.started = true
	return true
}

// Logs returns everything the process printed.
func (s *Server) Logs() string { return s.logs.String() }

// Stop ends the process gracefully (SIGTERM), then kills it after 20s.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Kill ends the process with SIGKILL, as a crash.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// Restart starts the process again on the same data directory and ports.
func (s *Server) Restart() { s.start() }

// ExitCode is the process exit code after it ended.
func (s *Server) ExitCode() int { <-s.exited; return s.cmd.ProcessState.ExitCode() }

// CAPool returns the pool holding the server's CA.
func (s *Server) CAPool() *x509.CertPool {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		s.t.Fatalf("read CA: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		s.t.Fatal("CA file holds no certificate")
	}
	return pool
}

// Transport trusts the server's CA and dials every host (localhost and the
// per-vault names under the vault domain) to the server's loopback address.
func (s *Server) Transport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	addr := fmt.Sprintf("127.0.0.1:%d", s.Port)
	return &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 16,
	}
}

// Client is an HTTP client using Transport.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: s.Transport(), Timeout: 30 * time.Second}
}

// VaultURL is the URI of a vault on this server.
func (s *Server) VaultURL(name string) string {
	return fmt.Sprintf("https://%s.%s:%d/", name, s.VaultDomain, s.Port)
}

// VaultAudience is the data-plane token audience.
func (s *Server) VaultAudience() string { return fmt.Sprintf("https://%s:%d", s.VaultDomain, s.Port) }

// PasswordToken gets an access token for audience as a user.
func (s *Server) PasswordToken(t testing.TB, user, password, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {"04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
		"username": {user}, "password": {password}, "scope": {audience + "/.default"}}
	return s.token(t, form)
}

// ClientSecretToken gets an access token for audience as a service principal.
func (s *Server) ClientSecretToken(t testing.TB, appID, secret, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {appID},
		"client_secret": {secret}, "scope": {audience + "/.default"}}
	return s.token(t, form)
}

func (s *Server) token(t testing.TB, form url.Values) string {
	resp, err := s.Client().PostForm(s.BaseURL+"/"+s.Admin.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || out.AccessToken == "" {
		t.Fatalf("token request: %d %s", resp.StatusCode, b)
	}
	return out.AccessToken
}

// AdminToken gets an access token for audience as the bootstrap administrator.
func (s *Server) AdminToken(t testing.TB, audience string) string {
	return s.PasswordToken(t, s.Admin.Username, s.Admin.Password, audience)
}

// Do sends a request with a bearer token and JSON body, returning status and body.
func (s *Server) Do(t testing.TB, method, rawURL, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, rawURL, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// CLI runs the keyhaven CLI with its config directory under the data dir.
func (s *Server) CLI(t testing.TB, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), "KEYHAVEN_CONFIG_DIR="+filepath.Join(s.DataDir, "cli-config"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String() + errb.String(), fmt.Errorf("keyhaven %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

// SyncBuffer is a bytes.Buffer safe for a process's output copier and a
// test reading it at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}
func (b *SyncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.b.String() }
