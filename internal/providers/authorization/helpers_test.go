package authorization

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	base    = "https://localhost:8443"
	tenant  = "22222222-2222-2222-2222-222222222222"
	sub1    = "11111111-1111-1111-1111-111111111111"
	sub2    = "44444444-4444-4444-4444-444444444444"
	subNone = "99999999-9999-9999-9999-999999999999"

	raV   = "?api-version=2022-04-01"
	rdV   = "?api-version=2022-05-01-preview"
	lockV = "?api-version=2020-05-01"
	kvV   = "?api-version=2024-11-01"
	rgV   = "?api-version=2021-04-01"

	authzProviders = "/providers/Microsoft.Authorization"
)

// Principals of the tests, each holding one built-in role (see newEnv).
var (
	ownerP       = user("aaaaaaaa-0000-0000-0000-000000000001") // Owner at "/"
	contributorP = user("aaaaaaaa-0000-0000-0000-000000000002") // Contributor at sub1
	uaaP         = user("aaaaaaaa-0000-0000-0000-000000000003") // User Access Administrator at sub1
	readerP      = user("aaaaaaaa-0000-0000-0000-000000000004") // Reader at sub1
	strangerP    = user("aaaaaaaa-0000-0000-0000-000000000005") // no role
)

// Principals that receive assignments in tests (never callers).
const (
	pidA = "bbbbbbbb-0000-0000-0000-00000000000a"
	pidB = "bbbbbbbb-0000-0000-0000-00000000000b"
)

func user(oid string) *principal.Principal {
	return &principal.Principal{TenantID: tenant, ObjectID: oid, Kind: principal.User, UPN: oid[:8] + "@keyhaven.local", Audience: base}
}

func rgPath(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }
func vaultPath(sub, rg, name string) string {
	return rgPath(sub, rg) + "/providers/Microsoft.KeyVault/vaults/" + name
}

// under joins a scope and a path below it, as the SDKs do for "/".
func under(scope, rest string) string {
	if scope == "/" {
		return rest
	}
	return scope + rest
}

type env struct {
	t      *testing.T
	srv    *arm.Server
	engine *authz.Engine
	prov   *Provider
	kv     *keyvault.Provider
	clk    *clock.Fake
	known  map[string]bool // principals PrincipalExists knows
}

// newEnv wires the real pieces: SQLite store, authz engine as the ARM
// decider, keyvault and authorization providers, the lock guard. sub1 has
// groups rg1 and rg2, rg1 has vaults kva and kvb; sub2 has rg1.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := clock.NewFake(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	engine := authz.New(st, clk)
	srv := arm.New(st, engine, clk, arm.Options{BaseURL: base, TenantID: tenant, SyncOperations: true, PageSize: 50})
	t.Cleanup(srv.Wait)
	kvp := keyvault.New(st, clk, keyvault.Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	srv.Register(kvp)
	e := &env{t: t, srv: srv, engine: engine, kv: kvp, clk: clk, known: map[string]bool{}}
	e.prov = New(engine, st, clk, Options{
		ResourceExists: ExistsVia(kvp),
		PrincipalExists: func(_ context.Context, id string) (bool, error) {
			return e.known[strings.ToLower(id)], nil
		},
	})
	srv.Register(e.prov)
	srv.AddWriteGuard(e.prov)

	for _, s := range []string{sub1, sub2} {
		if _, err := srv.CreateSubscription(ctx, s, "s", tenant); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []struct {
		p           *principal.Principal
		role, scope string
	}{
		{ownerP, authz.RoleOwner, "/"},
		{contributorP, authz.RoleContributor, "/subscriptions/" + sub1},
		{uaaP, authz.RoleUserAccessAdministrator, "/subscriptions/" + sub1},
		{readerP, authz.RoleReader, "/subscriptions/" + sub1},
	} {
		if _, _, err := engine.CreateAssignment(ctx, authz.Assignment{Name: newGUID(t), Scope: g.scope,
			RoleDefinitionID: g.role, PrincipalID: g.p.ObjectID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{pidA, pidB, ownerP.ObjectID, contributorP.ObjectID, uaaP.ObjectID, readerP.ObjectID, strangerP.ObjectID} {
		e.known[id] = true
	}
	for _, g := range []struct{ sub, rg string }{{sub1, "rg1"}, {sub1, "rg2"}, {sub2, "rg1"}} {
		e.must(ownerP, "PUT", rgPath(g.sub, g.rg)+rgV, map[string]any{"location": "westeurope"}, 201)
	}
	for _, v := range []string{"kva", "kvb"} {
		e.must(ownerP, "PUT", vaultPath(sub1, "rg1", v)+kvV, vaultReq(), 201)
	}
	return e
}

var guidSeq atomic.Int64

// newGUID returns a fresh, readable GUID.
func newGUID(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("cccccccc-0000-0000-0000-%012d", guidSeq.Add(1))
}

func vaultReq() map[string]any {
	return map[string]any{"location": "westeurope", "properties": map[string]any{
		"tenantId": tenant, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{},
	}}
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
	c, _ := e["code"].(string)
	return c
}

func (r result) errMessage(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// values returns the "value" array of a list answer.
func (r result) values(t *testing.T) []map[string]any {
	t.Helper()
	raw, _ := r.json(t)["value"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		out = append(out, v.(map[string]any))
	}
	return out
}

func (e *env) do(p *principal.Principal, method, path string, body any) result {
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

func (e *env) must(p *principal.Principal, method, path string, body any, status int) result {
	e.t.Helper()
	r := e.do(p, method, path, body)
	if r.Code != status {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Code, status, r.Body.String())
	}
	return r
}

// wantErr asserts an error answer's status and code.
func (e *env) wantErr(r result, status int, code string) {
	e.t.Helper()
	if r.Code != status || r.errCode(e.t) != code {
		e.t.Fatalf("got %d %s, want %d %s: %s", r.Code, r.errCode(e.t), status, code, r.Body.String())
	}
}

func raBody(role, pid string) map[string]any {
	return map[string]any{"properties": map[string]any{
		"roleDefinitionId": "/subscriptions/" + sub1 + "/providers/Microsoft.Authorization/roleDefinitions/" + role,
		"principalId":      pid,
		"principalType":    "User",
	}}
}

func lockBody(level string) map[string]any {
	return map[string]any{"properties": map[string]any{"level": level, "notes": "keep"}}
}

// names returns the "name" of each item.
func names(items []map[string]any) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		n, _ := it["name"].(string)
		out = append(out, n)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
