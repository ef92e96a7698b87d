package rotation

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/rotation/drivers"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
	"github.com/keyhaven/keyhaven/internal/testutil/redfishtest"
	"github.com/keyhaven/keyhaven/internal/vault"
)

var testStart = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// env is a complete rotation setup on real components: SQLite store,
// envelope sealer, identity service, authz engine and the real vault data
// plane behind an HTTPS test listener (path-form vault URIs), with a fake
// vault directory and archive resolver the tests reconfigure.
type env struct {
	t      testing.TB
	ctx    context.Context
	dbPath string
	root   *seal.Root
	st     store.Store
	sealer seal.Sealer
	clk    *clock.Fake
	ids    *identity.Service
	boot   *identity.BootstrapResult
	az     *authz.Engine
	dir    *fakeDirectory
	res    *fakeResolver
	vsrv   *httptest.Server
	vsvc   *vault.Service
	aud    string
	vc     *countingClient
	bmc    *redfishtest.Server
	drv    *drivers.Registry

	sub, vaultID, vaultName string
	cmID                    string // cluster manager resource ID
	cm                      *identity.ManagedIdentity
	reader                  string // object id of a secrets reader SP
}

func openSQLite(t testing.TB, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newRoot(t testing.TB) *seal.Root {
	key := make([]byte, seal.RootKeySize)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	r, err := seal.RootFromBytes(key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dbPath := filepath.Join(t.TempDir(), "keyhaven.db")
	return newEnvOn(t, openSQLite(t, dbPath), newRoot(t), dbPath)
}

func newEnvOn(t testing.TB, st store.Store, root *seal.Root, dbPath string) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), st: st, root: root, dbPath: dbPath, clk: clock.NewFake(testStart)}
	e.sealer = seal.NewEnvelope(st, root)
	var err error
	e.ids, err = identity.New(st, e.sealer, e.clk, identity.Options{BaseURL: "https://localhost:8443"})
	if err != nil {
		t.Fatal(err)
	}
	if e.boot, err = e.ids.Bootstrap(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.az = authz.New(st, e.clk)
	e.dir = &fakeDirectory{vaults: map[string]*vault.VaultInfo{}}
	e.res = &fakeResolver{archives: map[string]*Archive{}, errs: map[string]error{}, states: map[string]string{}}

	e.vsrv = httptest.NewUnstartedServer(http.HandlerFunc(e.serveVault))
	e.vsrv.StartTLS()
	t.Cleanup(e.vsrv.Close)
	port := e.vsrv.Listener.Addr().(*net.TCPAddr).Port
	e.vsvc, err = vault.New(vault.Config{Store: st, Sealer: e.sealer, Directory: e.dir, Decider: e.az, Clock: e.clk,
		VaultDomain: "vault.localhost", Port: port, AuthorityBase: "https://localhost:8443"})
	if err != nil {
		t.Fatal(err)
	}
	e.aud = fmt.Sprintf("https://vault.localhost:%d", port)
	e.vc = &countingClient{inner: NewHTTPVaultClient(e.vsrv.Client()), counts: map[string]int{}}

	e.sub = uuid.NewString()
	e.vaultName = "kv1"
	e.vaultID = "/subscriptions/" + e.sub + "/resourceGroups/rg-vault/providers/Microsoft.KeyVault/vaults/kv1"
	e.addVault(e.vaultName, e.vaultID)
	e.cmID = "/subscriptions/" + e.sub + "/resourceGroups/rg-nc/providers/Microsoft.NetworkCloud/clusterManagers/cm1"
	if e.cm, err = e.ids.EnsureSystemAssigned(e.ctx, "", e.cmID); err != nil {
		t.Fatal(err)
	}
	return e
}

// vaultURI is the path-form URI of a vault on the test listener.
func (e *env) vaultURI(name string) string { return e.vsrv.URL + "/vaults/" + name + "/" }

func (e *env) addVault(name, id string) *vault.VaultInfo {
	v := &vault.VaultInfo{InternalID: uuid.NewString(), Name: name, ResourceID: id, TenantID: e.boot.TenantID,
		SubscriptionID: e.sub, Location: "westus", EnableRBACAuthorization: true, PublicNetworkAccess: "Enabled",
		SoftDeleteRetentionInDays: 7}
	e.dir.put(v)
	return v
}

// serveVault is the front door for the test listener: authentication as
// the server's middleware does it, then the data plane.
func (e *env) serveVault(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/vaults/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, sub, _ := strings.Cut(rest, "/")
	info := &principal.Info{RequestID: uuid.NewString()}
	info.ClientIP, _, _ = net.SplitHostPort(r.RemoteAddr)
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		p, err := e.ids.Verify(r.Context(), strings.TrimPrefix(h, "Bearer "))
		if err != nil {
			info.AuthError = azerr.From(err).Message
		} else {
			info.Principal = p
		}
	}
	r2 := r.Clone(principal.WithInfo(r.Context(), info))
	r2.URL.Path = "/" + sub
	r2.URL.RawPath = ""
	e.vsvc.ServeVault(w, r2, name, e.vsrv.URL+"/vaults/"+name)
}

func (e *env) assign(principalID, role, scope string) string {
	e.t.Helper()
	name := uuid.NewString()
	if _, _, err := e.az.CreateAssignment(e.ctx, authz.Assignment{Name: name, Scope: scope, RoleDefinitionID: role,
		PrincipalID: principalID, PrincipalType: authz.PrincipalServicePrincipal}); err != nil {
		e.t.Fatal(err)
	}
	return name
}

func (e *env) unassign(scope, name string) {
	e.t.Helper()
	if _, err := e.az.DeleteAssignment(e.ctx, scope, name); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) platform(ctx context.Context) (*principal.Principal, error) {
	return &principal.Principal{TenantID: e.boot.TenantID, ObjectID: e.boot.PlatformObjectID, AppID: e.boot.PlatformAppID,
		Kind: principal.ServicePrincipal, Platform: true}, nil
}

// drivers returns the registry trusting the env's BMC.
func (e *env) drivers() *drivers.Registry {
	e.t.Helper()
	if e.drv == nil {
		opts := drivers.Options{Timeout: 5 * time.Second}
		if e.bmc != nil {
			opts.RootCAs = e.bmc.CertPool()
		}
		d, err := drivers.New(opts)
		if err != nil {
			e.t.Fatal(err)
		}
		e.drv = d
	}
	return e.drv
}

func (e *env) engine(owner string, mods ...func(*Config)) *Service {
	e.t.Helper()
	cfg := Config{Store: e.st, Sealer: e.sealer, Clock: e.clk, Resolver: e.res, Tokens: e.ids, Principals: e.ids,
		Decider: e.az, PlatformPrincipal: e.platform, Vaults: e.dir, VaultClient: e.vc, VaultAudience: e.aud,
		Drivers: e.drivers(), Owner: owner, LeaseTTL: 2 * time.Minute, Workers: 4, BatchSize: 100,
		Backoff: Backoff{Initial: time.Minute, Max: 10 * time.Minute, Jitter: 0.1}}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	s.jitter = func() float64 { return 0.5 } // factor 1: deterministic delays
	return s
}

func (e *env) runOnce(s *Service) int {
	e.t.Helper()
	n, err := s.RunOnce(e.ctx)
	if err != nil {
		e.t.Fatalf("RunOnce: %v", err)
	}
	return n
}

// readSecret reads a secret version through the data plane as a reader SP.
func (e *env) readSecret(vaultName, name, version string) (value, contentType string, tags map[string]string) {
	e.t.Helper()
	b := e.readerGet(vaultName, "secrets/"+name+"/"+version)
	var out struct {
		Value       string            `json:"value"`
		ContentType string            `json:"contentType"`
		Tags        map[string]string `json:"tags"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Value, out.ContentType, out.Tags
}

// versionCount is how many versions of a secret the vault holds.
func (e *env) versionCount(vaultName, name string) int {
	e.t.Helper()
	var out struct {
		Value []json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(e.readerGet(vaultName, "secrets/"+name+"/versions"), &out); err != nil {
		e.t.Fatal(err)
	}
	return len(out.Value)
}

// readerGet GETs a data-plane path as a Key Vault Secrets User of the vault.
func (e *env) readerGet(vaultName, path string) []byte {
	e.t.Helper()
	info, err := e.dir.LookupVault(e.ctx, vaultName)
	if err != nil {
		e.t.Fatal(err)
	}
	if e.reader == "" {
		_, sp, err := e.ids.CreateApplication(e.ctx, "", "reader-"+uuid.NewString()[:8])
		if err != nil {
			e.t.Fatal(err)
		}
		e.reader = sp.ObjectID
		e.assign(sp.ObjectID, authz.RoleKeyVaultSecretsUser, info.ResourceID)
	}
	if info.NetworkACLs != nil {
		// The test reader is not a trusted service: let its address through
		// for this read only.
		e.dir.update(vaultName, func(v *vault.VaultInfo) {
			acl := *v.NetworkACLs
			acl.IPRules = append(append([]vault.IPRule(nil), acl.IPRules...), vault.IPRule{Value: "127.0.0.1"})
			v.NetworkACLs = &acl
		})
		defer e.dir.update(vaultName, func(v *vault.VaultInfo) { v.NetworkACLs = info.NetworkACLs })
	}
	tok, _, err := e.ids.IssueToken(e.ctx, e.reader, e.aud)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.vaultURI(vaultName)+path+"?api-version=7.5", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.vsrv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

func (e *env) creds(s *Service, clusterID string) []CredentialState {
	e.t.Helper()
	cs, err := s.Credentials(e.ctx, clusterID)
	if err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func (e *env) cred(s *Service, clusterID, ownerID string, kind Kind) CredentialState {
	e.t.Helper()
	for _, c := range e.creds(s, clusterID) {
		if c.OwnerID == ownerID && c.Kind == kind {
			return c
		}
	}
	e.t.Fatalf("no credential %s %s", ownerID, kind)
	return CredentialState{}
}

// ---- fakes ----

type fakeDirectory struct {
	mu     sync.Mutex
	vaults map[string]*vault.VaultInfo
}

func (d *fakeDirectory) put(v *vault.VaultInfo) {
	d.mu.Lock()
	d.vaults[strings.ToLower(v.Name)] = v
	d.mu.Unlock()
}

func (d *fakeDirectory) update(name string, f func(v *vault.VaultInfo)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.vaults[strings.ToLower(name)])
}

func (d *fakeDirectory) remove(name string) *vault.VaultInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := d.vaults[strings.ToLower(name)]
	delete(d.vaults, strings.ToLower(name))
	return v
}

func (d *fakeDirectory) LookupVault(_ context.Context, name string) (*vault.VaultInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vaults[strings.ToLower(name)]
	if !ok {
		return nil, azerr.NotFound("VaultNotFound", "The vault '%s' was not found.", name)
	}
	c := *v
	return &c, nil
}

type fakeResolver struct {
	mu       sync.Mutex
	archives map[string]*Archive
	errs     map[string]error
	states   map[string]string
}

func (r *fakeResolver) set(clusterID string, a *Archive) {
	r.mu.Lock()
	r.archives[clusterID] = a
	delete(r.errs, clusterID)
	r.mu.Unlock()
}

func (r *fakeResolver) setErr(clusterID string, err error) {
	r.mu.Lock()
	r.errs[clusterID] = err
	r.mu.Unlock()
}

func (r *fakeResolver) setState(ownerID, state string) {
	r.mu.Lock()
	r.states[ownerID] = state
	r.mu.Unlock()
}

func (r *fakeResolver) ResolveArchive(_ context.Context, clusterID string) (*Archive, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.errs[clusterID]; err != nil {
		return nil, err
	}
	a, ok := r.archives[clusterID]
	if !ok {
		return nil, azerr.BadParameter("unknown cluster")
	}
	c := *a
	return &c, nil
}

func (r *fakeResolver) OwnerState(_ context.Context, ownerID string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.states[ownerID]; ok {
		return s, nil
	}
	return "Ready", nil
}

// countingClient counts successful deliveries per secret name and can fail
// them on demand.
type countingClient struct {
	inner  VaultClient
	mu     sync.Mutex
	counts map[string]int
	fail   error
}

func (c *countingClient) SetSecret(ctx context.Context, vaultURI, name, value, ct string, tags map[string]string, bearer string) (string, error) {
	c.mu.Lock()
	f := c.fail
	c.mu.Unlock()
	if f != nil {
		return "", f
	}
	v, err := c.inner.SetSecret(ctx, vaultURI, name, value, ct, tags, bearer)
	if err == nil {
		c.mu.Lock()
		c.counts[name]++
		c.mu.Unlock()
	}
	return v, err
}

func (c *countingClient) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[name]
}

func (c *countingClient) setFail(err error) { c.mu.Lock(); c.fail = err; c.mu.Unlock() }

// ---- cluster fixtures ----

func (e *env) clusterID(name string) string {
	return "/subscriptions/" + e.sub + "/resourceGroups/rg-nc/providers/Microsoft.NetworkCloud/clusters/" + name
}

// healthyCluster is cluster c1 with one BMC, archiving through the cluster
// manager's identity, which holds the Nexus writer role on the vault.
func (e *env) healthyCluster() string {
	cid := e.clusterID("c1")
	e.newBMC([]string{cid}, 1)
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	e.res.set(cid, e.cmArchive())
	return cid
}

func machineID(clusterID string, i int) string {
	rg := clusterID[:strings.Index(clusterID, "/providers/")]
	return fmt.Sprintf("%s/providers/Microsoft.NetworkCloud/bareMetalMachines/%s-bmm%02d", rg, lastSegment(clusterID), i)
}

// cmArchive is the legacy path: the cluster manager's identity, vault by ID.
func (e *env) cmArchive() *Archive {
	return &Archive{Path: PathClusterManager, VaultURI: e.vaultURI(e.vaultName), VaultID: e.vaultID, IdentityObjectID: e.cm.PrincipalID}
}

// bmcTargets returns BMC targets for n machines on the env's BMC (users
// "{cluster}-u{i}"), registering the accounts' passwords.
func (e *env) bmcTargets(clusterID string, n int) []Target {
	var ts []Target
	for i := range n {
		user := fmt.Sprintf("%s-u%02d", lastSegment(clusterID), i)
		ts = append(ts, Target{ClusterID: clusterID, OwnerID: machineID(clusterID, i), Kind: KindBMC,
			Endpoint: e.bmc.Endpoint, Username: user, Initial: []byte("Initial-" + user)})
	}
	return ts
}

func (e *env) newBMC(clusterIDs []string, n int) {
	accts := map[string]string{}
	for _, c := range clusterIDs {
		for i := range n {
			user := fmt.Sprintf("%s-u%02d", lastSegment(c), i)
			accts[user] = "Initial-" + user
		}
	}
	e.bmc = redfishtest.New(e.t, accts)
	e.drv = nil
}

func wantCode(t testing.TB, got CredentialState, phase, code string) {
	t.Helper()
	if got.Phase != phase || got.Code != code {
		t.Fatalf("credential %s/%s: phase %s code %s (%s), want %s %s", lastSegment(got.OwnerID), got.Kind,
			got.Phase, got.Code, got.Message, phase, code)
	}
}

var errInjected = errors.New("injected")

var storeAll = store.ListOptions{}

// deploy registers targets and requests their rotation, as a cluster
// deployment does: registration alone schedules nothing.
func (e *env) deploy(s *Service, targets []Target) error {
	if err := s.UpsertTargets(e.ctx, targets); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if seen[t.ClusterID] {
			continue
		}
		seen[t.ClusterID] = true
		if err := s.RequestRotation(e.ctx, t.ClusterID, nil); err != nil {
			return err
		}
	}
	return nil
}
