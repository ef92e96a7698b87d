package compat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// Built-in role definition GUIDs (the same as Azure's).
const (
	roleKeyVaultSecretsOfficer = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
	roleKeyVaultSecretsUser    = "4633458b-17de-408a-b874-0445c86b69e6"
	// azureCLIClientID is the public client the Azure CLI signs in with.
	azureCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
	armAPIVersion    = "2021-04-01"
	authzAPIVersion  = "2022-04-01"
)

// env is one running keyhaven server plus what the SDK clients need to talk
// to it. Everything reaches the server only through public SDK options.
type env struct {
	srv    *khtest.Server
	base   string // https://localhost:{port}, no trailing slash
	tenant string
	sub    string
	// counter sees every response of every SDK client built from this env.
	counter *countingTransport
	admin   azcore.TokenCredential

	mu      sync.Mutex
	token   string // admin ARM token for raw requests
	tokenAt time.Time
}

func newEnv(t *testing.T, args ...string) *env {
	t.Helper()
	srv := khtest.Start(t, khtest.Options{Args: args})
	e := &env{srv: srv, base: srv.BaseURL, tenant: srv.Admin.TenantID, sub: srv.Admin.SubscriptionID,
		counter: &countingTransport{next: srv.Transport(), status: map[int]int{}}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs (tail):\n%s", tail(srv.Logs(), 6000))
		}
	})
	// The bootstrap administrator is a user with a password; this credential
	// only drives test setup (the credentials under test are the client
	// secret and managed identity ones).
	//lint:ignore SA1019 the password grant is how the bootstrap administrator signs in
	opts := &azidentity.UsernamePasswordCredentialOptions{ClientOptions: e.clientOptions(), DisableInstanceDiscovery: true}
	cred, err := azidentity.NewUsernamePasswordCredential(e.tenant, azureCLIClientID, srv.Admin.Username, srv.Admin.Password, opts)
	if err != nil {
		t.Fatal(err)
	}
	e.admin = cred
	return e
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// cloudConfig points the SDKs at keyhaven: identity authority and ARM.
func (e *env) cloudConfig() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: e.base + "/",
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: e.base, Audience: e.base},
		},
	}
}

func (e *env) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: &http.Client{Transport: e.counter},
		Cloud:     e.cloudConfig(),
	}
}

func (e *env) armOptions() *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: e.clientOptions()}
}

func (e *env) secretsClient(t *testing.T, vaultName string, cred azcore.TokenCredential) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(e.srv.VaultURL(vaultName), cred, &azsecrets.ClientOptions{ClientOptions: e.clientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) clientSecretCredential(t *testing.T, appID, secret string) *azidentity.ClientSecretCredential {
	t.Helper()
	cred, err := azidentity.NewClientSecretCredential(e.tenant, appID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: e.clientOptions(), DisableInstanceDiscovery: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return cred
}

// armToken is the admin's token for ARM and the Graph-like API (both take
// the base URL as audience).
func (e *env) armToken(t *testing.T) string {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token == "" || time.Since(e.tokenAt) > 30*time.Minute {
		e.token, e.tokenAt = e.srv.AdminToken(t, e.base), time.Now()
	}
	return e.token
}

// rest sends one admin request to the server outside any SDK (setup steps
// with no SDK client: Graph, raw role assignments, keyhaven extensions).
func (e *env) rest(t *testing.T, method, pathOrURL string, body any, out any) int {
	t.Helper()
	u := pathOrURL
	if strings.HasPrefix(u, "/") {
		u = e.base + u
	}
	code, b := e.srv.Do(t, method, u, e.armToken(t), body)
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %d %s: %v", method, pathOrURL, code, b, err)
		}
	}
	if code >= 300 {
		t.Logf("%s %s -> %d %s", method, pathOrURL, code, b)
	}
	return code
}

func (e *env) createResourceGroup(t *testing.T, rg string) string {
	t.Helper()
	p := fmt.Sprintf("/subscriptions/%s/resourcegroups/%s?api-version=%s", e.sub, rg, armAPIVersion)
	if code := e.rest(t, http.MethodPut, p, map[string]any{"location": "local"}, nil); code != 200 && code != 201 {
		t.Fatalf("create resource group %s: %d", rg, code)
	}
	return fmt.Sprintf("/subscriptions/%s/resourceGroups/%s", e.sub, rg)
}

func (e *env) vaultsClient(t *testing.T) *armkeyvault.VaultsClient {
	t.Helper()
	c, err := armkeyvault.NewVaultsClient(e.sub, e.admin, e.armOptions())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *env) vaultParams(rbac bool) armkeyvault.VaultCreateOrUpdateParameters {
	return armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr("local"),
		Properties: &armkeyvault.VaultProperties{
			TenantID:                  to.Ptr(e.tenant),
			SKU:                       &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableRbacAuthorization:   to.Ptr(rbac),
			EnableSoftDelete:          to.Ptr(true),
			SoftDeleteRetentionInDays: to.Ptr[int32](7),
			AccessPolicies:            []*armkeyvault.AccessPolicyEntry{},
		},
	}
}

// createVault creates an RBAC vault through armkeyvault and returns its
// resource ID.
func (e *env) createVault(t *testing.T, rg, name string) string {
	t.Helper()
	ctx := testCtx(t)
	poller, err := e.vaultsClient(t).BeginCreateOrUpdate(ctx, rg, name, e.vaultParams(true), nil)
	if err != nil {
		t.Fatalf("create vault %s: %v", name, err)
	}
	res, err := pollUntilDone(t, ctx, poller)
	if err != nil {
		t.Fatalf("create vault %s: %v", name, err)
	}
	if res.ID == nil {
		t.Fatalf("create vault %s: no id", name)
	}
	return *res.ID
}

type servicePrincipal struct {
	AppID    string
	ObjectID string // service principal object id (the RBAC principal)
	Secret   string
}

// createServicePrincipal registers an application, its service principal and
// a client secret through the Graph-like API.
func (e *env) createServicePrincipal(t *testing.T, name string) servicePrincipal {
	t.Helper()
	var app struct {
		ID    string `json:"id"`
		AppID string `json:"appId"`
	}
	if code := e.rest(t, http.MethodPost, "/v1.0/applications", map[string]any{"displayName": name}, &app); code != 201 && code != 200 {
		t.Fatalf("create application: %d", code)
	}
	var sp struct {
		ID string `json:"id"`
	}
	if code := e.rest(t, http.MethodPost, "/v1.0/servicePrincipals", map[string]any{"appId": app.AppID}, &sp); code != 201 && code != 200 {
		t.Fatalf("create service principal: %d", code)
	}
	var pw struct {
		SecretText string `json:"secretText"`
	}
	if code := e.rest(t, http.MethodPost, "/v1.0/applications/"+app.ID+"/addPassword", map[string]any{}, &pw); code != 200 && code != 201 {
		t.Fatalf("add password: %d", code)
	}
	if app.AppID == "" || sp.ID == "" || pw.SecretText == "" {
		t.Fatalf("service principal incomplete: appId=%q sp=%q secret set=%v", app.AppID, sp.ID, pw.SecretText != "")
	}
	return servicePrincipal{AppID: app.AppID, ObjectID: sp.ID, Secret: pw.SecretText}
}

func (e *env) roleDefinitionID(guid string) string {
	return fmt.Sprintf("/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s", e.sub, guid)
}

// assignRole creates a role assignment with a raw ARM PUT and returns its ID.
func (e *env) assignRole(t *testing.T, scope, roleGUID, principalID string) string {
	t.Helper()
	id := scope + "/providers/Microsoft.Authorization/roleAssignments/" + uuid.NewString()
	body := map[string]any{"properties": map[string]any{
		"roleDefinitionId": e.roleDefinitionID(roleGUID), "principalId": principalID, "principalType": "ServicePrincipal",
	}}
	if code := e.rest(t, http.MethodPut, id+"?api-version="+authzAPIVersion, body, nil); code != 201 && code != 200 {
		t.Fatalf("role assignment PUT %s: %d", id, code)
	}
	return id
}

func (e *env) deleteRoleAssignment(t *testing.T, id string) {
	t.Helper()
	if code := e.rest(t, http.MethodDelete, id+"?api-version="+authzAPIVersion, nil, nil); code != 200 && code != 204 {
		t.Fatalf("role assignment DELETE %s: %d", id, code)
	}
}

// countingTransport counts responses by status code around the harness
// transport, so tests can see the SDK's retries.
type countingTransport struct {
	next   http.RoundTripper
	mu     sync.Mutex
	status map[int]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := c.next
	if r.URL.Scheme == "http" {
		// The loopback managed-identity endpoint is plain HTTP on its own
		// port; the harness transport sends everything to the TLS port.
		next = plainHTTP
	}
	resp, err := next.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.status[resp.StatusCode]++
		c.mu.Unlock()
	}
	return resp, err
}

var plainHTTP = &http.Transport{Proxy: nil}

func (c *countingTransport) count(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status[code]
}

// pollUntilDone polls with the SDK's default frequency (30 s unless the
// server sends retry-after-ms) and fails when polling took long, which would
// mean the server does not tell clients when to poll again.
func pollUntilDone[T any](t *testing.T, ctx context.Context, p *runtime.Poller[T]) (T, error) {
	t.Helper()
	start := time.Now()
	res, err := p.PollUntilDone(ctx, nil)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("long-running operation took %v: server should send retry-after-ms", d)
	}
	return res, err
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// responseError returns err as *azcore.ResponseError or fails the test.
func responseError(t *testing.T, err error) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want *azcore.ResponseError, got %T: %v", err, err)
	}
	return re
}

func wantResponseError(t *testing.T, what string, err error, status int, code string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: want %d %s, got success", what, status, code)
	}
	re := responseError(t, err)
	if re.StatusCode != status || (code != "" && re.ErrorCode != code) {
		t.Fatalf("%s: want %d %s, got %d %s: %v", what, status, code, re.StatusCode, re.ErrorCode, err)
	}
}
