package authorization

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

const (
	base    = armtest.Base
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
	return armtest.User(tenant, oid, oid[:8]+"@keyhaven.local")
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
	*armtest.Env
	engine *authz.Engine
	prov   *Provider
	kv     *keyvault.Provider
	known  map[string]bool // principals PrincipalExists knows
}

// newEnv wires the real pieces: SQLite store, authz engine as the ARM
// decider, keyvault and authorization providers, the lock guard. sub1 has
// groups rg1 and rg2, rg1 has vaults kva and kvb; sub2 has rg1.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{}), known: map[string]bool{}}
	ctx, st, clk := e.Ctx, e.Store, e.Clock
	e.engine = authz.New(st, clk)
	srv := e.Serve(e.engine, arm.Options{BaseURL: base, TenantID: tenant, SyncOperations: true, PageSize: 50})
	e.kv = keyvault.New(st, clk, keyvault.Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	srv.Register(e.kv)
	e.prov = New(e.engine, st, clk, Options{
		ResourceExists: ExistsVia(e.kv),
		PrincipalExists: func(_ context.Context, id string) (bool, error) {
			return e.known[strings.ToLower(id)], nil
		},
	})
	srv.Register(e.prov)
	srv.AddWriteGuard(e.prov)

	e.Subscriptions(tenant, sub1, sub2)
	for _, g := range []struct {
		p           *principal.Principal
		role, scope string
	}{
		{ownerP, authz.RoleOwner, "/"},
		{contributorP, authz.RoleContributor, "/subscriptions/" + sub1},
		{uaaP, authz.RoleUserAccessAdministrator, "/subscriptions/" + sub1},
		{readerP, authz.RoleReader, "/subscriptions/" + sub1},
	} {
		if _, _, err := e.engine.CreateAssignment(ctx, authz.Assignment{Name: newGUID(t), Scope: g.scope,
			RoleDefinitionID: g.role, PrincipalID: g.p.ObjectID}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{pidA, pidB, ownerP.ObjectID, contributorP.ObjectID, uaaP.ObjectID, readerP.ObjectID, strangerP.ObjectID} {
		e.known[id] = true
	}
	e.ResourceGroups(ownerP, sub1, "rg1", "rg2")
	e.ResourceGroups(ownerP, sub2, "rg1")
	for _, v := range []string{"kva", "kvb"} {
		e.MustAs(ownerP, "PUT", vaultPath(sub1, "rg1", v)+kvV, vaultReq(), 201)
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

type result = armtest.Result

// wantErr asserts an error answer's status and code.
func (e *env) wantErr(r result, status int, code string) {
	e.T.Helper()
	if r.Code != status || r.ErrCode(e.T) != code {
		e.T.Fatalf("got %d %s, want %d %s: %s", r.Code, r.ErrCode(e.T), status, code, r.Body.String())
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
