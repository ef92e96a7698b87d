package drivers

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	redfishSessions = "/redfish/v1/SessionService/Sessions"
	redfishAccounts = "/redfish/v1/AccountService/Accounts"
	maxRedfishBody  = 1 << 20
	maxAccounts     = 256
)

// Redfish rotates BMC account passwords through the Redfish API.
type Redfish struct {
	client    *http.Client
	allowHTTP bool
}

// NewRedfish returns a Redfish driver. TLS trusts opts.RootCAs (or the system
// roots) and, when configured, exactly the pinned certificates.
func NewRedfish(opts Options) (*Redfish, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs}
	if len(opts.PinnedCerts) > 0 {
		pinned := make([][]byte, len(opts.PinnedCerts))
		copy(pinned, opts.PinnedCerts)
		roots := opts.RootCAs
		// Chain verification is done here instead of by crypto/tls so that a
		// pinned self-signed certificate can be accepted; everything else
		// still gets the full check (chain and host name).
		tcfg.InsecureSkipVerify = true
		tcfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("redfish: BMC presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			for _, p := range pinned {
				if len(p) == len(leaf.Raw) && subtle.ConstantTimeCompare(p, leaf.Raw) == 1 {
					return nil
				}
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: cs.ServerName})
			return err
		}
	}
	tr := &http.Transport{
		TLSClientConfig:       tcfg,
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
		Proxy:                 nil, // BMC networks are reached directly
	}
	return &Redfish{
		client: &http.Client{Transport: tr, Timeout: timeout,
			// Redirects could carry credentials elsewhere; refuse them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		allowHTTP: opts.AllowPlainHTTP,
	}, nil
}

// base turns "redfish+https://host:port" into "https://host:port".
func (d *Redfish) base(endpoint string) (string, error) {
	if len(endpoint) > MaxEndpointLen {
		return "", fmt.Errorf("%w: endpoint too long", ErrUnsupported)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("%w: malformed Redfish endpoint", ErrUnsupported)
	}
	switch strings.ToLower(u.Scheme) {
	case "redfish+https":
		u.Scheme = "https"
	case "redfish+http":
		if !d.allowHTTP {
			return "", fmt.Errorf("%w: redfish+http is not enabled", ErrUnsupported)
		}
		u.Scheme = "http"
	default:
		return "", fmt.Errorf("%w: not a Redfish endpoint", ErrUnsupported)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("%w: a Redfish endpoint is scheme://host[:port] only", ErrUnsupported)
	}
	return u.Scheme + "://" + u.Host, nil
}

// session is how requests to one BMC authenticate: a Redfish session
// (token) or, on a BMC without a SessionService, HTTP Basic with the
// credential itself (user, pass).
type session struct {
	base     string
	token    string
	location string
	user     string
	pass     []byte
}

// authorize adds the session's credentials to req.
func (s *session) authorize(req *http.Request) {
	switch {
	case s == nil:
	case s.token != "":
		req.Header.Set("X-Auth-Token", s.token)
	case s.user != "":
		req.SetBasicAuth(s.user, string(s.pass))
	}
}

// noSessionService: the answers of a BMC without session login. DSP0266
// requires both sessions and Basic, but some services ship without a
// SessionService (404), refuse POST on it (405) or have not implemented it
// (501); those get Basic. A 401/403 never falls back, so a wrong password
// costs one failed attempt, not two, against the BMC's lockout policy.
func noSessionService(status int) bool {
	return status == http.StatusNotFound || status == http.StatusMethodNotAllowed || status == http.StatusNotImplemented
}

// login opens a session, or checks the credential with Basic when the BMC
// has no session login; a 401/403 is ErrRejected.
func (d *Redfish) login(ctx context.Context, base, username string, secret []byte) (*session, error) {
	body, err := json.Marshal(map[string]string{"UserName": username, "Password": string(secret)})
	if err != nil {
		return nil, err
	}
	resp, err := d.do(ctx, http.MethodPost, base+redfishSessions, nil, "", body)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("redfish: session for %q: %w", clip(username, 64), ErrRejected)
	case noSessionService(resp.StatusCode):
		return d.loginBasic(ctx, base, username, secret)
	case resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("redfish: create session: status %d", resp.StatusCode)
	}
	tok := resp.Header.Get("X-Auth-Token")
	if tok == "" || len(tok) > 4096 {
		return nil, errors.New("redfish: create session: no X-Auth-Token in the response")
	}
	s := &session{base: base, token: tok}
	if loc := resp.Header.Get("Location"); loc != "" {
		if p, ok := d.samePath(base, loc, redfishSessions+"/"); ok {
			s.location = p
		}
	}
	return s, nil
}

// loginBasic checks username/secret with HTTP Basic on the account
// collection, the resource Set reads first anyway.
func (d *Redfish) loginBasic(ctx context.Context, base, username string, secret []byte) (*session, error) {
	// RFC 7617: a user-id containing ':' cannot be sent in Basic.
	if strings.Contains(username, ":") {
		return nil, errors.New("redfish: the BMC has no session login and the user name cannot be sent with Basic authentication")
	}
	s := &session{base: base, user: username, pass: secret}
	resp, err := d.do(ctx, http.MethodGet, base+redfishAccounts, s, "", nil)
	if err != nil {
		return nil, err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		return s, nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return nil, fmt.Errorf("redfish: basic authentication for %q: %w", clip(username, 64), ErrRejected)
	}
	return nil, fmt.Errorf("redfish: basic authentication: status %d", resp.StatusCode)
}

// logout deletes the session, best effort: BMCs cap concurrent sessions.
// Basic authentication leaves nothing to close.
func (d *Redfish) logout(s *session) {
	if s == nil || s.location == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := d.do(ctx, http.MethodDelete, s.base+s.location, s, "", nil); err == nil {
		drain(resp)
	}
}

// Login opens and closes a session with secret (or, without session login,
// makes one Basic-authenticated request).
func (d *Redfish) Login(ctx context.Context, endpoint, username string, secret []byte) error {
	if err := checkInputs(username, secret); err != nil {
		return err
	}
	base, err := d.base(endpoint)
	if err != nil {
		return err
	}
	s, err := d.login(ctx, base, username, secret)
	if err != nil {
		return err
	}
	d.logout(s)
	return nil
}

// Set changes username's password from current to next.
func (d *Redfish) Set(ctx context.Context, endpoint, username string, current, next []byte) error {
	if err := checkInputs(username, current, next); err != nil {
		return err
	}
	if len(next) == 0 {
		return errors.New("redfish: empty new password")
	}
	base, err := d.base(endpoint)
	if err != nil {
		return err
	}
	s, err := d.login(ctx, base, username, current)
	if err != nil {
		return err
	}
	defer d.logout(s)
	acct, etag, err := d.findAccount(ctx, s, username)
	if err != nil {
		return err
	}
	body, err := json.Marshal(map[string]string{"Password": string(next)})
	if err != nil {
		return err
	}
	resp, err := d.do(ctx, http.MethodPatch, base+acct, s, etag, body)
	if err != nil {
		return err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted, http.StatusNoContent:
		return nil
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("redfish: set password: %w", ErrRejected)
	}
	// The body may describe a password policy; it is not echoed, in case a
	// BMC quotes the request.
	return fmt.Errorf("redfish: set password: status %d", resp.StatusCode)
}

type odataRef struct {
	ID string `json:"@odata.id"`
}

// findAccount returns the path of username's account and its ETag.
func (d *Redfish) findAccount(ctx context.Context, s *session, username string) (string, string, error) {
	var coll struct {
		Members []odataRef `json:"Members"`
	}
	if _, err := d.getJSON(ctx, s, redfishAccounts, &coll); err != nil {
		return "", "", err
	}
	if len(coll.Members) > maxAccounts {
		return "", "", fmt.Errorf("redfish: more than %d accounts", maxAccounts)
	}
	for _, m := range coll.Members {
		p, ok := d.samePath(s.base, m.ID, redfishAccounts+"/")
		if !ok {
			continue
		}
		var acct struct {
			UserName string `json:"UserName"`
		}
		etag, err := d.getJSON(ctx, s, p, &acct)
		if err != nil {
			return "", "", err
		}
		if acct.UserName == username {
			return p, etag, nil
		}
	}
	return "", "", fmt.Errorf("redfish: no account with user name %q", clip(username, 64))
}

func (d *Redfish) getJSON(ctx context.Context, s *session, path string, v any) (string, error) {
	resp, err := d.do(ctx, http.MethodGet, s.base+path, s, "", nil)
	if err != nil {
		return "", err
	}
	defer drain(resp)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return "", fmt.Errorf("redfish: GET %s: %w", clip(path, 128), ErrRejected)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("redfish: GET %s: status %d", clip(path, 128), resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRedfishBody+1))
	if err != nil {
		return "", fmt.Errorf("redfish: GET %s: %w", clip(path, 128), err)
	}
	if len(b) > maxRedfishBody {
		return "", fmt.Errorf("redfish: GET %s: response too large", clip(path, 128))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return "", fmt.Errorf("redfish: GET %s: malformed JSON", clip(path, 128))
	}
	return resp.Header.Get("ETag"), nil
}

// samePath accepts a reference only if it stays on the BMC (a path, or an
// absolute URL on the same origin) under prefix, so a hostile BMC cannot
// steer the session token (or the Basic credentials) elsewhere.
func (d *Redfish) samePath(base, ref, prefix string) (string, bool) {
	u, err := url.Parse(ref)
	if err != nil || len(ref) > 1024 {
		return "", false
	}
	if u.IsAbs() {
		if !strings.EqualFold(u.Scheme+"://"+u.Host, base) {
			return "", false
		}
	} else if u.Host != "" {
		return "", false
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, prefix) || len(p) == len(prefix) || strings.Contains(p, "..") {
		return "", false
	}
	return p, true
}

func (d *Redfish) do(ctx context.Context, method, rawURL string, s *session, ifMatch string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return nil, fmt.Errorf("redfish: %s: bad request URL", method)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	s.authorize(req)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		// url.Error quotes the URL only; endpoints carry no credentials.
		return nil, fmt.Errorf("redfish: %s %s: %w", method, redactStr(rawURL), unwrapURLError(err))
	}
	return resp, nil
}

func redactStr(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(endpoint)"
	}
	return redact(u)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxRedfishBody))
	resp.Body.Close()
}
