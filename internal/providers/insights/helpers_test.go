package insights

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
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/providers/storage"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	base   = "https://localhost:8443"
	tenant = "22222222-2222-2222-2222-222222222222"
	sub1   = "11111111-1111-1111-1111-111111111111"
	oid    = "33333333-3333-3333-3333-333333333333"
	dsV    = "?api-version=2021-05-01-preview"
	stV    = "?api-version=2023-01-01"
	kvV    = "?api-version=2024-11-01"
	rgV    = "?api-version=2021-04-01"
	lockV  = "?api-version=2020-05-01"
)

func rgPath(rg string) string { return "/subscriptions/" + sub1 + "/resourceGroups/" + rg }
func vaultID(rg, name string) string {
	return rgPath(rg) + "/providers/Microsoft.KeyVault/vaults/" + name
}
func acctID(rg, name string) string {
	return rgPath(rg) + "/providers/Microsoft.Storage/storageAccounts/" + name
}
func settingPath(resource, name string) string {
	return resource + "/providers/Microsoft.Insights/diagnosticSettings/" + name
}

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

func (d *denyDecider) set(action string, deny bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deny[action] = deny
}

type env struct {
	t   *testing.T
	srv *arm.Server
	sp  *storage.Provider
	ip  *Provider
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
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC))
	dec := &denyDecider{deny: map[string]bool{}}
	srv := arm.New(st, dec, clk, arm.Options{BaseURL: base, TenantID: tenant, SyncOperations: true})
	t.Cleanup(srv.Wait)
	kvp := keyvault.New(st, clk, keyvault.Options{})
	sp := storage.New(st, clk, storage.Options{})
	exists := authorization.ExistsVia(kvp, sp)
	ip := New(st, clk, Options{Storage: sp, Decider: dec, ResourceExists: func(ctx context.Context, id string) (bool, error) {
		rid, err := arm.ParseResourceID(id)
		if err != nil {
			return false, err
		}
		return exists(ctx, rid)
	}})
	locks := authorization.New(authz.New(st, clk), st, clk, authorization.Options{})
	for _, p := range []arm.Provider{kvp, sp, ip, locks} {
		srv.Register(p)
	}
	srv.AddWriteGuard(locks)
	if _, err := srv.CreateSubscription(ctx, sub1, "s", tenant); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: srv, sp: sp, ip: ip, dec: dec, clk: clk, ctx: ctx,
		p: &principal.Principal{TenantID: tenant, ObjectID: oid, Kind: principal.User, UPN: "admin@keyhaven.local", Audience: base}}
	for _, rg := range []string{"rg1", "rg2"} {
		e.must("PUT", rgPath(rg)+rgV, map[string]any{"location": "westeurope"}, 201)
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
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
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

func (e *env) vault(rg, name string) string {
	e.t.Helper()
	e.must("PUT", vaultID(rg, name)+kvV, map[string]any{"location": "westeurope", "properties": map[string]any{
		"tenantId": tenant, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{}}}, 201)
	return vaultID(rg, name)
}

func (e *env) account(rg, name string) string {
	e.t.Helper()
	e.must("PUT", acctID(rg, name)+stV, map[string]any{"location": "westeurope", "kind": "StorageV2",
		"sku": map[string]any{"name": "Standard_ZRS"}, "tags": map[string]string{"vault": name}}, 200)
	return acctID(rg, name)
}

// auditBody is a setting sending AuditEvent to acct, with retention days
// when > 0.
func auditBody(acct string, days int) map[string]any {
	l := map[string]any{"category": "AuditEvent", "enabled": true}
	if days > 0 {
		l["retentionPolicy"] = map[string]any{"enabled": true, "days": days}
	}
	return map[string]any{"properties": map[string]any{"storageAccountId": acct, "logs": []any{l}}}
}
