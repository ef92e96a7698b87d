// Package redfishtest is a small in-process Redfish service for tests: a BMC
// with accounts, sessions (POST /redfish/v1/SessionService/Sessions →
// X-Auth-Token) and/or HTTP Basic authentication (SetAuth), serving the
// account collection and PATCH of an account's password with ETag/If-Match.
// Every resource but the service root requires authentication, as a real BMC
// does. Test-only: nothing in the product imports it.
package redfishtest

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	sessionsPath = "/redfish/v1/SessionService/Sessions"
	accountsPath = "/redfish/v1/AccountService/Accounts"
)

type account struct {
	id, user, password string
	etag               int
	patches            int
}

// Auth selects the authentication schemes the server accepts.
type Auth int

const (
	// AuthBoth accepts sessions and Basic, as DSP0266 requires (default).
	AuthBoth Auth = iota
	// AuthSessions accepts sessions only: Basic credentials get 401.
	AuthSessions
	// AuthBasic accepts Basic only and has no SessionService: POST
	// .../Sessions is 404.
	AuthBasic
	// AuthBasicNoSessionCreate accepts Basic only; the SessionService
	// exists but refuses POST .../Sessions with 405.
	AuthBasicNoSessionCreate
)

// Server is a running Redfish test service over TLS.
type Server struct {
	*httptest.Server
	// Endpoint is the rotation target endpoint: redfish+https://127.0.0.1:port.
	Endpoint string

	mu       sync.Mutex
	accounts map[string]*account // by id
	sessions map[string]string   // token → user
	down     bool
	patches  int
	logins   int
	basic    int
	auth     Auth
	delay    time.Duration
}

// New starts a server with the given user → password accounts; it is closed
// at the end of the test.
func New(t testing.TB, accounts map[string]string) *Server {
	t.Helper()
	s := &Server{accounts: map[string]*account{}, sessions: map[string]string{}}
	users := make([]string, 0, len(accounts))
	for u := range accounts {
		users = append(users, u)
	}
	sort.Strings(users)
	for i, u := range users {
		id := fmt.Sprint(i + 1)
		s.accounts[id] = &account{id: id, user: u, password: accounts[u], etag: 1}
	}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	s.Endpoint = "redfish+" + s.URL
	t.Cleanup(s.Close)
	return s
}

// CertPool trusts the server's certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.Certificate())
	return p
}

// Password returns user's current password ("" if no such user).
func (s *Server) Password(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byUser(user); a != nil {
		return a.password
	}
	return ""
}

// SetPassword changes user's password out of band (as an operator would).
func (s *Server) SetPassword(user, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byUser(user); a != nil {
		a.password = password
		a.etag++
	}
}

// SetAuth selects the authentication schemes accepted from now on; open
// sessions stay valid only if sessions are still accepted.
func (s *Server) SetAuth(a Auth) { s.mu.Lock(); s.auth = a; s.mu.Unlock() }

// SetDelay makes every request wait d before it is served (a slow BMC).
// Requests wait concurrently: the delay does not serialize them.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// SetDown makes every request fail with 503 (an unreachable BMC).
func (s *Server) SetDown(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// Patches counts successful password changes.
func (s *Server) Patches() int { s.mu.Lock(); defer s.mu.Unlock(); return s.patches }

// PatchesFor counts successful password changes of user's account.
func (s *Server) PatchesFor(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.byUser(user); a != nil {
		return a.patches
	}
	return 0
}

// SessionLogins counts sessions created (successful session logins).
func (s *Server) SessionLogins() int { s.mu.Lock(); defer s.mu.Unlock(); return s.logins }

// BasicRequests counts requests that authenticated with Basic.
func (s *Server) BasicRequests() int { s.mu.Lock(); defer s.mu.Unlock(); return s.basic }

// Sessions counts open sessions (logged-out ones are removed).
func (s *Server) Sessions() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.sessions) }

func (s *Server) byUser(user string) *account {
	for _, a := range s.accounts {
		if a.user == user {
			return a
		}
	}
	return nil
}

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func (s *Server) sessionsOn() bool { return s.auth == AuthBoth || s.auth == AuthSessions }
func (s *Server) basicOn() bool    { return s.auth != AuthSessions }

// authenticate returns the caller's user name, or "". Basic is checked
// against the password in force now, so an old one fails after a change.
func (s *Server) authenticate(r *http.Request) string {
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		if !s.sessionsOn() {
			return ""
		}
		return s.sessions[tok]
	}
	if u, p, ok := r.BasicAuth(); ok && s.basicOn() {
		if a := s.byUser(u); a != nil && eq(a.password, p) {
			s.basic++
			return u
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func redfishError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": "Base.1.8.GeneralError", "message": msg}})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		redfishError(w, http.StatusServiceUnavailable, "service unavailable")
		return
	}
	path := strings.TrimSuffix(r.URL.Path, "/")
	if path == "/redfish/v1" && r.Method == http.MethodGet {
		root := map[string]any{"@odata.id": "/redfish/v1", "RedfishVersion": "1.15.0",
			"AccountService": map[string]string{"@odata.id": "/redfish/v1/AccountService"}}
		if s.auth != AuthBasic {
			root["SessionService"] = map[string]string{"@odata.id": "/redfish/v1/SessionService"}
		}
		writeJSON(w, 200, root)
		return
	}
	if path == sessionsPath && r.Method == http.MethodPost && !s.sessionsOn() {
		if s.auth == AuthBasic {
			redfishError(w, 404, "not found")
		} else {
			w.Header().Set("Allow", "GET")
			redfishError(w, 405, "method not allowed")
		}
		return
	}
	if path == sessionsPath && r.Method == http.MethodPost {
		var in struct{ UserName, Password string }
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil {
			redfishError(w, 400, "malformed JSON")
			return
		}
		a := s.byUser(in.UserName)
		if a == nil || !eq(a.password, in.Password) {
			redfishError(w, 401, "invalid credentials")
			return
		}
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		tok := hex.EncodeToString(b)
		id := tok[:8]
		s.sessions[tok] = a.user
		s.logins++
		w.Header().Set("X-Auth-Token", tok)
		w.Header().Set("Location", sessionsPath+"/"+id)
		writeJSON(w, 201, map[string]string{"@odata.id": sessionsPath + "/" + id, "Id": id, "UserName": a.user})
		return
	}
	user := s.authenticate(r)
	if user == "" {
		if s.basicOn() {
			w.Header().Set("WWW-Authenticate", `Basic realm="redfish"`)
		}
		redfishError(w, 401, "authentication required")
		return
	}
	switch {
	case strings.HasPrefix(path, sessionsPath+"/") && r.Method == http.MethodDelete:
		id := strings.TrimPrefix(path, sessionsPath+"/")
		for tok := range s.sessions {
			if tok[:8] == id {
				delete(s.sessions, tok)
			}
		}
		w.WriteHeader(204)
	case path == accountsPath && r.Method == http.MethodGet:
		var members []map[string]string
		ids := make([]string, 0, len(s.accounts))
		for id := range s.accounts {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			members = append(members, map[string]string{"@odata.id": accountsPath + "/" + id})
		}
		writeJSON(w, 200, map[string]any{"@odata.id": accountsPath, "Members": members, "Members@odata.count": len(members)})
	case strings.HasPrefix(path, accountsPath+"/"):
		a := s.accounts[strings.TrimPrefix(path, accountsPath+"/")]
		if a == nil {
			redfishError(w, 404, "no such account")
			return
		}
		etag := fmt.Sprintf(`W/"%d"`, a.etag)
		switch r.Method {
		case http.MethodGet:
			w.Header().Set("ETag", etag)
			writeJSON(w, 200, map[string]any{"@odata.id": accountsPath + "/" + a.id, "Id": a.id, "UserName": a.user,
				"Enabled": true, "RoleId": "Administrator"})
		case http.MethodPatch:
			// Only the account itself (or an administrator, here: anyone
			// authenticated as that account) may change the password.
			if user != a.user {
				redfishError(w, 403, "insufficient privilege")
				return
			}
			if im := r.Header.Get("If-Match"); im != "" && im != etag {
				redfishError(w, 412, "ETag mismatch")
				return
			}
			var in struct{ Password *string }
			if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&in); err != nil || in.Password == nil {
				redfishError(w, 400, "Password is required")
				return
			}
			if len(*in.Password) < 8 || len(*in.Password) > 64 {
				redfishError(w, 400, "password violates the policy")
				return
			}
			a.password = *in.Password
			a.etag++
			a.patches++
			s.patches++
			w.WriteHeader(204)
		default:
			redfishError(w, 405, "method not allowed")
		}
	default:
		redfishError(w, 404, "not found")
	}
}
