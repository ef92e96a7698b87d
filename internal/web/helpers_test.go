package web

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

const (
	testUser     = "ops@keyhaven.local"
	testPassword = "Corr3ct-horse-battery"
	testSecret   = "Sup3r-S3cret-Value-Never-Shown"
	testSub      = "11111111-2222-3333-4444-555555555555"
	testHost     = "portal.test"
)

// fakeAPI stands in for keyhaven's REST APIs: a token endpoint and canned
// answers by path; it records every request.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	routes   map[string]func(w http.ResponseWriter, r *http.Request)
	prefixes map[string]func(w http.ResponseWriter, r *http.Request) // "METHOD /path/prefix"
	requests []string
	clients  []string // X-Test-Client of each request (Options.Forward)
	forms    []url.Values
	tokenN   int
}

func jwtFor(oid, upn string, n int) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`))
	b, _ := json.Marshal(map[string]any{"oid": oid, "tid": "tenant-1", "upn": upn, "n": n})
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + ".sig"
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, routes: map[string]func(http.ResponseWriter, *http.Request){}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.routes["POST /organizations/oauth2/v2.0/token"] = f.serveToken
	f.routes["POST /tenant-1/oauth2/v2.0/token"] = f.serveToken
	f.json("GET", "/subscriptions", 200, map[string]any{"value": []any{
		map[string]any{"subscriptionId": testSub, "displayName": "sub one", "state": "Enabled"}}})
	return f
}

func (f *fakeAPI) serveToken(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	f.mu.Lock()
	f.forms = append(f.forms, r.PostForm)
	f.tokenN++
	n := f.tokenN
	f.mu.Unlock()
	if r.PostForm.Get("client_id") != portalClientID {
		http.Error(w, `{"error":"unauthorized_client"}`, 400)
		return
	}
	switch r.PostForm.Get("grant_type") {
	case "password":
		if r.PostForm.Get("username") != testUser || r.PostForm.Get("password") != testPassword {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
	case "refresh_token":
		if !strings.HasPrefix(r.PostForm.Get("refresh_token"), "rt-") {
			w.WriteHeader(400)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": jwtFor("oid-1", testUser, n), "token_type": "Bearer",
		"expires_in": 3600, "refresh_token": "rt-" + string(rune('a'+n%26))})
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.clients = append(f.clients, r.Header.Get("X-Test-Client"))
	h := f.routes[r.Method+" "+r.URL.Path]
	for p, ph := range f.prefixes {
		if h == nil && strings.HasPrefix(r.Method+" "+r.URL.Path, p) {
			h = ph
		}
	}
	f.mu.Unlock()
	if h == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(404)
		_, _ = io.WriteString(w, `{"error":{"code":"NotFound","message":"no such thing"}}`)
		return
	}
	h(w, r)
}

// json answers v for method and path.
func (f *fakeAPI) json(method, path string, status int, v any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[method+" "+path] = func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
}

func (f *fakeAPI) called(req string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.requests {
		if r == req {
			return true
		}
	}
	return false
}

// harness is a portal over a fake API with a settable clock and a log
// buffer.
type harness struct {
	t    *testing.T
	api  *fakeAPI
	p    *Portal
	now  time.Time
	mu   sync.Mutex
	logs *bytes.Buffer
}

func newHarness(t *testing.T) *harness {
	h := &harness{t: t, api: newFakeAPI(t), now: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	p, err := New(Options{BaseURL: h.api.srv.URL, VaultAudience: "https://vault.test", Client: h.api.srv.Client(),
		Logger:      slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:         func() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now },
		IdleTimeout: 30 * time.Minute, MaxLifetime: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

func (h *harness) advance(d time.Duration) { h.mu.Lock(); h.now = h.now.Add(d); h.mu.Unlock() }

// do sends a request to the portal with the given cookies; POST bodies are
// forms from the portal's own origin unless origin says otherwise.
func (h *harness) do(method, path string, form url.Values, cookies ...*http.Cookie) *httptest.ResponseRecorder {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "https://"+testHost+path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "https://"+testHost)
	}
	for _, c := range cookies {
		if c != nil {
			r.AddCookie(c)
		}
	}
	// The server's middleware gives every request its client's address.
	r = r.WithContext(principal.WithInfo(r.Context(), &principal.Info{ClientIP: "203.0.113.9"}))
	w := httptest.NewRecorder()
	h.p.ServeHTTP(w, r)
	return w
}

func cookie(w *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field in page:\n%s", body)
	}
	return m[1]
}

// signIn signs the test user in and returns the session cookie and the
// session's CSRF token.
func (h *harness) signIn() (*http.Cookie, string) {
	t := h.t
	t.Helper()
	form := h.do("GET", "/portal/signin", nil)
	login := cookie(form, loginCookie)
	w := h.do("POST", "/portal/signin", url.Values{"csrf": {csrfOf(t, form.Body.String())}, "username": {testUser},
		"password": {testPassword}}, login)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("sign-in: %d\n%s", w.Code, w.Body)
	}
	sc := cookie(w, sessionCookie)
	if sc == nil {
		t.Fatal("no session cookie")
	}
	page := h.do("GET", "/portal/subscriptions", nil, sc)
	if page.Code != 200 {
		t.Fatalf("subscriptions after sign-in: %d\n%s", page.Code, page.Body)
	}
	return sc, csrfOf(t, page.Body.String())
}
