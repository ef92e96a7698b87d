package arm

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

const (
	testBase   = "https://localhost:8443"
	testTenant = "22222222-2222-2222-2222-222222222222"
	testOID    = "33333333-3333-3333-3333-333333333333"
)

// fakeDecider allows everything except the denied actions (matched by
// suffix), and records what it was asked.
type fakeDecider struct {
	mu     sync.Mutex
	deny   map[string]bool
	denyAt map[string]bool // scopes (lowercase) where every action is denied
	asked  []authz.Request
}

func (d *fakeDecider) Decide(_ context.Context, req authz.Request) (authz.Decision, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.asked = append(d.asked, req)
	if d.deny[req.Action] || d.denyAt[strings.ToLower(req.Scope)] {
		return authz.Decision{Allowed: false, Reason: "denied by test"}, nil
	}
	return authz.Decision{Allowed: true}, nil
}

func (d *fakeDecider) last() authz.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked[len(d.asked)-1]
}

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "kh.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

type env struct {
	t   *testing.T
	srv *Server
	st  store.Store
	dec *fakeDecider
	clk *clock.Fake
	p   *principal.Principal
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	st := openStore(t)
	dec := &fakeDecider{deny: map[string]bool{}, denyAt: map[string]bool{}}
	clk := clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if opts.BaseURL == "" {
		opts.BaseURL = testBase + "/"
	}
	opts.TenantID = testTenant
	srv := New(st, dec, clk, opts)
	if _, err := srv.CreateSubscription(context.Background(), sub1, "Default", testTenant); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Wait)
	return &env{t: t, srv: srv, st: st, dec: dec, clk: clk,
		p: &principal.Principal{TenantID: testTenant, ObjectID: testOID, Kind: principal.User, UPN: "admin@keyhaven.local", Audience: testBase}}
}

type result struct {
	*httptest.ResponseRecorder
	info *principal.Info
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q: %v", r.Body.String(), err)
	}
	return m
}

func (r result) errCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	e, _ := m["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error in body %s", r.Body.String())
	}
	c, _ := e["code"].(string)
	return c
}

func (r result) errMessage(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// doAs sends a request as p (nil: unauthenticated). path may be absolute.
func (e *env) doAs(p *principal.Principal, method, path string, body any) result {
	e.t.Helper()
	var rd *bytes.Reader
	switch b := body.(type) {
	case nil:
		rd = bytes.NewReader(nil)
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	path = strings.TrimPrefix(path, testBase)
	req := httptest.NewRequest(method, testBase+path, rd)
	info := &principal.Info{Principal: p}
	req = req.WithContext(principal.WithInfo(req.Context(), info))
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return result{rec, info}
}

func (e *env) do(method, path string, body any) result {
	e.t.Helper()
	return e.doAs(e.p, method, path, body)
}

func (e *env) must(method, path string, body any, status int) result {
	e.t.Helper()
	r := e.do(method, path, body)
	if r.Code != status {
		e.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Code, status, r.Body.String())
	}
	return r
}

// widgets is a fake provider: Test.Widgets/widgets in resource groups, an
// action that runs a gated long-running operation, and group cascade.
type widgets struct {
	mu      sync.Mutex
	items   map[string]GenericResource // by lowercase id
	gate    chan struct{}              // when set, operations wait for it
	failOp  bool
	deleted []string
}

func newWidgets() *widgets { return &widgets{items: map[string]GenericResource{}} }

func (w *widgets) Namespace() string { return "Test.Widgets" }

func (w *widgets) ResourceTypes() []ResourceType {
	return []ResourceType{
		{Name: "widgets", APIVersions: []string{"2020-01-01", "2024-01-01"}, Handler: HandlerFunc(w.serve)},
	}
}

func (w *widgets) wait() {
	w.mu.Lock()
	g := w.gate
	w.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (w *widgets) serve(ctx context.Context, req *Request) (*Response, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case req.Kind == KindCollection:
		var items []GenericResource
		for _, it := range w.items {
			if req.ID.ResourceGroup == "" || strings.Contains(strings.ToLower(it.ID), "/resourcegroups/"+strings.ToLower(req.ID.ResourceGroup)+"/") {
				items = append(items, it)
			}
		}
		p, err := Paginate(req, items, func(g GenericResource) string { return strings.ToLower(g.ID) })
		if err != nil {
			return nil, err
		}
		return OK(p), nil
	case req.Kind == KindAction && req.ActionName == "slowop":
		fail := w.failOp
		return req.StartOperation(ctx, OperationSpec{Location: "eastus"}, func(ctx context.Context) (any, error) {
			w.wait()
			if fail {
				return nil, azerr.New(http.StatusConflict, "WidgetBusy", "The widget is busy.")
			}
			return map[string]string{"result": "done"}, nil
		})
	case req.Method == http.MethodPut:
		var body struct {
			Location string            `json:"location"`
			Tags     map[string]string `json:"tags"`
		}
		if err := DecodeJSON(req.Body, &body); err != nil {
			return nil, err
		}
		g := GenericResource{ID: req.ID.String(), Name: req.ID.Name(), Type: "Test.Widgets/widgets", Location: body.Location, Tags: body.Tags}
		w.items[req.ID.Key()] = g
		return Created(g), nil
	case req.Method == http.MethodGet:
		g, ok := w.items[req.ID.Key()]
		if !ok {
			return nil, ResourceNotFound(req.ID)
		}
		return OK(g), nil
	case req.Method == http.MethodDelete:
		delete(w.items, req.ID.Key())
		return &Response{Status: http.StatusOK}, nil
	}
	return nil, MethodNotAllowed(req.Method)
}

func (w *widgets) ListResources(_ context.Context, sub, rg string) ([]GenericResource, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []GenericResource
	for _, it := range w.items {
		id, _ := ParseResourceID(it.ID)
		if strings.EqualFold(id.SubscriptionID, sub) && (rg == "" || strings.EqualFold(id.ResourceGroup, rg)) {
			out = append(out, it)
		}
	}
	return out, nil
}

func (w *widgets) DeleteGroupResources(_ context.Context, sub, rg string) error {
	w.wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, it := range w.items {
		id, _ := ParseResourceID(it.ID)
		if strings.EqualFold(id.SubscriptionID, sub) && strings.EqualFold(id.ResourceGroup, rg) {
			delete(w.items, k)
			w.deleted = append(w.deleted, it.Name)
		}
	}
	return nil
}

// lockGuard refuses writes beneath locked scopes.
type lockGuard struct{ locked []ResourceID }

func (g *lockGuard) BeforeWrite(_ context.Context, id ResourceID, method string) error {
	for _, l := range g.locked {
		if l.Contains(id) || method == http.MethodDelete && id.Contains(l) {
			return azerr.New(http.StatusConflict, "ScopeLocked", "The scope '%s' cannot perform %s because it is locked.", id, method)
		}
	}
	return nil
}

func httpReq(method, path string) *http.Request {
	return httptest.NewRequest(method, testBase+path, nil)
}

func serve(h http.Handler, req *http.Request, info *principal.Info) *httptest.ResponseRecorder {
	req = req.WithContext(principal.WithInfo(req.Context(), info))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type recHook struct {
	mu   sync.Mutex
	recs []AuditRecord
}

func (h *recHook) ARMRequest(_ context.Context, rec AuditRecord) {
	h.mu.Lock()
	h.recs = append(h.recs, rec)
	h.mu.Unlock()
}
