package msi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	base       = "https://localhost:8443"
	sub1       = "11111111-1111-1111-1111-111111111111"
	sub2       = "44444444-4444-4444-4444-444444444444"
	v          = "?api-version=2023-01-31"
	vNew       = "?api-version=2024-11-30"
	rgV        = "?api-version=2021-04-01"
	miEndpoint = "http://127.0.0.1:8444/msi/token"
	vaultAud   = "https://vault.localhost:8443"
)

func rgPath(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }
func uaiPath(sub, rg, name string) string {
	return rgPath(sub, rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
}

// env is the provider on a real SQLite store, envelope sealer, identity
// service, authz engine and ARM server.
type env struct {
	t      *testing.T
	ctx    context.Context
	clk    *clock.Fake
	ids    *identity.Service
	engine *authz.Engine
	srv    *arm.Server
	p      *Provider
	tenant string
	admin  *principal.Principal
}

func newEnv(t *testing.T, armOpts arm.Options, mods ...func(*Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
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
	clk := clock.NewFake(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	ids, err := identity.New(st, seal.NewEnvelope(st, root), clk, identity.Options{BaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	boot, err := ids.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	engine := authz.New(st, clk)
	armOpts.BaseURL, armOpts.TenantID, armOpts.SyncOperations = base, boot.TenantID, true
	srv := arm.New(st, engine, clk, armOpts)
	t.Cleanup(srv.Wait)
	opts := Options{MIEndpoint: miEndpoint, Tenants: srv}
	for _, m := range mods {
		m(&opts)
	}
	p := New(ids, engine, st, clk, opts)
	srv.Register(p)
	e := &env{t: t, ctx: ctx, clk: clk, ids: ids, engine: engine, srv: srv, p: p, tenant: boot.TenantID,
		admin: &principal.Principal{TenantID: boot.TenantID, ObjectID: boot.AdminObjectID, Kind: principal.User,
			UPN: boot.AdminUPN, Audience: base}}
	e.assign(boot.AdminObjectID, authz.RoleOwner, "/")
	for _, s := range []string{sub1, sub2} {
		if _, err := srv.CreateSubscription(ctx, s, "s", boot.TenantID); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []struct{ sub, rg string }{{sub1, "rg1"}, {sub1, "rg2"}, {sub1, "rg10"}, {sub2, "rg1"}} {
		e.must("PUT", rgPath(g.sub, g.rg)+rgV, map[string]any{"location": "westeurope"}, 201)
	}
	return e
}

// assign gives principalID the role at scope and returns the assignment name.
func (e *env) assign(principalID, role, scope string) string {
	e.t.Helper()
	a, _, err := e.engine.CreateAssignment(e.ctx, authz.Assignment{Name: uuid.NewString(), Scope: scope,
		RoleDefinitionID: role, PrincipalID: principalID, PrincipalType: authz.PrincipalUser})
	if err != nil {
		e.t.Fatalf("assign %s at %s: %v", role, scope, err)
	}
	return a.Name
}

// user returns a principal (not in the directory: ARM only reads the
// injected principal) with no role assignments.
func (e *env) user() *principal.Principal {
	return &principal.Principal{TenantID: e.tenant, ObjectID: uuid.NewString(), Kind: principal.User,
		UPN: "u@keyhaven.local", Audience: base}
}

type result struct{ *httptest.ResponseRecorder }

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", r.Body.String(), err)
	}
	return m
}

func (r result) errCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error in %s", r.Body.String())
	}
	return e["code"].(string)
}

func (r result) errMessage(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	return e["message"].(string)
}

func (e *env) doAs(p *principal.Principal, method, path string, body any) result {
	e.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.t.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, base+strings.TrimPrefix(path, base), bytes.NewReader(raw))
	req = req.WithContext(principal.WithInfo(req.Context(), &principal.Info{Principal: p}))
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return result{rec}
}

func (e *env) do(method, path string, body any) result {
	e.t.Helper()
	return e.doAs(e.admin, method, path, body)
}

func (e *env) must(method, path string, body any, status int) result {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.Code != status {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Code, status, r.Body.String())
	}
	return r
}

// create makes a user-assigned identity and returns its rendering.
func (e *env) create(sub, rg, name string) map[string]any {
	e.t.Helper()
	return e.must("PUT", uaiPath(sub, rg, name)+v, map[string]any{"location": "westeurope"}, 201).json(e.t)
}

func props(m map[string]any) map[string]any { p, _ := m["properties"].(map[string]any); return p }

// msiToken asks the managed-identity endpoint for a token with header
// secret; sel is client_id, mi_res_id or object_id ("" for none).
func (e *env) msiToken(secret, sel, val string) (int, map[string]any) {
	e.t.Helper()
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {vaultAud}}
	if sel != "" {
		q.Set(sel, val)
	}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8444/msi/token?"+q.Encode(), nil)
	if secret != "" {
		req.Header.Set("X-IDENTITY-HEADER", secret)
	}
	rec := httptest.NewRecorder()
	e.ids.ManagedIdentityHandler().ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}
