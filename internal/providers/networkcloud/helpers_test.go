package networkcloud

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

const (
	base  = armtest.Base
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
// service, keyvault provider and ARM server (authorization is not under
// test: everything is allowed); Caller is the bootstrap admin.
type env struct {
	*armtest.Env
	ids *identity.Service
	p   *Provider
	eng *fakeEngine
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{Now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}), eng: newFakeEngine()}
	ids, boot := e.Identity()
	e.ids = ids
	srv := e.Serve(armtest.AllowAll{}, arm.Options{BaseURL: base, TenantID: boot.TenantID, SyncOperations: true})
	kv := keyvault.New(e.Store, e.Clock, keyvault.Options{VaultDomain: "vault.localhost", VaultPort: 8443})
	srv.Register(kv)
	e.p = New(e.Store, e.Clock, ids, kv, Options{VaultDomain: "vault.localhost", VaultPort: 8443, Tenants: srv, Logger: slog.New(slog.DiscardHandler)})
	e.p.SetEngine(e.eng)
	srv.Register(e.p)
	e.Caller = armtest.User(boot.TenantID, boot.AdminObjectID, boot.AdminUPN)
	e.Subscriptions(boot.TenantID, sub1)
	e.ResourceGroups(e.Caller, sub1, "rg1", "rg2")
	return e
}

func (e *env) uai(name string) *identity.ManagedIdentity {
	e.T.Helper()
	mi, err := e.ids.CreateUserAssigned(e.Ctx, "", uaiID(name))
	if err != nil {
		e.T.Fatal(err)
	}
	return mi
}

func (e *env) vault(name string) {
	e.T.Helper()
	e.Must("PUT", vaultID("rg1", name)+kvV, map[string]any{"location": "westeurope",
		"properties": map[string]any{"tenantId": e.Caller.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "enableRbacAuthorization": true}}, 201)
}

// manager creates a cluster manager with the given identity block (nil for none).
func (e *env) manager(name string, ident any) map[string]any {
	e.T.Helper()
	body := map[string]any{"location": "westeurope", "properties": map[string]any{
		"fabricControllerId": "/subscriptions/" + sub1 + "/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/fc1",
	}}
	if ident != nil {
		body["identity"] = ident
	}
	return e.Must("PUT", cmPath(name)+v, body, 201).JSON(e.T)
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
