package cli

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

func (a *app) graphURL(path string, q url.Values) (string, string, error) {
	cfg, err := a.loggedIn()
	if err != nil {
		return "", "", err
	}
	base := cfg.Endpoint.GraphEndpoint
	if base == "" {
		base = cfg.Server
	}
	aud := cfg.Endpoint.GraphAudience
	if aud == "" {
		aud = cfg.Endpoint.ARMAudience
	}
	if aud == "" {
		aud = cfg.Server
	}
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil {
		return "", "", err
	}
	u.Path += "/v1.0" + path
	if q != nil {
		u.RawQuery = q.Encode()
	}
	return u.String(), aud, nil
}

// graph calls the Graph-like /v1.0 directory API.
func (a *app) graph(ctx context.Context, method, path string, body any) (any, error) {
	u, aud, err := a.graphURL(path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.send(ctx, request{method: method, url: u, body: body, audience: aud})
	if err != nil {
		return nil, err
	}
	return decodeBody(resp.body)
}

func (a *app) graphList(ctx context.Context, path string) ([]any, error) {
	u, aud, err := a.graphURL(path, nil)
	if err != nil {
		return nil, err
	}
	return a.listPages(ctx, u, aud, 0)
}

// graphKey escapes a user-supplied id or UPN for a path segment.
func graphKey(s string) (string, error) {
	if s == "" || len(s) > 1024 || strings.ContainsAny(s, "/?#\\") {
		return "", usageErrorf("invalid directory object id %q", s)
	}
	return url.PathEscape(s), nil
}

// user finds a user by object id or user principal name.
func (a *app) user(ctx context.Context, id string) (map[string]any, error) {
	k, err := graphKey(id)
	if err != nil {
		return nil, err
	}
	v, err := a.graph(ctx, http.MethodGet, "/users/"+k, nil)
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// servicePrincipal finds a service principal by object id, appId, display
// name or one of its servicePrincipalNames.
func (a *app) servicePrincipal(ctx context.Context, id string) (map[string]any, error) {
	k, err := graphKey(id)
	if err != nil {
		return nil, err
	}
	if isGUID(id) {
		v, err := a.graph(ctx, http.MethodGet, "/servicePrincipals/"+k, nil)
		if err == nil {
			m, _ := v.(map[string]any)
			return m, nil
		}
		if !isNotFound(err) {
			return nil, err
		}
	}
	items, err := a.graphList(ctx, "/servicePrincipals")
	if err != nil {
		return nil, err
	}
	for _, field := range []string{"id", "appId", "displayName", "servicePrincipalNames"} {
		for _, it := range items {
			m, _ := it.(map[string]any)
			switch v := m[field].(type) {
			case string:
				if strings.EqualFold(v, id) {
					return m, nil
				}
			case []any:
				for _, n := range v {
					if s, _ := n.(string); strings.EqualFold(s, id) {
						return m, nil
					}
				}
			}
		}
	}
	return nil, &azerr.Error{Status: http.StatusNotFound, Code: "NotFound", Message: "Service principal '" + id + "' doesn't exist."}
}

// resolveAssignee turns az's --assignee (object id, appId, UPN or service
// principal name) into an object id and principal type.
func (a *app) resolveAssignee(ctx context.Context, assignee string) (string, string, error) {
	if strings.Contains(assignee, "@") {
		u, err := a.user(ctx, assignee)
		if err != nil {
			return "", "", err
		}
		id, _ := u["id"].(string)
		return id, "User", nil
	}
	if isGUID(assignee) {
		u, err := a.user(ctx, assignee)
		if err == nil {
			id, _ := u["id"].(string)
			return id, "User", nil
		}
		if !isNotFound(err) {
			return "", "", err
		}
	}
	sp, err := a.servicePrincipal(ctx, assignee)
	if err != nil {
		if isNotFound(err) {
			return "", "", &azerr.Error{Message: "Cannot find user or service principal in graph database for '" + assignee + "'. If the assignee is an appId, make sure the corresponding service principal is created."}
		}
		return "", "", err
	}
	id, _ := sp["id"].(string)
	return id, "ServicePrincipal", nil
}
