package databoxedge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/authorization"
	"github.com/keyhaven/keyhaven/internal/providers/insights"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/providers/msi"
	"github.com/keyhaven/keyhaven/internal/providers/storage"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
	"github.com/keyhaven/keyhaven/internal/vault"
)

const (
	sub1  = "11111111-1111-1111-1111-111111111111"
	v     = "?api-version=2023-12-01"
	kvV   = "?api-version=2023-07-01"
	stV   = "?api-version=2023-01-01"
	dsV   = "?api-version=2021-05-01-preview"
	lockV = "?api-version=2020-05-01"
)

func rgPath(rg string) string { return "/subscriptions/" + sub1 + "/resourceGroups/" + rg }
func devPath(rg, name string) string {
	return rgPath(rg) + "/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices/" + name
}
func vaultPath(rg, name string) string {
	return rgPath(rg) + "/providers/Microsoft.KeyVault/vaults/" + name
}
func lockPath(scope, name string) string {
	return scope + "/providers/Microsoft.Authorization/locks/" + name + lockV
}

// env is the provider with everything activation composes — keyvault,
// storage, insights, locks, the vault data plane and msi — on a real store
// and identity service. Authorization allows everything unless dec denies
// an action; Caller is the bootstrap admin.
type env struct {
	*armtest.Env
	ids    *identity.Service
	boot   *identity.BootstrapResult
	dec    *armtest.Deny
	kv     *keyvault.Provider
	vaults *vault.Service
	p      *Provider
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{Now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}), dec: &armtest.Deny{}}
	st, clk := e.Store, e.Clock
	e.ids, e.boot = e.Identity()
	srv := e.Serve(e.dec, arm.Options{BaseURL: armtest.Base, TenantID: e.boot.TenantID, SyncOperations: true})
	key := make([]byte, seal.RootKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	root, err := seal.RootFromBytes(key)
	if err != nil {
		t.Fatal(err)
	}
	engine := authz.New(st, clk)
	e.kv = keyvault.New(st, clk, keyvault.Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	e.vaults, err = vault.New(vault.Config{Store: st, Sealer: seal.NewEnvelope(st, root), Directory: e.kv, Decider: engine,
		Clock: clk, VaultDomain: "vault.localhost", Port: 8443, AuthorityBase: armtest.Base})
	if err != nil {
		t.Fatal(err)
	}
	e.kv.SetDataPurger(e.vaults)
	sp := storage.New(st, clk, storage.Options{})
	ip := insights.New(st, clk, insights.Options{Storage: sp})
	locks := authorization.New(engine, st, clk, authorization.Options{})
	mp := msi.New(e.ids, engine, st, clk, msi.Options{MIEndpoint: "http://127.0.0.1:8444/msi/token", Tenants: srv})
	e.p = New(st, clk, e.ids, Options{Vaults: e.kv, Locks: locks, Accounts: sp, Settings: ip, DataPlane: e.vaults,
		Workloads: mp, VaultDomain: "vault.localhost", Logger: slog.New(slog.DiscardHandler)})
	for _, p := range []arm.Provider{e.kv, sp, ip, locks, mp, e.p} {
		srv.Register(p)
	}
	srv.AddWriteGuard(locks)
	e.Caller = armtest.User(e.boot.TenantID, e.boot.AdminObjectID, e.boot.AdminUPN)
	e.Subscriptions(e.boot.TenantID, sub1)
	e.ResourceGroups(e.Caller, sub1, "rg1", "rg2")
	return e
}

// device creates device name in rg1 and returns its rendering.
func (e *env) device(name string) map[string]any {
	e.T.Helper()
	return e.Must("PUT", devPath("rg1", name)+v, map[string]any{"location": "westeurope",
		"sku": map[string]any{"name": "EdgeP_Base", "tier": "Standard"}}, 201).JSON(e.T)
}

// activate generates an activation key for device name (in rg1).
func (e *env) activate(name string, body any) map[string]any {
	e.T.Helper()
	return e.Must("POST", devPath("rg1", name)+"/generateActivationKey"+v, body, 200).JSON(e.T)
}

func (e *env) extended(name string) map[string]any {
	e.T.Helper()
	return e.Must("POST", devPath("rg1", name)+"/getExtendedInformation"+v, nil, 200).JSON(e.T)["properties"].(map[string]any)
}

func (e *env) alerts(name string) []map[string]any {
	e.T.Helper()
	return e.Must("GET", devPath("rg1", name)+"/alerts"+v, nil, 200).Values(e.T)
}

// devicePrincipal is the device identity as a data-plane caller.
func (e *env) devicePrincipal(name string) *principal.Principal {
	e.T.Helper()
	d, err := e.p.load(e.Ctx, mustID(e.T, devPath("rg1", name)))
	if err != nil {
		e.T.Fatal(err)
	}
	pr, err := e.p.devicePrincipal(e.Ctx, d)
	if err != nil {
		e.T.Fatal(err)
	}
	return pr
}

// secret calls the data plane as pr: GET {vault}/secrets/{name}.
func (e *env) secret(pr *principal.Principal, vaultName, name string) (int, map[string]any) {
	e.T.Helper()
	base := "https://" + vaultName + ".vault.localhost:8443"
	r := httptest.NewRequest("GET", base+"/secrets/"+name+"?api-version=7.4", bytes.NewReader(nil))
	r = r.WithContext(principal.WithInfo(context.Background(), &principal.Info{Principal: pr}))
	w := httptest.NewRecorder()
	e.vaults.ServeVault(w, r, vaultName, base)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

// vaultAudience is what a token for the data plane carries.
func vaultAudience(p *principal.Principal) *principal.Principal {
	c := *p
	c.Audience = "https://vault.localhost:8443"
	return &c
}

func locksAt(e *env, scope string) []string {
	e.T.Helper()
	var names []string
	for _, l := range e.Must("GET", scope+"/providers/Microsoft.Authorization/locks"+lockV, nil, 200).Values(e.T) {
		props := l["properties"].(map[string]any)
		names = append(names, l["name"].(string)+":"+props["level"].(string))
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func mustID(t testing.TB, s string) arm.ResourceID {
	t.Helper()
	id, err := arm.ParseResourceID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
