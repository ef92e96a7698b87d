package insights

import (
	"context"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/providers/storage"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

const (
	base   = armtest.Base
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

type env struct {
	*armtest.Env
	sp  *storage.Provider
	ip  *Provider
	dec *armtest.Deny
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{Now: time.Date(2026, 3, 1, 12, 30, 0, 0, time.UTC)}), dec: &armtest.Deny{}}
	st, clk := e.Store, e.Clock
	srv := e.Serve(e.dec, arm.Options{BaseURL: base, TenantID: tenant, SyncOperations: true})
	kvp := keyvault.New(st, clk, keyvault.Options{})
	e.sp = storage.New(st, clk, storage.Options{})
	exists := authorization.ExistsVia(kvp, e.sp)
	e.ip = New(st, clk, Options{Storage: e.sp, Decider: e.dec, ResourceExists: func(ctx context.Context, id string) (bool, error) {
		rid, err := arm.ParseResourceID(id)
		if err != nil {
			return false, err
		}
		return exists(ctx, rid)
	}})
	locks := authorization.New(authz.New(st, clk), st, clk, authorization.Options{})
	for _, p := range []arm.Provider{kvp, e.sp, e.ip, locks} {
		srv.Register(p)
	}
	srv.AddWriteGuard(locks)
	e.Subscriptions(tenant, sub1)
	e.Caller = armtest.User(tenant, oid, "admin@keyhaven.local")
	e.ResourceGroups(e.Caller, sub1, "rg1", "rg2")
	return e
}

func (e *env) vault(rg, name string) string {
	e.T.Helper()
	e.Must("PUT", vaultID(rg, name)+kvV, map[string]any{"location": "westeurope", "properties": map[string]any{
		"tenantId": tenant, "sku": map[string]any{"family": "A", "name": "standard"}, "accessPolicies": []any{}}}, 201)
	return vaultID(rg, name)
}

func (e *env) account(rg, name string) string {
	e.T.Helper()
	e.Must("PUT", acctID(rg, name)+stV, map[string]any{"location": "westeurope", "kind": "StorageV2",
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
