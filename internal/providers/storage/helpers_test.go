package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	base   = "https://localhost:8443"
	tenant = "22222222-2222-2222-2222-222222222222"
	sub1   = "11111111-1111-1111-1111-111111111111"
	sub2   = "44444444-4444-4444-4444-444444444444"
	oid    = "33333333-3333-3333-3333-333333333333"
	stV    = "?api-version=2023-01-01"
	rgV    = "?api-version=2021-04-01"
	lockV  = "?api-version=2020-05-01"
)

func rgPath(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }
func acctPath(sub, rg, name string) string {
	return rgPath(sub, rg) + "/providers/Microsoft.Storage/storageAccounts/" + name
}
func containersPath(acct string) string { return acct + "/blobServices/default/containers" }

// denyDecider allows everything but the listed actions.
type denyDecider struct {
	mu   sync.Mutex
	deny map[string]bool
}

func (d *denyDecider) Decide(_ context.Context, req authz.Request) (authz.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return authz.Decision{Allowed: !d.deny[req.Action]}, nil
}

type env struct {
	t   *testing.T
	st  store.Store
	srv *arm.Server
	sp  *Provider
	dec *denyDecider
	clk *clock.Fake
	p   *principal.Principal
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	dec := &denyDecider{deny: map[string]bool{}}
	srv := arm.New(st, dec, clk, arm.Options{BaseURL: base, TenantID: tenant, SyncOperations: true})
	t.Cleanup(srv.Wait)
	sp := New(st, clk, Options{})
	srv.Register(sp)
	// The real locks provider, so deletes meet the real write guard.
	locks := authorization.New(authz.New(st, clk), st, clk, authorization.Options{})
	srv.Register(locks)
	srv.AddWriteGuard(locks)
	for _, s := range []string{sub1, sub2} {
		if _, err := srv.CreateSubscription(ctx, s, "s", tenant); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, st: st, srv: srv, sp: sp, dec: dec, clk: clk, ctx: ctx,
		p: &principal.Principal{TenantID: tenant, ObjectID: oid, Kind: principal.User, UPN: "admin@keyhaven.local", Audience: base}}
	for _, g := range []struct{ sub, rg string }{{sub1, "rg1"}, {sub1, "rg2"}, {sub2, "rg1"}} {
		e.must("PUT", rgPath(g.sub, g.rg)+rgV, map[string]any{"location": "westeurope"}, 201)
	}
	return e
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

func (e *env) do(method, path string, body any) result {
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
	req = req.WithContext(principal.WithInfo(req.Context(), &principal.Info{Principal: e.p}))
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return result{rec}
}

func (e *env) must(method, path string, body any, status int) result {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.Code != status {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Code, status, r.Body.String())
	}
	return r
}

func acctBody(sku string, tags map[string]string) map[string]any {
	b := map[string]any{"location": "westeurope", "sku": map[string]any{"name": sku}, "kind": "StorageV2"}
	if tags != nil {
		b["tags"] = tags
	}
	return b
}

func (e *env) createAccount(sub, rg, name string) string {
	e.t.Helper()
	e.must("PUT", acctPath(sub, rg, name)+stV, acctBody("Standard_ZRS", nil), 200)
	return acctPath(sub, rg, name)
}
