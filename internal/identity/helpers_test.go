package identity

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const testBase = "https://localhost:8443"

var testStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// env is a Service on a real SQLite store and envelope sealer, bootstrapped.
type env struct {
	t      testing.TB
	ctx    context.Context
	st     store.Store
	sealer seal.Sealer
	clk    *clock.Fake
	svc    *Service
	boot   *BootstrapResult
}

func newStoreAndSealer(t testing.TB) (store.Store, seal.Sealer) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "keyhaven.db"))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, seal.RootKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	root, err := seal.RootFromBytes(key)
	if err != nil {
		t.Fatal(err)
	}
	return st, seal.NewEnvelope(st, root)
}

func newEnv(t testing.TB, opts ...func(*Options)) *env {
	t.Helper()
	st, sealer := newStoreAndSealer(t)
	e := &env{t: t, ctx: context.Background(), st: st, sealer: sealer, clk: clock.NewFake(testStart)}
	e.svc = e.replica(opts...)
	boot, err := e.svc.Bootstrap(e.ctx)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e.boot = boot
	return e
}

// replica returns another Service sharing the env's store, sealer and clock.
func (e *env) replica(opts ...func(*Options)) *Service {
	e.t.Helper()
	o := Options{BaseURL: testBase}
	for _, f := range opts {
		f(&o)
	}
	svc, err := New(e.st, e.sealer, e.clk, o)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return svc
}

func (e *env) user(upn, password string) *User {
	e.t.Helper()
	u, err := e.svc.CreateUser(e.ctx, CreateUserRequest{UserPrincipalName: upn, Password: password})
	if err != nil {
		e.t.Fatalf("CreateUser: %v", err)
	}
	return u
}

func (e *env) app(name string) (*Application, *ServicePrincipal) {
	e.t.Helper()
	a, sp, err := e.svc.CreateApplication(e.ctx, "", name)
	if err != nil {
		e.t.Fatalf("CreateApplication: %v", err)
	}
	return a, sp
}

func (e *env) mustVerify(tok string) *principal.Principal {
	e.t.Helper()
	p, err := e.svc.Verify(e.ctx, tok)
	if err != nil {
		e.t.Fatalf("Verify: %v", err)
	}
	return p
}

// claimsOf decodes a JWT's payload without verification (tests only).
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func headerOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// signWithService signs arbitrary claims with the service's active key, to
// build tokens that are correctly signed but wrong in content.
func signWithService(t *testing.T, s *Service, claims any) string {
	t.Helper()
	ks, err := s.keySetFor(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(ks.signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// wantAzErr asserts err is an *azerr.Error with status and code.
func wantAzErr(t *testing.T, err error, status int, code string) {
	t.Helper()
	var ae *azerr.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want *azerr.Error %d %s, got %v", status, code, err)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("want %d %s, got %d %s (%s)", status, code, ae.Status, ae.Code, ae.Message)
	}
}

func asAz(err error) (*azerr.Error, bool) {
	var ae *azerr.Error
	ok := errors.As(err, &ae)
	return ae, ok
}

// testCert is a self-signed certificate and its key.
type testCert struct {
	key  *rsa.PrivateKey
	der  []byte
	pem  []byte
	x5t  string
	cert *x509.Certificate
}

func newTestCert(t *testing.T, notAfter time.Time) *testCert {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "test-client"},
		NotBefore: testStart.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha1.Sum(der)
	return &testCert{key: key, der: der, cert: cert,
		pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		x5t: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// assertion builds a client assertion signed by key with the x5t header.
func assertion(t *testing.T, key *rsa.PrivateKey, x5t, clientID, aud string, now time.Time, life time.Duration) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if x5t != "" {
		opts = opts.WithHeader("x5t", x5t)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(sig).Claims(map[string]any{"iss": clientID, "sub": clientID, "aud": aud,
		"jti": newGUID(), "nbf": now.Unix(), "exp": now.Add(life).Unix()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// postToken posts a form to the token endpoint of tenant.
func postToken(t *testing.T, h http.Handler, tenant string, form url.Values) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/"+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, h, req)
}

func do(t *testing.T, h http.Handler, req *http.Request) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	m := map[string]any{}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("response is not JSON (%d): %q", rec.Code, rec.Body.String())
		}
	}
	return rec.Code, m
}

// oauthCode returns the first AADSTS code of an OAuth error body.
func oauthCode(m map[string]any) int {
	codes, _ := m["error_codes"].([]any)
	if len(codes) == 0 {
		return 0
	}
	f, _ := codes[0].(float64)
	return int(f)
}

// allowObjects is a Decider granting everything to the listed principals.
type allowObjects map[string]bool

func (a allowObjects) Decide(_ context.Context, req authz.Request) (authz.Decision, error) {
	if req.Principal != nil && a[req.Principal.ObjectID] && req.Scope == "/" {
		return authz.Decision{Allowed: true, Reason: "test"}, nil
	}
	return authz.Decision{Reason: "denied by test"}, nil
}

var storeListAll = store.ListOptions{}
