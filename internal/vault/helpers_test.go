package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	tenant1 = "11111111-1111-1111-1111-111111111111"
	tenant2 = "22222222-2222-2222-2222-222222222222"
	vaultRG = "/subscriptions/sub1/resourceGroups/RG1/providers/Microsoft.KeyVault/vaults/"
	aud     = "https://vault.localhost:8443"
	apiNew  = "2026-04-01"
)

// fakeDir is a Directory over a map.
type fakeDir struct {
	mu     sync.Mutex
	vaults map[string]*VaultInfo
}

func (d *fakeDir) LookupVault(_ context.Context, name string) (*VaultInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vaults[strings.ToLower(name)]
	if !ok {
		return nil, azerr.NotFound("VaultNotFound", "Vault %s was not found.", name)
	}
	c := *v
	return &c, nil
}

func (d *fakeDir) put(v *VaultInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.vaults[strings.ToLower(v.Name)] = v
}

// fakeDecider allows what allow says and records every request.
type fakeDecider struct {
	mu    sync.Mutex
	allow func(authz.Request) bool
	reqs  []authz.Request
}

func (f *fakeDecider) Decide(_ context.Context, req authz.Request) (authz.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reqs = append(f.reqs, req)
	if f.allow == nil || f.allow(req) {
		return authz.Decision{Allowed: true, Reason: "test"}, nil
	}
	return authz.Decision{Reason: "denied by test"}, nil
}

func (f *fakeDecider) last() authz.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs[len(f.reqs)-1]
}

type env struct {
	t     testing.TB
	svc   *Service
	st    *sqlite.Store
	dir   *fakeDir
	dec   *fakeDecider
	clk   *clock.Fake
	path  string
	alice *principal.Principal
}

func newVault(name, tenant string) *VaultInfo {
	return &VaultInfo{
		InternalID: "iid-" + name, Name: name, ResourceID: vaultRG + name,
		TenantID: tenant, SubscriptionID: "sub1", Location: "westeurope",
		EnableRBACAuthorization: true, SoftDeleteRetentionInDays: 90, PublicNetworkAccess: "Enabled",
	}
}

func newPrincipal(tenant, oid string) *principal.Principal {
	return &principal.Principal{TenantID: tenant, ObjectID: oid, AppID: "app-" + oid, Kind: principal.User, Audience: aud}
}

func newEnv(t testing.TB, mod ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root, err := seal.RootFromBytes(bytes.Repeat([]byte{7}, seal.RootKeySize))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{
		t: t, st: st, path: dir,
		dir:   &fakeDir{vaults: map[string]*VaultInfo{}},
		dec:   &fakeDecider{},
		clk:   clock.NewFake(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)),
		alice: newPrincipal(tenant1, "oid-alice"),
	}
	e.dir.put(newVault("v1", tenant1))
	cfg := Config{
		Store: st, Sealer: seal.NewEnvelope(st, root), Directory: e.dir, Decider: e.dec, Clock: e.clk,
		VaultDomain: "vault.localhost", Port: 8443, AuthorityBase: "https://localhost:8443",
	}
	for _, m := range mod {
		m(&cfg)
	}
	e.svc, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// call is one request.
type call struct {
	vault  string // default v1
	method string
	target string // path and query; api-version added when absent
	body   string
	p      *principal.Principal // default alice; use anon for none
	anon   bool
	ip     string
	info   *principal.Info // filled in, for audit assertions
}

func (e *env) serve(c call) *httptest.ResponseRecorder {
	e.t.Helper()
	if c.vault == "" {
		c.vault = "v1"
	}
	if !strings.Contains(c.target, "api-version=") {
		sep := "?"
		if strings.Contains(c.target, "?") {
			sep = "&"
		}
		c.target += sep + "api-version=" + apiNew
	}
	var body io.Reader = http.NoBody
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequest(c.method, "https://"+c.vault+".vault.localhost:8443"+c.target, body)
	info := c.info
	if info == nil {
		info = &principal.Info{}
	}
	info.ClientIP = c.ip
	if info.ClientIP == "" {
		info.ClientIP = "192.0.2.10"
	}
	if !c.anon {
		info.Principal = c.p
		if info.Principal == nil {
			info.Principal = e.alice
		}
	}
	r = r.WithContext(principal.WithInfo(r.Context(), info))
	w := httptest.NewRecorder()
	e.svc.ServeVault(w, r, c.vault, "https://"+c.vault+".vault.localhost:8443")
	return w
}

// do serves and decodes a JSON response into a generic map.
func (e *env) do(method, target, body string) (int, map[string]any) {
	e.t.Helper()
	w := e.serve(call{method: method, target: target, body: body})
	return w.Code, decodeMap(e.t, w)
}

func decodeMap(t testing.TB, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if w.Body.Len() == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, w.Body.String())
	}
	return m
}

// mustSet sets a secret and returns its bundle.
func (e *env) mustSet(name, body string) map[string]any {
	e.t.Helper()
	code, m := e.do("PUT", "/secrets/"+name, body)
	if code != 200 {
		e.t.Fatalf("set %s: %d %v", name, code, m)
	}
	return m
}

// errCode returns the error code and inner code of an Azure error body.
func errCode(t testing.TB, w *httptest.ResponseRecorder) (string, string, string) {
	t.Helper()
	var b struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Inner   *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("error body is not JSON: %s", w.Body.String())
	}
	if got := w.Header().Get("x-ms-error-code"); got != b.Error.Code {
		t.Fatalf("x-ms-error-code %q != body code %q", got, b.Error.Code)
	}
	inner := ""
	if b.Error.Inner != nil {
		inner = b.Error.Inner.Code
	}
	return b.Error.Code, inner, b.Error.Message
}

// snapshot is every record in the store.
func (e *env) snapshot() map[string]string {
	e.t.Helper()
	recs, err := e.st.List(context.Background(), "", store.ListOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	m := make(map[string]string, len(recs))
	for _, r := range recs {
		m[r.Key] = string(r.Value)
	}
	return m
}

func versionOf(t testing.TB, bundle map[string]any) string {
	t.Helper()
	id, _ := bundle["id"].(string)
	parts := strings.Split(id, "/")
	return parts[len(parts)-1]
}

func attr(m map[string]any, k string) any {
	a, _ := m["attributes"].(map[string]any)
	return a[k]
}

// failReader fails the test if anyone reads it.
type failReader struct{ t testing.TB }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("request body was read")
	return 0, io.EOF
}
