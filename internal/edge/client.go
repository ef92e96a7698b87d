package edge

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
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/clientnet"
)

const (
	userAgent       = "keyhaven-edge-agent"
	armAPIVersion   = "2023-12-01"
	vaultAPIVersion = "7.4"
	msiAPIVersion   = "2019-08-01"
	maxResponse     = 4 << 20
)

// newHTTPClient trusts caPEM (system roots when empty) and dials names
// under vaultDomain to the server (keyhaven serves every vault on its one
// listener, by host name) and *.localhost names to the loopback address:
// neither resolves on most devices.
func newHTTPClient(serverURL string, caPEM []byte, vaultDomain string) (*http.Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("edge: the server URL must be https://host[:port], got %q", serverURL)
	}
	tr, err := clientnet.Transport(u, caPEM, vaultDomain)
	if err != nil {
		return nil, errors.New("edge: the CA file holds no PEM certificate")
	}
	return &http.Client{
		Transport: tr,
		Timeout:   60 * time.Second,
		// A bearer token or identity header never follows a redirect.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// APIError is a refused request: its status and the service's error code
// and message (which never carry secret values).
type APIError struct {
	Op      string
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("%s: %d", e.Op, e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Message != "" {
		s += ": " + clip(e.Message, 300)
	}
	return s
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// client is the agent's HTTP side: tokens from the managed-identity
// endpoint, then ARM and the vault data plane as the device identity.
type client struct {
	hc       *http.Client
	endpoint string
	header   func() (string, error)
	now      func() time.Time

	mu     sync.Mutex
	tokens map[string]token
}

type token struct {
	value string
	exp   time.Time
}

// token gets an access token for resource the way azidentity's
// ManagedIdentityCredential does in App Service (IDENTITY_ENDPOINT,
// IDENTITY_HEADER), cached until five minutes before it expires.
func (c *client) token(ctx context.Context, resource string) (string, error) {
	c.mu.Lock()
	t, ok := c.tokens[resource]
	c.mu.Unlock()
	if ok && c.now().Before(t.exp.Add(-5*time.Minute)) {
		return t.value, nil
	}
	secret, err := c.header()
	if err != nil {
		return "", err
	}
	u, err := url.Parse(c.endpoint)
	if err != nil {
		return "", fmt.Errorf("edge: identity endpoint: %w", err)
	}
	q := u.Query()
	q.Set("api-version", msiAPIVersion)
	q.Set("resource", resource)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-IDENTITY-HEADER", secret)
	req.Header.Set("User-Agent", userAgent)
	status, body, err := c.do(req)
	if err != nil {
		return "", fmt.Errorf("managed-identity token: %w", err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresOn   string `json:"expires_on"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(body, &out)
	if status != http.StatusOK || out.AccessToken == "" {
		return "", &APIError{Op: "managed-identity token", Status: status, Code: out.Error, Message: out.Description}
	}
	exp := c.now().Add(10 * time.Minute)
	if n, err := strconv.ParseInt(out.ExpiresOn, 10, 64); err == nil {
		exp = time.Unix(n, 0)
	}
	c.mu.Lock()
	c.tokens[resource] = token{value: out.AccessToken, exp: exp}
	c.mu.Unlock()
	return out.AccessToken, nil
}

func (c *client) do(req *http.Request) (int, []byte, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// call sends a JSON request with a bearer token for audience and decodes
// a 200 answer into out.
func (c *client) call(ctx context.Context, op, method, rawURL, audience string, in, out any) error {
	tok, err := c.token(ctx, audience)
	if err != nil {
		return err
	}
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", userAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	status, body, err := c.do(req)
	if err != nil {
		return &APIError{Op: op, Message: "the request failed: " + err.Error()}
	}
	if status != http.StatusOK {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return &APIError{Op: op, Status: status, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return &APIError{Op: op, Status: status, Message: "the answer could not be decoded"}
		}
	}
	return nil
}
