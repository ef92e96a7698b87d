package storage

import (
	"testing"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

const (
	base   = armtest.Base
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

type env struct {
	*armtest.Env
	sp  *Provider
	dec *armtest.Deny
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{}), dec: &armtest.Deny{}}
	srv := e.Serve(e.dec, arm.Options{BaseURL: base, TenantID: tenant, SyncOperations: true})
	e.sp = New(e.Store, e.Clock, Options{})
	srv.Register(e.sp)
	// The real locks provider, so deletes meet the real write guard.
	locks := authorization.New(authz.New(e.Store, e.Clock), e.Store, e.Clock, authorization.Options{})
	srv.Register(locks)
	srv.AddWriteGuard(locks)
	e.Subscriptions(tenant, sub1, sub2)
	e.Caller = armtest.User(tenant, oid, "admin@keyhaven.local")
	e.ResourceGroups(e.Caller, sub1, "rg1", "rg2")
	e.ResourceGroups(e.Caller, sub2, "rg1")
	return e
}

func acctBody(sku string, tags map[string]string) map[string]any {
	b := map[string]any{"location": "westeurope", "sku": map[string]any{"name": sku}, "kind": "StorageV2"}
	if tags != nil {
		b["tags"] = tags
	}
	return b
}

func (e *env) createAccount(sub, rg, name string) string {
	e.T.Helper()
	e.Must("PUT", acctPath(sub, rg, name)+stV, acctBody("Standard_ZRS", nil), 200)
	return acctPath(sub, rg, name)
}
