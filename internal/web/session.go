package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

const (
	// sessionCookie carries the session id. __Host-: Secure, Path=/, no
	// Domain, so no sibling host (a vault host) can set or read it.
	sessionCookie = "__Host-keyhaven-portal"
	// loginCookie carries the sign-in form's CSRF token (before a session).
	loginCookie = "__Host-keyhaven-signin"
	csrfField   = "csrf"
	maxFormBody = 16 << 10
)

// session is one signed-in browser. Tokens never leave the server.
type session struct {
	key                [32]byte // SHA-256 of the cookie's id
	csrf               string
	upn, oid, tenantID string
	created            time.Time

	mu       sync.Mutex // lastSeen, flash: held briefly
	lastSeen time.Time
	flash    string

	// tokMu serializes token renewal (refresh tokens are single use); it
	// is held across the token request, so never under mu or the store's.
	tokMu   sync.Mutex
	refresh string
	tokens  map[string]accessToken // by audience
}

type accessToken struct {
	value   string
	expires time.Time
}

func (s *session) setFlash(msg string) { s.mu.Lock(); s.flash = msg; s.mu.Unlock() }

func (s *session) takeFlash() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

// sessionStore holds sessions in memory, keyed by the hash of their id.
type sessionStore struct {
	now         func() time.Time
	idle, max   time.Duration
	maxSessions int

	mu sync.Mutex
	m  map[[32]byte]*session
}

func newSessionStore(now func() time.Time, idle, max time.Duration, maxSessions int) *sessionStore {
	return &sessionStore{now: now, idle: idle, max: max, maxSessions: maxSessions, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32) // 256 bits
	_, _ = rand.Read(b)   // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

func (st *sessionStore) expired(s *session, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.lastSeen) >= st.idle || now.Sub(s.created) >= st.max
}

// create starts a session and returns it with its id (for the cookie only).
func (st *sessionStore) create(s *session) (string, bool) {
	id := randomToken()
	now := st.now()
	s.key = sha256.Sum256([]byte(id))
	s.csrf = randomToken()
	s.created, s.lastSeen = now, now
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, old := range st.m {
		if st.expired(old, now) {
			delete(st.m, k)
		}
	}
	if len(st.m) >= st.maxSessions {
		return "", false
	}
	st.m[s.key] = s
	return id, true
}

// lookup returns the request's live session and marks it used.
func (st *sessionStore) lookup(r *http.Request) (*session, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 43 {
		return nil, false
	}
	key := sha256.Sum256([]byte(c.Value))
	now := st.now()
	st.mu.Lock()
	s, ok := st.m[key]
	if ok && st.expired(s, now) {
		delete(st.m, key)
		ok = false
	}
	st.mu.Unlock()
	if !ok {
		return nil, false
	}
	s.mu.Lock()
	s.lastSeen = now
	s.mu.Unlock()
	return s, true
}

func (st *sessionStore) drop(s *session) {
	if s == nil {
		return
	}
	st.mu.Lock()
	delete(st.m, s.key)
	st.mu.Unlock()
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter) { setCookie(w, sessionCookie, "", -1) }

// sameOrigin refuses a POST whose Origin (or, without one, Referer) names
// another origin, and one that says it is cross-site.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	src := r.Header.Get("Origin")
	if src == "" || src == "null" {
		if src == "null" {
			return false
		}
		src = r.Header.Get("Referer")
		if src == "" {
			return true // non-browser clients; the CSRF token still applies
		}
	}
	u, err := url.Parse(src)
	return err == nil && u.Scheme == "https" && strings.EqualFold(u.Host, r.Host)
}

func tokenEqual(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// readForm parses a small POST form.
func readForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	return r.ParseForm() == nil
}

// withSession requires a live session; POSTs also need the session's CSRF
// token and the portal's own origin. The caller is named in the request's
// audit event.
func (p *Portal) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := p.sessions.lookup(r)
		if !ok {
			if r.Method != http.MethodGet {
				p.renderError(w, r, nil, http.StatusUnauthorized, "Signed out", "Your session has ended. Sign in again.")
				return
			}
			clearCookie(w)
			http.Redirect(w, r, signInURL(r), http.StatusSeeOther)
			return
		}
		info := principal.InfoFrom(r.Context())
		info.Principal = &principal.Principal{TenantID: s.tenantID, ObjectID: s.oid, UPN: s.upn,
			AppID: portalClientID, Kind: principal.User}
		if r.Method == http.MethodPost {
			info.OperationName = "PortalAction"
			if !readForm(w, r) || !sameOrigin(r) || !tokenEqual(r.PostForm.Get(csrfField), s.csrf) {
				p.renderError(w, r, s, http.StatusForbidden, "Request refused",
					"The form was not sent from this portal page (missing or wrong CSRF token). Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}
