package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// API versions the portal speaks (those the CLI uses).
const (
	apiSubscriptions = "2022-12-01"
	apiResources     = "2022-09-01"
	apiKeyVault      = "2023-07-01"
	apiLocks         = "2020-05-01"
	apiDiagnostics   = "2021-05-01-preview"
	apiNetworkCloud  = "2025-02-01"
	apiEdge          = "2023-12-01"
	apiDataPlane     = "7.5"

	maxResponse = 16 << 20
	maxPages    = 100 // 2,500 secrets at the data plane's 25 a page
)

// apiError is an error answer of keyhaven's API, in Azure's shape; its
// message is public (written for clients).
type apiError struct {
	Status        int
	Code, Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func isStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// call sends one request to keyhaven as the session's user and decodes the
// JSON answer into out (when not nil).
func (p *Portal) call(ctx context.Context, s *session, method, rawURL, aud string, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	tok, err := p.token(ctx, s, aud)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keyhaven-portal")
	req.Header.Set("Authorization", "Bearer "+tok)
	p.forward(ctx, req)
	resp, err := p.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		// The token was refused (user disabled, signing key gone): the
		// session is over.
		return errSignedOut
	}
	if resp.StatusCode >= 400 {
		ae := &apiError{Status: resp.StatusCode, Code: resp.Header.Get("x-ms-error-code")}
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil {
			if e.Error.Code != "" {
				ae.Code = e.Error.Code
			}
			ae.Message = e.Error.Message
		}
		if ae.Message == "" {
			ae.Message = http.StatusText(resp.StatusCode)
		}
		return ae
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode %s answer: %w", req.URL.Path, err)
	}
	return nil
}

// forward marks req with the address of the browser the portal serves.
func (p *Portal) forward(ctx context.Context, req *http.Request) {
	if p.opts.Forward != nil {
		p.opts.Forward(req, principal.InfoFrom(ctx).ClientIP)
	}
}

// list collects the "value" items of a list answer following nextLink (on
// the same host only), up to max items.
func list[T any](ctx context.Context, p *Portal, s *session, rawURL, aud string, max int) ([]T, error) {
	first, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	var out []T
	for page := 0; rawURL != "" && page < maxPages; page++ {
		var pg struct {
			Value    []T    `json:"value"`
			NextLink string `json:"nextLink"`
		}
		if err := p.call(ctx, s, http.MethodGet, rawURL, aud, nil, &pg); err != nil {
			return nil, err
		}
		out = append(out, pg.Value...)
		if max > 0 && len(out) >= max {
			return out[:max], nil
		}
		rawURL = ""
		if pg.NextLink != "" {
			nu, err := first.Parse(pg.NextLink)
			if err != nil || !strings.EqualFold(nu.Host, first.Host) {
				return nil, errors.New("a nextLink names another host")
			}
			rawURL = nu.String()
		}
	}
	return out, nil
}

// arm is the URL of an ARM path with its api-version and query.
func (p *Portal) arm(path, apiVersion string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", apiVersion)
	return p.opts.BaseURL + path + "?" + q.Encode()
}

func (p *Portal) armGet(ctx context.Context, s *session, path, apiVersion string, out any) error {
	return p.call(ctx, s, http.MethodGet, p.arm(path, apiVersion, nil), p.opts.BaseURL, nil, out)
}

func armList[T any](ctx context.Context, p *Portal, s *session, path, apiVersion string) ([]T, error) {
	return list[T](ctx, p, s, p.arm(path, apiVersion, nil), p.opts.BaseURL, 0)
}

// nameRE is what the portal accepts as a subscription, resource group or
// resource name in its own URLs (ARM's characters; never "." or "..").
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._()-]{0,89}$`)

// ids reads {sub}, {rg} and {name} from the request path.
func pathNames(r *http.Request, keys ...string) ([]string, bool) {
	out := make([]string, len(keys))
	for i, k := range keys {
		v := r.PathValue(k)
		if !nameRE.MatchString(v) {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// resourceID is an ARM resource ID's parts the portal links with.
type resourceID struct {
	Sub, RG, Type, Name string
}

// parseID reads /subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}.
func parseID(id string) (resourceID, bool) {
	seg := strings.Split(strings.Trim(id, "/"), "/")
	if len(seg) < 8 || !strings.EqualFold(seg[0], "subscriptions") || !strings.EqualFold(seg[2], "resourceGroups") ||
		!strings.EqualFold(seg[4], "providers") {
		return resourceID{}, false
	}
	r := resourceID{Sub: seg[1], RG: seg[3], Type: seg[5] + "/" + seg[6], Name: seg[7]}
	if !nameRE.MatchString(r.Sub) || !nameRE.MatchString(r.RG) || !nameRE.MatchString(r.Name) {
		return resourceID{}, false
	}
	return r, true
}

// link is the portal page of a resource ID ("" when the portal has none).
func link(id string) string {
	r, ok := parseID(id)
	if !ok {
		return ""
	}
	var kind string
	switch strings.ToLower(r.Type) {
	case "microsoft.keyvault/vaults":
		kind = "vaults"
	case "microsoft.networkcloud/clusters":
		kind = "clusters"
	case "microsoft.databoxedge/databoxedgedevices":
		kind = "devices"
	case "microsoft.managedidentity/userassignedidentities":
		kind = "identities"
	default:
		return ""
	}
	return Prefix + "/" + kind + "/" + url.PathEscape(r.Sub) + "/" + url.PathEscape(r.RG) + "/" + url.PathEscape(r.Name)
}

func rgPath(sub, rg string) string {
	return "/subscriptions/" + url.PathEscape(sub) + "/resourceGroups/" + url.PathEscape(rg)
}

func resPath(sub, rg, typ, name string) string {
	return rgPath(sub, rg) + "/providers/" + typ + "/" + url.PathEscape(name)
}
