package armtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
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
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

// Base is the public URL of the ARM endpoint under test.
const Base = "https://localhost:8443"

// DefaultNow is where the fake clock starts unless Options.Now says otherwise.
var DefaultNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// Options adjust New.
type Options struct {
	// Now is the fake clock's start; zero means DefaultNow.
	Now time.Time
}

// Env is one test's environment. Server is nil until Serve.
type Env struct {
	T      *testing.T
	Ctx    context.Context
	Store  store.Store
	Clock  *clock.Fake
	Server *arm.Server
	// Caller is the principal Do and Must act as.
	Caller *principal.Principal
}

// New opens a SQLite store in t's temporary directory (closed when the test
// ends) and starts a fake clock.
func New(t *testing.T, opts Options) *Env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := opts.Now
	if now.IsZero() {
		now = DefaultNow
	}
	return &Env{T: t, Ctx: ctx, Store: st, Clock: clock.NewFake(now)}
}

// Serve starts the ARM server on the env's store and clock with dec as its
// decider; opts.BaseURL defaults to Base. The test waits for the server's
// background operations before it ends.
func (e *Env) Serve(dec authz.Decider, opts arm.Options) *arm.Server {
	e.T.Helper()
	if opts.BaseURL == "" {
		opts.BaseURL = Base
	}
	e.Server = arm.New(e.Store, dec, e.Clock, opts)
	e.T.Cleanup(e.Server.Wait)
	return e.Server
}

// Identity starts a real identity service on the env's store, sealing under
// a random root key, and bootstraps its default directory.
func (e *Env) Identity() (*identity.Service, *identity.BootstrapResult) {
	e.T.Helper()
	key := make([]byte, seal.RootKeySize)
	if _, err := rand.Read(key); err != nil {
		e.T.Fatal(err)
	}
	root, err := seal.RootFromBytes(key)
	if err != nil {
		e.T.Fatal(err)
	}
	ids, err := identity.New(e.Store, seal.NewEnvelope(e.Store, root), e.Clock, identity.Options{BaseURL: Base})
	if err != nil {
		e.T.Fatal(err)
	}
	boot, err := ids.Bootstrap(e.Ctx)
	if err != nil {
		e.T.Fatal(err)
	}
	return ids, boot
}

// Subscriptions creates each subscription in tenant.
func (e *Env) Subscriptions(tenant string, subs ...string) {
	e.T.Helper()
	for _, s := range subs {
		if _, err := e.Server.CreateSubscription(e.Ctx, s, "s", tenant); err != nil {
			e.T.Fatal(err)
		}
	}
}

// ResourceGroups creates each group of sub in westeurope, as p.
func (e *Env) ResourceGroups(p *principal.Principal, sub string, groups ...string) {
	e.T.Helper()
	for _, rg := range groups {
		e.MustAs(p, "PUT", "/subscriptions/"+sub+"/resourceGroups/"+rg+"?api-version=2021-04-01",
			map[string]any{"location": "westeurope"}, 201)
	}
}

// User is a user principal of tenant holding a token for Base.
func User(tenant, objectID, upn string) *principal.Principal {
	return &principal.Principal{TenantID: tenant, ObjectID: objectID, Kind: principal.User, UPN: upn, Audience: Base}
}

// DoAs sends a request as p. path is relative to Base (a full URL under
// Base works too); body is nil for none, a string sent as is, or a value
// sent as JSON.
func (e *Env) DoAs(p *principal.Principal, method, path string, body any) Result {
	e.T.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.T.Fatal(err)
		}
	}
	req := httptest.NewRequest(method, Base+strings.TrimPrefix(path, Base), bytes.NewReader(raw))
	req = req.WithContext(principal.WithInfo(req.Context(), &principal.Info{Principal: p}))
	rec := httptest.NewRecorder()
	e.Server.ServeHTTP(rec, req)
	return Result{rec}
}

// Do is DoAs as e.Caller.
func (e *Env) Do(method, path string, body any) Result {
	e.T.Helper()
	return e.DoAs(e.Caller, method, path, body)
}

// MustAs is DoAs that fails the test unless the answer has status.
func (e *Env) MustAs(p *principal.Principal, method, path string, body any, status int) Result {
	e.T.Helper()
	r := e.DoAs(p, method, path, body)
	if r.Code != status {
		e.T.Fatalf("%s %s = %d, want %d: %s", method, path, r.Code, status, r.Body.String())
	}
	return r
}

// Must is MustAs as e.Caller.
func (e *Env) Must(method, path string, body any, status int) Result {
	e.T.Helper()
	return e.MustAs(e.Caller, method, path, body, status)
}

// Result is an answer from the server.
type Result struct{ *httptest.ResponseRecorder }

// JSON decodes the body as a JSON object, failing the test if it is not one.
func (r Result) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", r.Body.String(), err)
	}
	return m
}

// Error is the body's "error" object; the test fails if there is none.
func (r Result) Error(t testing.TB) map[string]any {
	t.Helper()
	e, _ := r.JSON(t)["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error in %s", r.Body.String())
	}
	return e
}

// ErrField is the string f of the error object, "" when absent.
func (r Result) ErrField(t testing.TB, f string) string {
	t.Helper()
	s, _ := r.Error(t)[f].(string)
	return s
}

// ErrCode is the error's code; the test fails if there is none.
func (r Result) ErrCode(t testing.TB) string {
	t.Helper()
	return r.mustErrField(t, "code")
}

// ErrMessage is the error's message; the test fails if there is none.
func (r Result) ErrMessage(t testing.TB) string {
	t.Helper()
	return r.mustErrField(t, "message")
}

func (r Result) mustErrField(t testing.TB, f string) string {
	t.Helper()
	s, ok := r.Error(t)[f].(string)
	if !ok {
		t.Fatalf("no error %s in %s", f, r.Body.String())
	}
	return s
}

// Values returns the "value" array of a list answer.
func (r Result) Values(t testing.TB) []map[string]any {
	t.Helper()
	raw, _ := r.JSON(t)["value"].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		out = append(out, v.(map[string]any))
	}
	return out
}

// AllowAll is a Decider that allows everything, for tests where
// authorization is not under test.
type AllowAll struct{}

// Decide allows.
func (AllowAll) Decide(context.Context, authz.Request) (authz.Decision, error) {
	return authz.Decision{Allowed: true}, nil
}

// Deny is a Decider that allows everything but the actions set to deny.
// The zero value allows everything; it is safe for concurrent use.
type Deny struct {
	mu   sync.Mutex
	deny map[string]bool
}

// Decide allows unless req.Action is denied.
func (d *Deny) Decide(_ context.Context, req authz.Request) (authz.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return authz.Decision{Allowed: !d.deny[req.Action]}, nil
}

// Set denies action, or allows it again.
func (d *Deny) Set(action string, deny bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.deny == nil {
		d.deny = map[string]bool{}
	}
	d.deny[action] = deny
}
