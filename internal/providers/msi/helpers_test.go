package msi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

const (
	base       = armtest.Base
	sub1       = "11111111-1111-1111-1111-111111111111"
	sub2       = "44444444-4444-4444-4444-444444444444"
	v          = "?api-version=2023-01-31"
	vNew       = "?api-version=2024-11-30"
	rgV        = "?api-version=2021-04-01"
	miEndpoint = "http://127.0.0.1:8444/msi/token"
	vaultAud   = "https://vault.localhost:8443"
)

func rgPath(sub, rg string) string { return "/subscriptions/" + sub + "/resourceGroups/" + rg }
func uaiPath(sub, rg, name string) string {
	return rgPath(sub, rg) + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
}

// env is the provider on a real SQLite store, envelope sealer, identity
// service, authz engine and ARM server; Caller is the bootstrap admin.
type env struct {
	*armtest.Env
	ids    *identity.Service
	engine *authz.Engine
	p      *Provider
	tenant string
}

func newEnv(t *testing.T, armOpts arm.Options, mods ...func(*Options)) *env {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{Now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)})}
	ids, boot := e.Identity()
	e.ids, e.tenant = ids, boot.TenantID
	e.engine = authz.New(e.Store, e.Clock)
	armOpts.BaseURL, armOpts.TenantID, armOpts.SyncOperations = base, boot.TenantID, true
	srv := e.Serve(e.engine, armOpts)
	opts := Options{MIEndpoint: miEndpoint, Tenants: srv}
	for _, m := range mods {
		m(&opts)
	}
	e.p = New(ids, e.engine, e.Store, e.Clock, opts)
	srv.Register(e.p)
	e.Caller = armtest.User(boot.TenantID, boot.AdminObjectID, boot.AdminUPN)
	e.assign(boot.AdminObjectID, authz.RoleOwner, "/")
	e.Subscriptions(boot.TenantID, sub1, sub2)
	e.ResourceGroups(e.Caller, sub1, "rg1", "rg2", "rg10")
	e.ResourceGroups(e.Caller, sub2, "rg1")
	return e
}

// assign gives principalID the role at scope and returns the assignment name.
func (e *env) assign(principalID, role, scope string) string {
	e.T.Helper()
	a, _, err := e.engine.CreateAssignment(e.Ctx, authz.Assignment{Name: uuid.NewString(), Scope: scope,
		RoleDefinitionID: role, PrincipalID: principalID, PrincipalType: authz.PrincipalUser})
	if err != nil {
		e.T.Fatalf("assign %s at %s: %v", role, scope, err)
	}
	return a.Name
}

// user returns a principal (not in the directory: ARM only reads the
// injected principal) with no role assignments.
func (e *env) user() *principal.Principal {
	return armtest.User(e.tenant, uuid.NewString(), "u@keyhaven.local")
}

// create makes a user-assigned identity and returns its rendering.
func (e *env) create(sub, rg, name string) map[string]any {
	e.T.Helper()
	return e.Must("PUT", uaiPath(sub, rg, name)+v, map[string]any{"location": "westeurope"}, 201).JSON(e.T)
}

func props(m map[string]any) map[string]any { p, _ := m["properties"].(map[string]any); return p }

// msiToken asks the managed-identity endpoint for a token with header
// secret; sel is client_id, mi_res_id or object_id ("" for none).
func (e *env) msiToken(secret, sel, val string) (int, map[string]any) {
	e.T.Helper()
	q := url.Values{"api-version": {"2019-08-01"}, "resource": {vaultAud}}
	if sel != "" {
		q.Set(sel, val)
	}
	req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8444/msi/token?"+q.Encode(), nil)
	if secret != "" {
		req.Header.Set("X-IDENTITY-HEADER", secret)
	}
	rec := httptest.NewRecorder()
	e.ids.ManagedIdentityHandler().ServeHTTP(rec, req)
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m
}
