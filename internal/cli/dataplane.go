package cli

import (
	"context"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

var (
	vaultNameRE   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	objectNameRE  = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionNameRE = regexp.MustCompile(`^[0-9a-zA-Z]{0,64}$`)
)

// kvItem addresses a Key Vault object: base is the vault URL
// (https://{vault}.{domain}[:port], or the path form .../vaults/{vault}).
type kvItem struct {
	base, name, version string
}

// vaultURL is the data-plane URL of a vault by name.
func (a *app) vaultURL(vault string) (string, error) {
	if !vaultNameRE.MatchString(vault) || strings.Contains(vault, "--") {
		return "", usageErrorf("argument --vault-name: invalid vault name %q (3-24 letters, digits and hyphens)", vault)
	}
	cfg, err := a.loggedIn()
	if err != nil {
		return "", err
	}
	host := strings.ToLower(vault) + "." + cfg.Endpoint.VaultDomain
	if cfg.Endpoint.VaultPort != "" {
		host = net.JoinHostPort(host, cfg.Endpoint.VaultPort)
	}
	return "https://" + host, nil
}

// parseObjectID splits a Key Vault object id such as
// https://v.vault.localhost:8443/secrets/name/version (or the path form
// https://host/vaults/v/secrets/name) for the given collection(s).
func parseObjectID(id string, collections ...string) (*kvItem, string, error) {
	bad := usageErrorf("argument --id: invalid Key Vault id %q", id)
	if len(id) > maxIDLength {
		return nil, "", bad
	}
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return nil, "", bad
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	base := "https://" + u.Host
	if len(segs) >= 2 && segs[0] == "vaults" {
		if !vaultNameRE.MatchString(segs[1]) {
			return nil, "", bad
		}
		base += "/vaults/" + segs[1]
		segs = segs[2:]
	}
	if len(segs) < 2 || len(segs) > 3 {
		return nil, "", bad
	}
	coll := ""
	for _, c := range collections {
		if strings.EqualFold(segs[0], c) {
			coll = c
		}
	}
	if coll == "" || !objectNameRE.MatchString(segs[1]) {
		return nil, "", bad
	}
	it := &kvItem{base: base, name: segs[1]}
	if len(segs) == 3 {
		if !versionNameRE.MatchString(segs[2]) {
			return nil, "", bad
		}
		it.version = segs[2]
	}
	return it, coll, nil
}

// parseVaultID accepts a vault URL for --id on list commands.
func parseVaultID(id string) (string, error) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.RawQuery != "" {
		return "", usageErrorf("argument --id: invalid vault URL %q", id)
	}
	segs := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch {
	case len(segs) == 1 && segs[0] == "":
		return "https://" + u.Host, nil
	case len(segs) == 2 && segs[0] == "vaults" && vaultNameRE.MatchString(segs[1]):
		return "https://" + u.Host + "/vaults/" + segs[1], nil
	}
	return "", usageErrorf("argument --id: invalid vault URL %q", id)
}

// checkVaultHost makes sure a vault URL from --id points at the logged-in
// server before a token is sent to it.
func (a *app) checkVaultHost(base string) error {
	cfg, err := a.loggedIn()
	if err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return usageErrorf("invalid vault URL %q", base)
	}
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "443" {
		port = ""
	}
	srv, _ := url.Parse(cfg.Server)
	srvPort := ""
	if srv != nil {
		srvPort = srv.Port()
		if srvPort == "443" {
			srvPort = ""
		}
	}
	switch {
	case strings.HasSuffix(host, "."+cfg.Endpoint.VaultDomain) && port == cfg.Endpoint.VaultPort:
		return nil
	case srv != nil && strings.EqualFold(host, srv.Hostname()) && port == srvPort:
		return nil
	}
	return usageErrorf("argument --id: %s is not a vault of the logged-in server", u.Host)
}

// kvURL builds a data-plane URL with api-version.
func kvURL(base, path string, q url.Values) string {
	if q == nil {
		q = url.Values{}
	}
	q.Set("api-version", apiDataPlane)
	return base + path + "?" + q.Encode()
}

// kv sends a data-plane request and decodes the JSON answer.
func (a *app) kv(ctx context.Context, method, u string, body any) (any, error) {
	cfg, err := a.loggedIn()
	if err != nil {
		return nil, err
	}
	aud := cfg.Endpoint.VaultAudience
	if aud == "" {
		return nil, &azerr.Error{Message: "The server's vault audience is unknown; run 'keyhaven login' again."}
	}
	resp, err := a.send(ctx, request{method: method, url: u, body: body, audience: aud})
	if err != nil {
		return nil, err
	}
	return decodeBody(resp.body)
}

func (a *app) kvList(ctx context.Context, u string, max int) ([]any, error) {
	cfg, err := a.loggedIn()
	if err != nil {
		return nil, err
	}
	return a.listPages(ctx, u, cfg.Endpoint.VaultAudience, max)
}

// withName adds az's "name" field (the id's second path segment) to a
// Key Vault object when the server did not send one.
func withName(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	if _, has := m["name"]; has {
		return m
	}
	id, _ := m["id"].(string)
	if id == "" {
		id, _ = m["kid"].(string)
	}
	if u, err := url.Parse(id); err == nil {
		segs := strings.Split(strings.Trim(u.Path, "/"), "/")
		if len(segs) >= 2 && segs[0] == "vaults" {
			segs = segs[2:]
		}
		if len(segs) >= 2 {
			m["name"] = segs[1]
		}
	}
	return m
}

func withNames(items []any) []any {
	for i := range items {
		items[i] = withName(items[i])
	}
	return items
}
