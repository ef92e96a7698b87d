package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clientnet"
)

const (
	maxResponseBody = 64 << 20
	max429Retries   = 3
	maxRetryWait    = 60 * time.Second
	userAgent       = "keyhaven-cli"
)

// newHTTPClient builds a client that trusts caPEM (system roots when
// empty) and dials every host under vaultDomain, and any *.localhost name,
// to the server: those names do not resolve on most machines.
func newHTTPClient(serverURL, caPEM, vaultDomain string) (*http.Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Host == "" {
		return nil, usageErrorf("invalid server URL %q", serverURL)
	}
	tr, err := clientnet.Transport(u, []byte(caPEM), vaultDomain)
	if err != nil {
		return nil, &azerr.Error{Message: "the configured CA file holds no PEM certificate"}
	}
	return &http.Client{
		Transport: tr,
		Timeout:   5 * time.Minute,
		// Never forward the bearer token to another host on redirect.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			if req.URL.Host != via[0].URL.Host {
				req.Header.Del("Authorization")
			}
			return nil
		},
	}, nil
}

// httpClient returns the client for the logged-in server.
func (a *app) httpClient() (*http.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	cfg, err := a.loggedIn()
	if err != nil {
		return nil, err
	}
	c, err := newHTTPClient(cfg.Server, cfg.CAPEM, cfg.Endpoint.VaultDomain)
	if err != nil {
		return nil, err
	}
	a.client = c
	return c, nil
}

// request is one HTTP call. body is JSON-encoded; form is form-encoded
// (token endpoint); raw is sent as is.
type request struct {
	method   string
	url      string
	body     any
	form     url.Values
	audience string // bearer token audience; "" sends no token
	headers  map[string]string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs r with the logged-in client.
func (a *app) send(ctx context.Context, r request) (*response, error) {
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	return a.sendWith(ctx, hc, r)
}

// sendWith performs r: adds the bearer token and a client request id,
// retries 429s honouring Retry-After, retries once on 401 with a fresh
// token (or the resource the challenge names), and turns error statuses
// into *azerr.Error.
func (a *app) sendWith(ctx context.Context, hc *http.Client, r request) (*response, error) {
	var payload []byte
	contentType := ""
	switch {
	case r.form != nil:
		payload, contentType = []byte(r.form.Encode()), "application/x-www-form-urlencoded"
	case r.body != nil:
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, err
		}
		payload, contentType = b, "application/json"
	}
	aud := r.audience
	retried401 := false
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(payload))
		if err != nil {
			return nil, usageErrorf("invalid request URL: %v", err)
		}
		if payload == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Accept", "application/json")
		req.Header.Set("User-Agent", userAgent)
		reqID := uuid.NewString()
		req.Header.Set("x-ms-client-request-id", reqID)
		for k, v := range r.headers {
			req.Header.Set(k, v)
		}
		if aud != "" {
			tok, err := a.token(ctx, aud)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		a.debugf("Request URL: '%s %s'", r.method, redactURL(req.URL))
		a.debugf("Request headers: x-ms-client-request-id: '%s'", reqID)
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, connError(r.url, err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
		resp.Body.Close()
		if err != nil {
			return nil, connError(r.url, err)
		}
		if len(body) > maxResponseBody {
			return nil, &azerr.Error{Message: "response too large"}
		}
		a.debugf("Response status: %d (%s, x-ms-request-id: '%s')", resp.StatusCode, time.Since(start).Round(time.Millisecond), resp.Header.Get("x-ms-request-id"))
		out := &response{status: resp.StatusCode, header: resp.Header, body: body}

		if resp.StatusCode == http.StatusTooManyRequests && attempt < max429Retries {
			wait := retryAfter(resp.Header, time.Duration(1<<attempt)*time.Second)
			a.debugf("throttled (429); retrying in %s", wait)
			if err := a.sleep(ctx, wait); err != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode == http.StatusUnauthorized && aud != "" && !retried401 {
			retried401 = true
			if res := challengeResource(resp.Header.Get("WWW-Authenticate")); res != "" && !sameAudience(res, aud) {
				a.debugf("server asked for audience %s", res)
				aud = strings.TrimRight(res, "/")
				continue
			}
			if a.dropToken(aud) {
				continue
			}
		}
		if resp.StatusCode >= 400 {
			return out, apiError(resp.StatusCode, resp.Header, body)
		}
		return out, nil
	}
}

func connError(u string, err error) error {
	host := u
	if p, perr := url.Parse(u); perr == nil {
		host = p.Host
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &azerr.Error{Message: fmt.Sprintf("Cannot connect to %s: %v", host, err)}
}

// redactURL drops query values that could carry credentials; keyhaven's
// APIs never put them there, but a user-supplied nextLink might.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	q := c.Query()
	for k := range q {
		switch strings.ToLower(k) {
		case "sig", "code", "client_secret", "password", "token", "access_token", "refresh_token":
			q.Set(k, "REDACTED")
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// retryAfter reads retry-after-ms, x-ms-retry-after-ms then Retry-After
// (seconds or HTTP date), capped; def when none is usable.
func retryAfter(h http.Header, def time.Duration) time.Duration {
	d := def
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v := h.Get(k); v != "" {
			if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
				d = time.Duration(ms) * time.Millisecond
				goto done
			}
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
			d = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = time.Until(t)
		}
	}
done:
	if d < 0 {
		d = 0
	}
	if d > maxRetryWait {
		d = maxRetryWait
	}
	return d
}

// challengeResource returns resource="..." of a Bearer challenge.
func challengeResource(h string) string {
	for _, part := range strings.FieldsFunc(h, func(r rune) bool { return r == ',' || r == ' ' }) {
		k, v, ok := strings.Cut(part, "=")
		if ok && strings.EqualFold(k, "resource") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func sameAudience(a, b string) bool {
	norm := func(s string) string {
		return strings.ToLower(strings.TrimRight(strings.TrimSuffix(s, "/.default"), "/"))
	}
	return norm(a) == norm(b)
}

// apiError turns an error response of any of keyhaven's planes (ARM and Key
// Vault {"error":{"code","message"}}, OAuth2 {"error","error_description"})
// into the error az would print.
func apiError(status int, h http.Header, body []byte) *azerr.Error {
	e := &azerr.Error{Status: status}
	var env struct {
		Error json.RawMessage `json:"error"`
		Desc  string          `json:"error_description"`
		Code  string          `json:"code"`
		Msg   string          `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		var obj struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Inner   *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		}
		var s string
		switch {
		case len(env.Error) > 0 && json.Unmarshal(env.Error, &obj) == nil:
			e.Code, e.Message = obj.Code, obj.Message
			if obj.Inner != nil {
				e.Inner = obj.Inner.Code
			}
		case len(env.Error) > 0 && json.Unmarshal(env.Error, &s) == nil:
			e.Code, e.Message = s, env.Desc
		default:
			e.Code, e.Message = env.Code, env.Msg
		}
	}
	if e.Code == "" {
		e.Code = h.Get("x-ms-error-code")
	}
	if e.Message == "" {
		e.Message = fmt.Sprintf("Operation returned an invalid status '%s'", http.StatusText(status))
	}
	if len(e.Message) > 4000 {
		e.Message = e.Message[:4000] + "..."
	}
	return e
}

// decodeBody decodes a JSON response body into a generic value (nil when
// empty).
func decodeBody(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, &azerr.Error{Message: "the server returned a response that is not JSON"}
	}
	return v, nil
}
