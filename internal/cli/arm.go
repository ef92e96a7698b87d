package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// api-versions the CLI speaks, per resource type (lower case).
const (
	apiResources     = "2022-09-01"
	apiSubscriptions = "2022-12-01"
	apiKeyVault      = "2023-07-01"
	apiMSI           = "2023-01-31"
	apiAuthorization = "2022-04-01"
	apiLocks         = "2020-05-01"
	apiMetadata      = "2022-09-01"
	apiDataPlane     = "7.5"
)

var apiVersionByType = map[string]string{
	"microsoft.resources/resourcegroups":                   apiResources,
	"microsoft.resources/subscriptions":                    apiSubscriptions,
	"microsoft.keyvault/vaults":                            apiKeyVault,
	"microsoft.keyvault/deletedvaults":                     apiKeyVault,
	"microsoft.managedidentity/userassignedidentities":     apiMSI,
	"microsoft.authorization/roleassignments":              apiAuthorization,
	"microsoft.authorization/roledefinitions":              apiAuthorization,
	"microsoft.authorization/locks":                        apiLocks,
	"microsoft.keyvault/vaults/accesspolicies":             apiKeyVault,
	"microsoft.managedidentity/identities":                 apiMSI,
	"microsoft.keyvault/vaults/privateendpointconnections": apiKeyVault,
}

const (
	maxIDLength   = 2048
	maxPages      = 1000
	maxLROPolls   = 10000
	maxLROTime    = time.Hour
	maxIDsPerCall = 100
)

// resourceID is a parsed ARM resource id. Provider, Types and Names are
// those of the last /providers/ segment (extension resources nest).
type resourceID struct {
	Raw           string
	Subscription  string
	ResourceGroup string
	Provider      string
	Types         []string
	Names         []string
}

// parseResourceID parses /subscriptions/{s}[/resourceGroups/{rg}][/providers/{ns}/{type}/{name}...].
func parseResourceID(id string) (*resourceID, error) {
	if len(id) > maxIDLength {
		return nil, usageErrorf("resource id is longer than %d characters", maxIDLength)
	}
	bad := func() error { return usageErrorf("invalid resource id %q", id) }
	if !strings.HasPrefix(id, "/") {
		return nil, bad()
	}
	segs := strings.Split(strings.TrimSuffix(id[1:], "/"), "/")
	if len(segs) < 2 || !strings.EqualFold(segs[0], "subscriptions") {
		return nil, bad()
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "?#") {
			return nil, bad()
		}
	}
	r := &resourceID{Raw: strings.TrimSuffix(id, "/"), Subscription: segs[1]}
	i := 2
	if i+1 < len(segs) && strings.EqualFold(segs[i], "resourceGroups") {
		r.ResourceGroup = segs[i+1]
		i += 2
	} else if i < len(segs) && strings.EqualFold(segs[i], "resourceGroups") {
		return nil, bad()
	}
	for i < len(segs) {
		if !strings.EqualFold(segs[i], "providers") || i+1 >= len(segs) {
			return nil, bad()
		}
		r.Provider, r.Types, r.Names = segs[i+1], nil, nil
		i += 2
		for i < len(segs) && !strings.EqualFold(segs[i], "providers") {
			if i+1 >= len(segs) {
				// A trailing type without a name: a collection, not a resource.
				return nil, bad()
			}
			r.Types = append(r.Types, segs[i])
			r.Names = append(r.Names, segs[i+1])
			i += 2
		}
		if len(r.Types) == 0 {
			return nil, bad()
		}
	}
	return r, nil
}

// FullType is e.g. Microsoft.KeyVault/vaults, or Microsoft.Resources/resourceGroups.
func (r *resourceID) FullType() string {
	switch {
	case r.Provider != "":
		return r.Provider + "/" + strings.Join(r.Types, "/")
	case r.ResourceGroup != "":
		return "Microsoft.Resources/resourceGroups"
	}
	return "Microsoft.Resources/subscriptions"
}

// Name is the resource's own name (last segment).
func (r *resourceID) Name() string {
	switch {
	case len(r.Names) > 0:
		return r.Names[len(r.Names)-1]
	case r.ResourceGroup != "":
		return r.ResourceGroup
	}
	return r.Subscription
}

// checkName rejects names that would change the request path.
func checkName(flag, name string) error {
	if name == "" {
		return usageErrorf("argument %s: expected a non-empty value", flag)
	}
	if len(name) > 260 || strings.ContainsAny(name, "/?#%\\") || name == "." || name == ".." {
		return usageErrorf("argument %s: invalid name %q", flag, name)
	}
	return nil
}

// scopePath is /subscriptions/{s}[/resourceGroups/{rg}].
func (a *app) scopePath(rg string) (string, error) {
	sub, err := a.subscriptionID()
	if err != nil {
		return "", err
	}
	p := "/subscriptions/" + sub
	if rg != "" {
		if err := checkName("--resource-group/-g", rg); err != nil {
			return "", err
		}
		p += "/resourceGroups/" + rg
	}
	return p, nil
}

// resourcePath is the id of provider resource ns/typ/name in rg.
func (a *app) resourcePath(rg, ns, typ, name string) (string, error) {
	if rg == "" {
		return "", usageErrorf("the following arguments are required: --resource-group/-g")
	}
	if err := checkName("--name/-n", name); err != nil {
		return "", err
	}
	scope, err := a.scopePath(rg)
	if err != nil {
		return "", err
	}
	return scope + "/providers/" + ns + "/" + typ + "/" + name, nil
}

// targets resolves a command's resources: the --ids given (checked to be of
// fullType), or the one named by -g/-n.
func (a *app) targets(ids []string, rg, name, fullType string) ([]string, error) {
	if len(ids) > 0 {
		if rg != "" || name != "" {
			return nil, usageErrorf("usage error: --ids cannot be combined with --name or --resource-group")
		}
		if len(ids) > maxIDsPerCall {
			return nil, usageErrorf("argument --ids: at most %d ids", maxIDsPerCall)
		}
		out := make([]string, 0, len(ids))
		for _, id := range ids {
			r, err := parseResourceID(id)
			if err != nil {
				return nil, err
			}
			if !strings.EqualFold(r.FullType(), fullType) {
				return nil, usageErrorf("argument --ids: %q is not a %s resource id", id, fullType)
			}
			out = append(out, r.Raw)
		}
		return out, nil
	}
	if name == "" || rg == "" {
		return nil, usageErrorf("usage error: (--resource-group --name | --ids) are required")
	}
	ns, typ, _ := strings.Cut(fullType, "/")
	p, err := a.resourcePath(rg, ns, typ, name)
	if err != nil {
		return nil, err
	}
	return []string{p}, nil
}

// eachTarget runs fn per target; one target gives its result, several a list.
func eachTarget(paths []string, fn func(string) (any, error)) (any, error) {
	var out []any
	for _, p := range paths {
		v, err := fn(p)
		if err != nil {
			return nil, err
		}
		if v != nil {
			out = append(out, v)
		}
	}
	switch {
	case len(paths) == 1 && len(out) == 1:
		return out[0], nil
	case len(out) == 0:
		return nil, nil
	}
	return out, nil
}

func (a *app) armBase() (string, string, error) {
	cfg, err := a.loggedIn()
	if err != nil {
		return "", "", err
	}
	base := cfg.Endpoint.ResourceManager
	if base == "" {
		base = cfg.Server
	}
	aud := cfg.Endpoint.ARMAudience
	if aud == "" {
		aud = cfg.Server
	}
	return strings.TrimRight(base, "/"), strings.TrimRight(aud, "/"), nil
}

func (a *app) armURL(path, apiVersion string, q url.Values) (string, string, error) {
	base, aud, err := a.armBase()
	if err != nil {
		return "", "", err
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", "", err
	}
	u.Path = strings.TrimRight(u.Path, "/") + path
	qq := url.Values{}
	for k, v := range q {
		qq[k] = v
	}
	qq.Set("api-version", apiVersion)
	u.RawQuery = qq.Encode()
	return u.String(), aud, nil
}

// armCall is one ARM request.
type armCall struct {
	method     string
	path       string // resource path, starting with /
	apiVersion string
	query      url.Values
	body       any
	noWait     bool // return after the initial response (az's --no-wait)
}

// arm sends c and follows a long-running operation to its end, returning
// the final resource (nil when there is none).
func (a *app) arm(ctx context.Context, c armCall) (any, error) {
	u, aud, err := a.armURL(c.path, c.apiVersion, c.query)
	if err != nil {
		return nil, err
	}
	resp, err := a.send(ctx, request{method: c.method, url: u, body: c.body, audience: aud})
	if err != nil {
		return nil, err
	}
	if c.noWait {
		return nil, nil
	}
	return a.finishLRO(ctx, c.method, u, aud, resp)
}

func (a *app) armGet(ctx context.Context, path, apiVersion string) (any, error) {
	return a.arm(ctx, armCall{method: http.MethodGet, path: path, apiVersion: apiVersion})
}

// armList GETs a collection and follows nextLink.
func (a *app) armList(ctx context.Context, path, apiVersion string, q url.Values) ([]any, error) {
	u, aud, err := a.armURL(path, apiVersion, q)
	if err != nil {
		return nil, err
	}
	return a.listPages(ctx, u, aud, 0)
}

// listPages collects "value" arrays following nextLink (same host only, so
// a token never leaves the server), up to max items when max > 0.
func (a *app) listPages(ctx context.Context, u, aud string, max int) ([]any, error) {
	out := []any{}
	first, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	for page := 0; u != "" && page < maxPages; page++ {
		resp, err := a.send(ctx, request{method: http.MethodGet, url: u, audience: aud})
		if err != nil {
			return nil, err
		}
		v, err := decodeBody(resp.body)
		if err != nil {
			return nil, err
		}
		m, _ := v.(map[string]any)
		items, _ := m["value"].([]any)
		out = append(out, items...)
		if max > 0 && len(out) >= max {
			return out[:max], nil
		}
		next, _ := m["nextLink"].(string)
		if next == "" {
			next, _ = m["@odata.nextLink"].(string)
		}
		if next == "" {
			break
		}
		nu, err := first.Parse(next)
		if err != nil || !strings.EqualFold(nu.Host, first.Host) {
			return nil, &azerr.Error{Message: "the server returned a nextLink to another host"}
		}
		u = nu.String()
	}
	return out, nil
}

func provisioningState(v any) string {
	m, _ := v.(map[string]any)
	if m == nil {
		return ""
	}
	if p, ok := m["properties"].(map[string]any); ok {
		if s, ok := p["provisioningState"].(string); ok {
			return s
		}
	}
	return ""
}

func terminalState(s string) bool {
	switch strings.ToLower(s) {
	case "", "succeeded", "failed", "canceled", "cancelled", "registered", "deleted":
		return true
	}
	return false
}

// finishLRO follows Azure's long-running-operation protocol: poll
// Azure-AsyncOperation for {"status"}, or Location until it stops answering
// 202, or the resource itself while its provisioningState is not terminal.
func (a *app) finishLRO(ctx context.Context, method, origURL, aud string, resp *response) (any, error) {
	asyncURL := resp.header.Get("Azure-AsyncOperation")
	locURL := resp.header.Get("Location")
	lro := (resp.status == http.StatusCreated || resp.status == http.StatusAccepted) && (asyncURL != "" || locURL != "")
	if !lro {
		v, err := decodeBody(resp.body)
		if err != nil {
			return nil, err
		}
		if (method == http.MethodPut || method == http.MethodPatch) && !terminalState(provisioningState(v)) {
			return a.pollResource(ctx, origURL, aud, retryAfter(resp.header, a.pollInterval))
		}
		if method == http.MethodDelete {
			return nil, nil
		}
		return v, nil
	}
	for _, pu := range []*string{&asyncURL, &locURL} {
		if *pu == "" {
			continue
		}
		abs, err := sameHostURL(origURL, *pu)
		if err != nil {
			return nil, err
		}
		*pu = abs
	}
	ctx, cancel := context.WithTimeout(ctx, maxLROTime)
	defer cancel()
	wait := retryAfter(resp.header, a.pollInterval)
	if asyncURL != "" {
		for i := 0; ; i++ {
			if i >= maxLROPolls {
				return nil, &azerr.Error{Message: "the long-running operation did not finish"}
			}
			if err := a.sleep(ctx, wait); err != nil {
				return nil, err
			}
			pr, err := a.send(ctx, request{method: http.MethodGet, url: asyncURL, audience: aud})
			if err != nil {
				return nil, err
			}
			v, err := decodeBody(pr.body)
			if err != nil {
				return nil, err
			}
			m, _ := v.(map[string]any)
			status, _ := m["status"].(string)
			a.debugf("long-running operation status: %s", status)
			switch strings.ToLower(status) {
			case "succeeded":
				switch method {
				case http.MethodPut, http.MethodPatch:
					r, err := a.send(ctx, request{method: http.MethodGet, url: origURL, audience: aud})
					if err != nil {
						return nil, err
					}
					return decodeBody(r.body)
				case http.MethodPost:
					if locURL != "" {
						r, err := a.send(ctx, request{method: http.MethodGet, url: locURL, audience: aud})
						if err != nil {
							return nil, err
						}
						return decodeBody(r.body)
					}
					if props, ok := m["properties"]; ok {
						return props, nil
					}
				}
				return nil, nil
			case "failed", "canceled", "cancelled":
				return nil, lroError(m, status)
			}
			wait = retryAfter(pr.header, a.pollInterval)
		}
	}
	for i := 0; ; i++ {
		if i >= maxLROPolls {
			return nil, &azerr.Error{Message: "the long-running operation did not finish"}
		}
		if err := a.sleep(ctx, wait); err != nil {
			return nil, err
		}
		pr, err := a.send(ctx, request{method: http.MethodGet, url: locURL, audience: aud})
		if err != nil {
			return nil, err
		}
		if pr.status == http.StatusAccepted {
			wait = retryAfter(pr.header, a.pollInterval)
			continue
		}
		if method == http.MethodDelete || pr.status == http.StatusNoContent {
			return nil, nil
		}
		return decodeBody(pr.body)
	}
}

// pollResource GETs a resource until its provisioningState is terminal.
func (a *app) pollResource(ctx context.Context, u, aud string, wait time.Duration) (any, error) {
	ctx, cancel := context.WithTimeout(ctx, maxLROTime)
	defer cancel()
	for i := 0; i < maxLROPolls; i++ {
		if err := a.sleep(ctx, wait); err != nil {
			return nil, err
		}
		r, err := a.send(ctx, request{method: http.MethodGet, url: u, audience: aud})
		if err != nil {
			return nil, err
		}
		v, err := decodeBody(r.body)
		if err != nil {
			return nil, err
		}
		st := provisioningState(v)
		if strings.EqualFold(st, "failed") || strings.EqualFold(st, "canceled") {
			return nil, &azerr.Error{Code: "Provisioning" + st, Message: "The resource's provisioning state is " + st + "."}
		}
		if terminalState(st) {
			return v, nil
		}
		wait = retryAfter(r.header, a.pollInterval)
	}
	return nil, &azerr.Error{Message: "the long-running operation did not finish"}
}

func lroError(m map[string]any, status string) error {
	e := &azerr.Error{Code: status, Message: "The long-running operation ended with status " + status + "."}
	if em, ok := m["error"].(map[string]any); ok {
		if c, _ := em["code"].(string); c != "" {
			e.Code = c
		}
		if msg, _ := em["message"].(string); msg != "" {
			e.Message = msg
		}
	}
	return e
}

// sameHostURL resolves ref against base and refuses other hosts, so the
// bearer token is only ever sent to the server it was issued for.
func sameHostURL(base, ref string) (string, error) {
	b, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	r, err := b.Parse(ref)
	if err != nil {
		return "", &azerr.Error{Message: "the server returned an invalid polling URL"}
	}
	if !strings.EqualFold(r.Host, b.Host) || r.Scheme != b.Scheme {
		return "", &azerr.Error{Message: fmt.Sprintf("the server returned a polling URL on another host (%s)", r.Host)}
	}
	return r.String(), nil
}

// isNotFound reports a 404 from the server.
func isNotFound(err error) bool {
	var ae *azerr.Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}
