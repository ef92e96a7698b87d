package cli

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
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testTenant = "11111111-1111-1111-1111-111111111111"
	testSub    = "22222222-2222-2222-2222-222222222222"
	testOID    = "33333333-3333-3333-3333-333333333333"
)

// recorded is one request the fake server saw.
type recorded struct {
	Method, Host, Path, Query string
	Auth                      string
	Body                      []byte
	Form                      url.Values
}

// fakeServer is a keyhaven stand-in: metadata, token endpoint, ARM
// subscriptions, plus per-test handlers for everything else.
type fakeServer struct {
	t      *testing.T
	srv    *httptest.Server
	base   string
	port   string
	caPEM  string
	caFile string

	mu       sync.Mutex
	reqs     []recorded
	tokenN   int
	refreshN int
	// handle serves requests the fake does not know; nil answers 404.
	handle func(w http.ResponseWriter, r *http.Request, body []byte)
	// tokenTTL is expires_in for issued tokens.
	tokenTTL int
	// noSubs makes the subscription list empty.
	noSubs bool
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keyhaven test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost", "*.vault.localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{t: t, tokenTTL: 3600}
	f.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(f.caFile, []byte(f.caPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	u, _ := url.Parse(f.srv.URL)
	f.port = u.Port()
	f.base = "https://127.0.0.1:" + f.port
	return f
}

func (f *fakeServer) vaultAudience() string { return "https://vault.localhost:" + f.port }

// fakeJWT builds an unsigned token carrying the claims the CLI reads.
func fakeJWT(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{Method: r.Method, Host: r.Host, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Body: body}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		rec.Form, _ = url.ParseQuery(string(body))
	}
	if r.Header.Get("x-ms-client-request-id") == "" {
		f.t.Errorf("%s %s: no x-ms-client-request-id", r.Method, r.URL.Path)
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()

	switch {
	case r.URL.Path == "/metadata/endpoints":
		writeJSON(w, 200, map[string]any{
			"authentication":  map[string]any{"loginEndpoint": f.base + "/", "audiences": []string{f.base}},
			"resourceManager": f.base + "/",
			"suffixes":        map[string]any{"keyVaultDns": ".vault.localhost:" + f.port},
			"defaultTenantId": testTenant,
		})
	case strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") && r.Method == http.MethodPost:
		f.token(w, rec.Form)
	case r.URL.Path == "/subscriptions" && r.Method == http.MethodGet && f.noSubs:
		writeJSON(w, 200, map[string]any{"value": []any{}})
	case r.URL.Path == "/subscriptions" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]any{"value": []any{
			map[string]any{"id": "/subscriptions/" + testSub, "subscriptionId": testSub, "displayName": "Default", "state": "Enabled", "tenantId": testTenant},
		}})
	default:
		if f.handle != nil {
			f.handle(w, r, body)
			return
		}
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "NotFound", "message": "no route " + r.URL.Path}})
	}
}

func (f *fakeServer) token(w http.ResponseWriter, form url.Values) {
	f.mu.Lock()
	f.tokenN++
	n := f.tokenN
	f.mu.Unlock()
	aud := strings.TrimSuffix(strings.Fields(form.Get("scope") + " x")[0], "/.default")
	switch form.Get("grant_type") {
	case "password":
		if form.Get("password") != "hunter2-secret" {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "AADSTS50126: Error validating credentials due to invalid username or password."})
			return
		}
	case "refresh_token":
		f.mu.Lock()
		f.refreshN++
		f.mu.Unlock()
		if !strings.HasPrefix(form.Get("refresh_token"), "rt-") {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant", "error_description": "bad refresh token"})
			return
		}
	case "client_credentials":
		if form.Get("client_secret") != "sp-secret" {
			writeJSON(w, 401, map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided."})
			return
		}
	default:
		writeJSON(w, 400, map[string]any{"error": "unsupported_grant_type"})
		return
	}
	resp := map[string]any{
		"access_token": fakeJWT(map[string]any{"tid": testTenant, "oid": testOID, "aud": aud, "n": n}),
		"token_type":   "Bearer",
		"expires_in":   f.tokenTTL,
	}
	if form.Get("grant_type") != "client_credentials" {
		resp["refresh_token"] = fmt.Sprintf("rt-%d", n)
	}
	writeJSON(w, 200, resp)
}

// requests returns the recorded requests matching pred.
func (f *fakeServer) requests(pred func(recorded) bool) []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []recorded
	for _, r := range f.reqs {
		if pred == nil || pred(r) {
			out = append(out, r)
		}
	}
	return out
}

func (f *fakeServer) reset() {
	f.mu.Lock()
	f.reqs = nil
	f.mu.Unlock()
}

// harness runs CLI invocations against one config directory.
type harness struct {
	t      *testing.T
	dir    string
	now    time.Time
	sleeps []time.Duration
	env    map[string]string
}

func newHarness(t *testing.T) *harness {
	return &harness{t: t, dir: filepath.Join(t.TempDir(), "cfg"), now: time.Now(), env: map[string]string{}}
}

// run executes one command line and returns stdout, stderr and exit code.
func (h *harness) run(args ...string) (string, string, int) {
	h.t.Helper()
	a := newApp()
	a.getenv = func(k string) string {
		if k == "KEYHAVEN_CONFIG_DIR" {
			return h.dir
		}
		return h.env[k]
	}
	a.now = func() time.Time { return h.now }
	a.sleep = func(_ context.Context, d time.Duration) error { h.sleeps = append(h.sleeps, d); return nil }
	a.readPassword = func(string) (string, error) { return "", fmt.Errorf("no terminal in tests") }
	root := newRootWith(a)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(""))
	code := execute(root, args)
	return out.String(), errb.String(), code
}

// mustRun runs and fails the test on a non-zero exit.
func (h *harness) mustRun(args ...string) string {
	h.t.Helper()
	out, errOut, code := h.run(args...)
	if code != 0 {
		h.t.Fatalf("%v: exit %d\nstderr: %s", args, code, errOut)
	}
	return out
}

func (h *harness) login(f *fakeServer) {
	h.t.Helper()
	h.mustRun("login", "--server", f.base, "--ca-file", f.caFile, "-u", "admin@keyhaven.local", "-p", "hunter2-secret")
	f.reset()
}

func (h *harness) config() *Config {
	h.t.Helper()
	cfg, err := readConfig(filepath.Join(h.dir, configFileName))
	if err != nil {
		h.t.Fatal(err)
	}
	return cfg
}

func decodeJSON(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, s)
	}
	return v
}
