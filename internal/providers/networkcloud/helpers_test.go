package networkcloud

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	base  = "https://localhost:8443"
	sub1  = "11111111-1111-1111-1111-111111111111"
	v     = "?api-version=2025-02-01"
	rgV   = "?api-version=2021-04-01"
	kvV   = "?api-version=2023-07-01"
	bmcPW = "bmc-initial-Pa55word!"
	saPW  = "sa-initial-Pa55word!"
)

func rgPath(rg string) string { return "/subscriptions/" + sub1 + "/resourceGroups/" + rg }
func ncPath(rg, typ, name string) string {
	return rgPath(rg) + "/providers/Microsoft.NetworkCloud/" + typ + "/" + name
}
func cmPath(name string) string { return ncPath("rg1", "clusterManagers", name) }
func clPath(name string) string { return ncPath("rg1", "clusters", name) }
func uaiID(name string) string {
	return rgPath("rg1") + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
}
func vaultID(rg, name string) string {
	return rgPath(rg) + "/providers/Microsoft.KeyVault/vaults/" + name
}

// allowAll is the Decider of these tests: authorization is not under test.
type allowAll struct{}

func (allowAll) Decide(context.Context, authz.Request) (authz.Decision, error) {
	return authz.Decision{Allowed: true}, nil
}

// fakeEngine records what the provider asks of rotation.Engine.
type fakeEngine struct {
	mu        sync.Mutex
	calls     []string
	targets   []rotation.Target
	removed   []string
	requests  []rotationRequest
	status    map[string][]rotation.Status
	state     rotation.ClusterState
	failWith  error
	statusErr error
}

type rotationRequest struct {
	ClusterID string
	Kinds     []rotation.Kind
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{status: map[string][]rotation.Status{}, state: rotation.ClusterState{Healthy: true}}
}

func (f *fakeEngine) UpsertTargets(_ context.Context, ts []rotation.Target) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "UpsertTargets")
	if f.failWith != nil {
		return f.failWith
	}
	for _, t := range ts {
		t.Initial = append([]byte(nil), t.Initial...)
		f.targets = append(f.targets, t)
	}
	return nil
}

func (f *fakeEngine) RemoveCluster(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RemoveCluster")
	f.removed = append(f.removed, id)
	var keep []rotation.Target
	for _, t := range f.targets {
		if !strings.EqualFold(t.ClusterID, id) {
			keep = append(keep, t)
		}
	}
	f.targets = keep
	return nil
}

func (f *fakeEngine) RequestRotation(_ context.Context, id string, kinds []rotation.Kind) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "RequestRotation")
	if f.failWith != nil {
		return f.failWith
	}
	f.requests = append(f.requests, rotationRequest{id, kinds})
	return nil
}

func (f *fakeEngine) Status(_ context.Context, owner string) ([]rotation.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.statusErr != nil {
		return nil, f.statusErr
	}
	return f.status[strings.ToLower(owner)], nil
}

func (f *fakeEngine) ClusterState(context.Context, string) (rotation.ClusterState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, nil
}

func (f *fakeEngine) snapshot() ([]string, []rotation.Target, []rotationRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...), append([]rotation.Target(nil), f.targets...), append([]rotationRequest(nil), f.requests...)
}

// env is the provider on a real SQLite store, envelope sealer, identity
// service, keyvault provider and ARM server.
type env struct {
	t     *testing.T
	ctx   context.Context
	st    store.Store
	clk   *clock.Fake
	ids   *identity.Service
	srv   *arm.Server
	p     *Provider
	eng   *fakeEngine
	admin *principal.Principal
}

func newEnv(t *testing.T) *env {
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
	srv := arm.New(st, allowAll{}, clk, arm.Options{BaseURL: base, TenantID: boot.TenantID, SyncOperations: true})
	t.Cleanup(srv.Wait)
	kv := keyvault.New(st, clk, keyvault.Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	srv.Register(kv)
	p := New(st, clk, ids, kv, Options{VaultDomain: "vault.localhost", VaultPort: 8443, Tenants: srv, Logger: slog.New(slog.DiscardHandler)})
	eng := newFakeEngine()
	p.SetEngine(eng)
	srv.Register(p)
	e := &env{t: t, ctx: ctx, st: st, clk: clk, ids: ids, srv: srv, p: p, eng: eng,
		admin: &principal.Principal{TenantID: boot.TenantID, ObjectID: boot.AdminObjectID, Kind: principal.User, UPN: boot.AdminUPN, Audience: base}}
	if _, err := srv.CreateSubscription(ctx, sub1, "s", boot.TenantID); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"rg1", "rg2"} {
		e.must("PUT", rgPath(g)+rgV, map[string]any{"location": "westeurope"}, 201)
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

func (r result) errField(t *testing.T, f string) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error in %s", r.Body.String())
	}
	s, _ := e[f].(string)
	return s
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
	req := httptest.NewRequest(method, base+path, bytes.NewReader(raw))
	req = req.WithContext(principal.WithInfo(req.Context(), &principal.Info{Principal: e.admin}))
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

func (e *env) uai(name string) *identity.ManagedIdentity {
	e.t.Helper()
	mi, err := e.ids.CreateUserAssigned(e.ctx, "", uaiID(name))
	if err != nil {
		e.t.Fatal(err)
	}
	return mi
}

func (e *env) vault(name string) {
	e.t.Helper()
	e.must("PUT", vaultID("rg1", name)+kvV, map[string]any{"location": "westeurope",
		"properties": map[string]any{"tenantId": e.admin.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "enableRbacAuthorization": true}}, 201)
}

// manager creates a cluster manager with the given identity block (nil for none).
func (e *env) manager(name string, ident any) map[string]any {
	e.t.Helper()
	body := map[string]any{"location": "westeurope", "properties": map[string]any{
		"fabricControllerId": "/subscriptions/" + sub1 + "/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/fc1",
	}}
	if ident != nil {
		body["identity"] = ident
	}
	return e.must("PUT", cmPath(name)+v, body, 201).json(e.t)
}

func rack(machines, appliances []map[string]any) map[string]any {
	r := map[string]any{
		"networkRackId":    "/subscriptions/" + sub1 + "/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkRacks/r1",
		"rackSerialNumber": "b99m99r1",
		"rackSkuId":        "/subscriptions/" + sub1 + "/providers/Microsoft.NetworkCloud/rackSkus/sku1",
	}
	if machines != nil {
		r["bareMetalMachineConfigurationData"] = machines
	}
	if appliances != nil {
		r["storageApplianceConfigurationData"] = appliances
	}
	return r
}

func machine(name string, slot int, endpoint string) map[string]any {
	m := map[string]any{"bmcCredentials": map[string]any{"username": "root", "password": bmcPW},
		"bmcMacAddress": "AA:BB:CC:DD:E7:0" + string(rune('0'+slot)), "bootMacAddress": "AA:BB:CC:F8:71:2E",
		"rackSlot": slot, "serialNumber": "SN" + name}
	if name != "" {
		m["machineName"] = name
	}
	if endpoint != "" {
		m["bmcConnectionString"] = endpoint
	}
	return m
}

func appliance(name string, endpoint string) map[string]any {
	a := map[string]any{"adminCredentials": map[string]any{"username": "pureuser", "password": saPW},
		"rackSlot": 1, "serialNumber": "SA" + name, "storageApplianceName": name}
	if endpoint != "" {
		a["adminEndpoint"] = endpoint
	}
	return a
}

// newClusterBody is a valid cluster of manager cm with two machines and one
// appliance; mods adjust it.
func newClusterBody(cm string, mods ...func(b, props map[string]any)) map[string]any {
	props := map[string]any{
		"aggregatorOrSingleRackDefinition": rack(
			[]map[string]any{machine("bmm1", 1, "redfish+https://127.0.0.1:9443"), machine("bmm2", 2, "")},
			[]map[string]any{appliance("sa1", "postgres://127.0.0.1:5432/test")}),
		"clusterType":     "SingleRack",
		"clusterVersion":  "3.14.2",
		"networkFabricId": "/subscriptions/" + sub1 + "/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkFabrics/nf1",
	}
	b := map[string]any{"location": "westeurope", "extendedLocation": map[string]any{"name": cmPath(cm), "type": "CustomLocation"},
		"properties": props}
	for _, m := range mods {
		m(b, props)
	}
	return b
}

func props(m map[string]any) map[string]any { p, _ := m["properties"].(map[string]any); return p }

func jsonEqual(t *testing.T, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	gb, _ := json.Marshal(got)
	var g any
	_ = json.Unmarshal(gb, &g)
	wb, _ := json.Marshal(w)
	gb, _ = json.Marshal(g)
	if string(gb) != string(wb) {
		t.Fatalf("got  %s\nwant %s", gb, wb)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
