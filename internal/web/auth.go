package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// errSignedOut: the session can no longer get tokens; sign in again.
var errSignedOut = errors.New("web: signed out")

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
}

type oauthFailure struct {
	status int
	code   string
}

func (e *oauthFailure) Error() string { return "token endpoint: " + e.code }

// redeem posts a grant to the server's own token endpoint.
func (p *Portal) redeem(ctx context.Context, tenant string, form url.Values) (*tokenResponse, error) {
	form.Set("client_id", portalClientID)
	u := p.opts.BaseURL + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "keyhaven-portal")
	p.forward(ctx, req)
	resp, err := p.opts.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return nil, &oauthFailure{status: resp.StatusCode, code: e.Error}
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return nil, errors.New("token endpoint: no access token in the answer")
	}
	return &tr, nil
}

func (p *Portal) expiry(tr *tokenResponse) time.Time {
	d := time.Duration(tr.ExpiresIn) * time.Second
	if d <= 0 {
		d = 5 * time.Minute
	}
	return p.opts.Now().Add(d)
}

// token returns an access token for aud, renewed through the refresh token
// when missing or about to expire.
func (p *Portal) token(ctx context.Context, s *session, aud string) (string, error) {
	s.tokMu.Lock()
	defer s.tokMu.Unlock()
	if t, ok := s.tokens[aud]; ok && p.opts.Now().Before(t.expires.Add(-time.Minute)) {
		return t.value, nil
	}
	if s.refresh == "" {
		return "", errSignedOut
	}
	tr, err := p.redeem(ctx, s.tenantID, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {s.refresh},
		"scope": {aud + "/.default offline_access"}})
	var of *oauthFailure
	if errors.As(err, &of) && of.status == http.StatusBadRequest {
		s.refresh = ""
		return "", errSignedOut
	}
	if err != nil {
		return "", err
	}
	if tr.RefreshToken != "" {
		s.refresh = tr.RefreshToken // refresh tokens rotate
	}
	s.tokens[aud] = accessToken{value: tr.AccessToken, expires: p.expiry(tr)}
	return tr.AccessToken, nil
}

// claims reads the informational claims of a token the portal just got
// from the server's own token endpoint (over TLS): the user it names. The
// APIs verify every token; nothing is authorized on these.
func claims(tok string) (oid, tid, upn string) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return
	}
	var c struct {
		OID string `json:"oid"`
		TID string `json:"tid"`
		UPN string `json:"upn"`
	}
	_ = json.Unmarshal(b, &c)
	return c.OID, c.TID, c.UPN
}

// signInData is the sign-in page's data.
type signInData struct {
	CSRF, Next, Username, Error string
}

func (p *Portal) serveSignInForm(w http.ResponseWriter, r *http.Request) {
	p.showSignIn(w, r, http.StatusOK, "", "")
}

func (p *Portal) showSignIn(w http.ResponseWriter, r *http.Request, status int, username, msg string) {
	tok := randomToken()
	setCookie(w, loginCookie, tok, 600)
	next := safeNext(r.URL.Query().Get("next"))
	if r.Method == http.MethodPost {
		next = safeNext(r.PostForm.Get("next"))
	}
	p.render(w, nil, status, "signin", "Sign in", nil, signInData{CSRF: tok, Next: next, Username: username, Error: msg})
}

const (
	maxUsername = 256
	maxPassword = 256
)

func (p *Portal) serveSignIn(w http.ResponseWriter, r *http.Request) {
	principal.InfoFrom(r.Context()).OperationName = "PortalSignIn"
	if !readForm(w, r) {
		p.renderError(w, r, nil, http.StatusBadRequest, "Bad request", "The sign-in form could not be read.")
		return
	}
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameOrigin(r) || !tokenEqual(r.PostForm.Get(csrfField), c.Value) {
		p.showSignIn(w, r, http.StatusForbidden, "", "The sign-in form expired or was not sent from this page. Try again.")
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	if username == "" || password == "" || len(username) > maxUsername || len(password) > maxPassword {
		p.showSignIn(w, r, http.StatusBadRequest, clip(username, maxUsername), "Enter your user principal name and password.")
		return
	}
	tr, err := p.redeem(r.Context(), "organizations", url.Values{"grant_type": {"password"}, "username": {username},
		"password": {password}, "scope": {p.opts.BaseURL + "/.default offline_access"}})
	if err != nil {
		var of *oauthFailure
		switch {
		case errors.As(err, &of) && of.status == http.StatusTooManyRequests:
			p.showSignIn(w, r, http.StatusTooManyRequests, username, "Too many sign-ins are in progress. Try again in a moment.")
		case errors.As(err, &of) && of.status < 500:
			p.showSignIn(w, r, http.StatusUnauthorized, username, "Sign-in failed: the user name or password is not correct, or the account is disabled.")
		default:
			p.log.Warn("portal: sign-in: token endpoint unavailable", "err", err)
			p.showSignIn(w, r, http.StatusBadGateway, username, "Sign-in is unavailable right now. Try again later.")
		}
		return
	}
	s := &session{refresh: tr.RefreshToken, tokens: map[string]accessToken{
		p.opts.BaseURL: {value: tr.AccessToken, expires: p.expiry(tr)}}}
	s.oid, s.tenantID, s.upn = claims(tr.AccessToken)
	if s.upn == "" {
		s.upn = username
	}
	id, ok := p.sessions.create(s)
	if !ok {
		p.showSignIn(w, r, http.StatusServiceUnavailable, username, "Too many portal sessions are open. Try again later.")
		return
	}
	info := principal.InfoFrom(r.Context())
	info.Principal = &principal.Principal{TenantID: s.tenantID, ObjectID: s.oid, UPN: s.upn, AppID: portalClientID, Kind: principal.User}
	setCookie(w, sessionCookie, id, 0)
	setCookie(w, loginCookie, "", -1)
	next := safeNext(r.PostForm.Get("next"))
	if next == "" {
		next = Prefix + "/subscriptions"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (p *Portal) serveSignOut(w http.ResponseWriter, r *http.Request, s *session) {
	principal.InfoFrom(r.Context()).OperationName = "PortalSignOut"
	p.sessions.drop(s)
	clearCookie(w)
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
