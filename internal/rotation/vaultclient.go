package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Typed causes of delivery failures; *VaultError unwraps to one of them.
var (
	ErrForbiddenByFirewall = errors.New("vault: forbidden by firewall")
	ErrForbiddenByRbac     = errors.New("vault: forbidden by RBAC")
	ErrAccessDenied        = errors.New("vault: access policy denies")
	ErrUnauthorized        = errors.New("vault: token refused")
	ErrVaultNotFound       = errors.New("vault: not found")
	ErrSecretDeleted       = errors.New("vault: secret deleted but recoverable")
	ErrVaultUnavailable    = errors.New("vault: unavailable")
)

// VaultError is an error answer of the vault data plane.
type VaultError struct {
	Status  int
	Code    string // error.code (or x-ms-error-code)
	Inner   string // error.innererror.code
	Message string // public text from the vault, clipped
}

func (e *VaultError) Error() string {
	s := fmt.Sprintf("vault: %d %s", e.Status, e.Code)
	if e.Inner != "" {
		s += "/" + e.Inner
	}
	return s + ": " + e.Message
}

// Unwrap returns the typed cause (nil when none fits).
func (e *VaultError) Unwrap() error {
	switch {
	case e.Inner == "ForbiddenByFirewall" || e.Inner == "ForbiddenByConnection":
		return ErrForbiddenByFirewall
	case e.Inner == "ForbiddenByRbac":
		return ErrForbiddenByRbac
	case e.Inner == "AccessDenied" || e.Inner == "ForbiddenByPolicy":
		return ErrAccessDenied
	case e.Inner == "ObjectIsDeletedButRecoverable":
		return ErrSecretDeleted
	case e.Code == "VaultNotFound" || (e.Status == http.StatusNotFound && e.Code != "SecretNotFound"):
		return ErrVaultNotFound
	case e.Status == http.StatusUnauthorized:
		return ErrUnauthorized
	case e.Status == http.StatusForbidden:
		// A bare Forbidden from an RBAC vault.
		return ErrForbiddenByRbac
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		return ErrVaultUnavailable
	}
	return nil
}

// deliveryCode maps a SetSecret error to a condition code.
func deliveryCode(err error) string {
	switch {
	case errors.Is(err, ErrForbiddenByFirewall):
		return CodeForbiddenByFirewall
	case errors.Is(err, ErrForbiddenByRbac):
		return CodeMissingRoleAssignment
	case errors.Is(err, ErrAccessDenied):
		return CodeVaultNotRbacMode
	case errors.Is(err, ErrVaultNotFound):
		return CodeVaultNotFound
	case errors.Is(err, ErrUnauthorized):
		return CodeVaultUnauthorized
	case errors.Is(err, ErrSecretDeleted):
		return CodeSecretDeletedInVault
	case errors.Is(err, ErrVaultUnavailable):
		return CodeVaultUnavailable
	}
	var ve *VaultError
	if errors.As(err, &ve) {
		return CodeDeliveryFailed
	}
	return CodeVaultUnavailable // transport failure
}

// HTTPVaultClient speaks the Key Vault REST API: PUT
// {vaultUri}secrets/{name}?api-version=7.5 with a bearer token. It is meant
// to reach keyhaven's own listener, so authentication, firewall,
// authorization and audit all apply to the engine as to any client.
type HTTPVaultClient struct {
	c *http.Client
}

// NewHTTPVaultClient returns a client using c (its transport must trust
// keyhaven's CA and reach vault host names; see the package doc).
func NewHTTPVaultClient(c *http.Client) *HTTPVaultClient {
	if c == nil {
		c = http.DefaultClient
	}
	return &HTTPVaultClient{c: c}
}

var _ VaultClient = (*HTTPVaultClient)(nil)

const (
	deliveryAPIVersion = "7.5"
	maxVaultResponse   = 1 << 20
)

// SetSecret adds a version of name and returns its version id.
func (h *HTTPVaultClient) SetSecret(ctx context.Context, vaultURI, name, value, contentType string, tags map[string]string, bearer string) (string, error) {
	u, err := url.Parse(vaultURI)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return "", errors.New("vault: the vault URI must be an https URL")
	}
	if name == "" || len(name) > MaxSecretNameLen || sanitize(name) != name {
		return "", errors.New("vault: invalid secret name")
	}
	base := strings.TrimRight(u.String(), "/")
	body, err := json.Marshal(struct {
		Value       string            `json:"value"`
		ContentType string            `json:"contentType,omitempty"`
		Tags        map[string]string `json:"tags,omitempty"`
	}{value, contentType, tags})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, base+"/secrets/"+name+"?api-version="+deliveryAPIVersion, bytes.NewReader(body))
	if err != nil {
		return "", errors.New("vault: bad request URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	req.Header.Set("User-Agent", "keyhaven-rotation")
	resp, err := h.c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // keep the URL (no secrets) out of the chain twice
		}
		return "", fmt.Errorf("vault: PUT %s/secrets/%s: %w", base, name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxVaultResponse))
	if err != nil {
		return "", fmt.Errorf("vault: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		ve := &VaultError{Status: resp.StatusCode, Code: resp.Header.Get("x-ms-error-code")}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
				Inner   *struct {
					Code string `json:"code"`
				} `json:"innererror"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &eb) == nil {
			if ve.Code == "" {
				ve.Code = eb.Error.Code
			}
			ve.Message = clipStr(eb.Error.Message, 600)
			if eb.Error.Inner != nil {
				ve.Inner = clipStr(eb.Error.Inner.Code, 100)
			}
		}
		ve.Code = clipStr(ve.Code, 100)
		return "", ve
	}
	var out struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", errors.New("vault: malformed response")
	}
	// id is {vault}/secrets/{name}/{version}.
	idu, err := url.Parse(out.ID)
	if err != nil {
		return "", errors.New("vault: malformed secret id")
	}
	segs := strings.Split(strings.Trim(idu.Path, "/"), "/")
	n := len(segs)
	if n < 3 || segs[n-3] != "secrets" || !strings.EqualFold(segs[n-2], name) || segs[n-1] == "" {
		return "", errors.New("vault: unexpected secret id in the response")
	}
	return segs[n-1], nil
}
