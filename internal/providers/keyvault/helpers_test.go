package keyvault

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

const (
	base    = armtest.Base
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
	*armtest.Env
	kv     *Provider
	dec    *armtest.Deny
	purger *fakePurger
}

func newEnv(t *testing.T, opts arm.Options) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{}), dec: &armtest.Deny{}, purger: &fakePurger{}}
	opts.BaseURL, opts.TenantID = base, tenant1
	srv := e.Serve(e.dec, opts)
	e.kv = New(e.Store, e.Clock, Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	e.kv.SetDataPurger(e.purger)
	srv.Register(e.kv)
	e.Subscriptions(tenant1, sub1, sub2)
	e.Subscriptions(tenant2, sub3)
	e.Caller = armtest.User(tenant1, oid, "admin@keyhaven.local")
	e.ResourceGroups(e.Caller, sub1, "rg1", "rg2")
	e.ResourceGroups(e.Caller, sub2, "rg1")
	e.ResourceGroups(e.Caller, sub3, "rg1")
	return e
}

type result = armtest.Result

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
	e.T.Helper()
	return e.Must("PUT", vaultPath(sub, rg, name)+kv, vaultReq(mods...), 201).JSON(e.T)
}

func (e *env) internalID(name string) string {
	e.T.Helper()
	vi, err := e.kv.LookupVault(context.Background(), name)
	if err != nil {
		e.T.Fatalf("LookupVault(%s): %v", name, err)
	}
	return vi.InternalID
}

// purgeAndWait purges a deleted vault through the API and polls the
// operation to its end.
func (e *env) purgeAndWait(sub, loc, name string) map[string]any {
	e.T.Helper()
	r := e.Must("POST", deletedPath(sub, loc, name)+"/purge"+kv, nil, 202)
	async := r.Header().Get("Azure-AsyncOperation")
	if async == "" || r.Header().Get("Location") == "" {
		e.T.Fatalf("purge without operation headers: %v", r.Header())
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m := e.Must("GET", async, nil, 200).JSON(e.T)
		if m["status"] != "InProgress" {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.T.Fatal("purge did not finish")
	return nil
}
