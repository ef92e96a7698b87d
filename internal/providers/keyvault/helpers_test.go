package keyvault

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
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	base    = "https://localhost:8443"
	tenant1 = "22222222-2222-2222-2222-222222222222"
	tenant2 = "66666666-6666-6666-6666-666666666666"
	sub1    = "11111111-1111-1111-1111-111111111111"
	sub2    = "44444444-4444-4444-4444-444444444444"
	sub3    = "55555555-5555-5555-5555-555555555555" // in tenant2
	oid     = "33333333-3333-3333-3333-333333333333"
	kv      = "?api-version=2024-11-01"
	rgV     = "?api-version=2021-04-01"
)

func rgPath(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }
func vaultPath(sub, rg, name string) string {
	return rgPath(sub, rg) + "/providers/Microsoft.KeyVault/vaults/" + name
}
func deletedPath(sub, loc, name string) string {
	return "/subscriptions/" + sub + "/providers/Microsoft.KeyVault/locations/" + loc + "/deletedVaults/" + name
}

type denyDecider struct {
	mu   sync.Mutex
	deny map[string]bool
}

func (d *denyDecider) Decide(_ context.Context, req authz.Request) (authz.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return authz.Decision{Allowed: !d.deny[req.Action]}, nil
}

type fakePurger struct {
	mu     sync.Mutex
	purged []string
	err    error
}

func (f *fakePurger) PurgeVaultData(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.purged = append(f.purged, id)
	return nil
}

func (f *fakePurger) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.purged...)
}

type env struct {
	t      *testing.T
	st     store.Store
	srv    *arm.Server
	kv     *Provider
	dec    *denyDecider
	clk    *clock.Fake
	purger *fakePurger
	p      *principal.Principal
}

func newEnv(t *testing.T, opts arm.Options) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	dec := &denyDecider{deny: map[string]bool{}}
	opts.BaseURL, opts.TenantID = base, tenant1
	srv := arm.New(st, dec, clk, opts)
	t.Cleanup(srv.Wait)
	kvp := New(st, clk, Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	fp := &fakePurger{}
	kvp.SetDataPurger(fp)
	srv.Register(kvp)
	for _, s := range []struct{ sub, tenant string }{{sub1, tenant1}, {sub2, tenant1}, {sub3, tenant2}} {
		if _, err := srv.CreateSubscription(ctx, s.sub, "s", s.tenant); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{t: t, st: st, srv: srv, kv: kvp, dec: dec, clk: clk, purger: fp,
		p: &principal.Principal{TenantID: tenant1, ObjectID: oid, Kind: principal.User, UPN: "admin@keyhaven.local", Audience: base}}
	for _, g := range []struct{ sub, rg string }{{sub1, "rg1"}, {sub1, "rg2"}, {sub2, "rg1"}, {sub3, "rg1"}} {
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
	return e.doAs(e.p, method, path, body)
}

func (e *env) must(method, path string, body any, status int) result {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.Code != status {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Code, status, r.Body.String())
	}
	return r
}

// vaultReq is a create body; mods edit its properties.
func vaultReq(mods ...func(p map[string]any)) map[string]any {
	props := map[string]any{
		"tenantId":       tenant1,
		"sku":            map[string]any{"family": "A", "name": "standard"},
		"accessPolicies": []any{},
	}
	for _, m := range mods {
		m(props)
	}
	return map[string]any{"location": "westeurope", "properties": props}
}

func set(k string, v any) func(map[string]any) { return func(p map[string]any) { p[k] = v } }

func (e *env) create(sub, rg, name string, mods ...func(map[string]any)) map[string]any {
	e.t.Helper()
	return e.must("PUT", vaultPath(sub, rg, name)+kv, vaultReq(mods...), 201).json(e.t)
}

func (e *env) internalID(name string) string {
	e.t.Helper()
	vi, err := e.kv.LookupVault(context.Background(), name)
	if err != nil {
		e.t.Fatalf("LookupVault(%s): %v", name, err)
	}
	return vi.InternalID
}

// purgeAndWait purges a deleted vault through the API and polls the
// operation to its end.
func (e *env) purgeAndWait(sub, loc, name string) map[string]any {
	e.t.Helper()
	r := e.must("POST", deletedPath(sub, loc, name)+"/purge"+kv, nil, 202)
	async := r.Header().Get("Azure-AsyncOperation")
	if async == "" || r.Header().Get("Location") == "" {
		e.t.Fatalf("purge without operation headers: %v", r.Header())
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m := e.must("GET", async, nil, 200).json(e.t)
		if m["status"] != "InProgress" {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatal("purge did not finish")
	return nil
}
