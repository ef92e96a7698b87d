package server

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// VaultPlane is what the server needs of the data plane.
type VaultPlane interface {
	ServeVault(w http.ResponseWriter, r *http.Request, vaultName, baseURL string)
}

// planes are the handlers the router dispatches to; any may be nil in tests.
type planes struct {
	identity http.Handler // token endpoint, OIDC discovery, JWKS
	graph    http.Handler // /v1.0 directory API
	audit    http.Handler // /audit: query, verify, insights, hash
	rotation http.Handler // /rotation/alerts
	mi       http.Handler // /msi/token
	edge     http.Handler // /edge/activate: a Data Box Edge device redeems its activation key
	portal   http.Handler // /portal: the operator portal (a client of the APIs above)
	arm      http.Handler // /subscriptions, /providers
	vault    VaultPlane
	ready    func() error
}

// vaultName returns the vault named by a host of the form {vault}.{domain}.
func (s *Server) vaultName(host string) (string, bool) {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	suffix := "." + strings.ToLower(s.cfg.VaultDomain)
	name, ok := strings.CutSuffix(host, suffix)
	if !ok || name == "" || strings.Contains(name, ".") {
		return "", false
	}
	return name, true
}

// plane names the plane of a request for metrics.
func (s *Server) plane(r *http.Request) string {
	if _, ok := s.vaultName(r.Host); ok {
		return "vault"
	}
	seg, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	switch strings.ToLower(seg) {
	case "subscriptions", "providers", "tenants":
		return "arm"
	case "vaults":
		return "vault"
	case "msi":
		return "mi"
	case "edge":
		return "edge"
	case "portal":
		return "portal"
	case "v1.0":
		return "graph"
	case "audit":
		return "audit"
	case "rotation":
		return "rotation"
	case "healthz", "readyz", "metrics", "metadata", "":
		return "server"
	default:
		return "identity"
	}
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if name, ok := s.vaultName(r.Host); ok {
		s.serveVault(w, r, name, strings.TrimSuffix(s.cfg.VaultURL(name), "/"))
		return
	}
	path := r.URL.Path
	if strings.Contains(path, "//") {
		// ARM ignores empty path segments, and some clients send them
		// (@azure/arm-locks writes "Microsoft.KeyVault//vaults" for a
		// top-level parent, and "/%2Fsubscriptions..." for a scope).
		path = collapseSlashes(path)
		r = r.Clone(r.Context())
		r.URL.Path, r.URL.RawPath = path, ""
	}
	seg, rest, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	switch strings.ToLower(seg) {
	case "healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case "readyz":
		if s.planes.ready != nil {
			if err := s.planes.ready(); err != nil {
				s.log.Warn("not ready", "err", err)
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	case "metrics":
		s.metricsHandler.ServeHTTP(w, r)
	case "metadata":
		s.serveMetadata(w, r)
	case "":
		writeJSON(w, http.StatusOK, map[string]string{"name": "keyhaven", "resourceManager": s.cfg.BaseURL(), "metadata": s.cfg.BaseURL() + "/metadata/endpoints?api-version=2022-09-01"})
	case "subscriptions", "providers", "tenants":
		serveOr404(s.planes.arm, w, r)
	case "vaults":
		// Path form: /vaults/{vault}/secrets/... for curl and tools that
		// cannot use per-vault host names.
		name, sub, _ := strings.Cut(rest, "/")
		if name == "" {
			azerr.Write(w, azerr.NotFound("NotFound", "No vault named in the path: use /vaults/{vault}/..."))
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path = "/" + sub
		r2.URL.RawPath = ""
		s.serveVault(w, r2, strings.ToLower(name), s.cfg.BaseURL()+"/vaults/"+strings.ToLower(name))
	case "msi":
		serveOr404(s.planes.mi, w, r)
	case "edge":
		serveOr404(s.planes.edge, w, r)
	case "portal":
		serveOr404(s.planes.portal, w, r)
	case "v1.0":
		serveOr404(s.planes.graph, w, r)
	case "audit":
		serveOr404(s.planes.audit, w, r)
	case "rotation":
		serveOr404(s.planes.rotation, w, r)
	default:
		serveOr404(s.planes.identity, w, r)
	}
}

func (s *Server) serveVault(w http.ResponseWriter, r *http.Request, name, base string) {
	if s.planes.vault == nil {
		azerr.Write(w, azerr.NotFound("NotFound", "The vault data plane is not enabled."))
		return
	}
	s.planes.vault.ServeVault(w, r, name, base)
}

func serveOr404(h http.Handler, w http.ResponseWriter, r *http.Request) {
	if h == nil {
		azerr.Write(w, azerr.NotFound("NotFound", "No handler for path %s.", truncate(r.URL.Path, 200)))
		return
	}
	h.ServeHTTP(w, r)
}

// serveMetadata answers the cloud-metadata request clients (keyhaven login)
// use to discover endpoints, in the shape of ARM's /metadata/endpoints, with
// keyhaven's default tenant as an extension field.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	base := s.cfg.BaseURL()
	suffix := "." + hostPort(s.cfg.VaultDomain, s.cfg.PublicPort)
	writeJSON(w, http.StatusOK, map[string]any{
		"name":   "keyhaven",
		"portal": base + "/portal",
		"authentication": map[string]any{
			"loginEndpoint":    base,
			"audiences":        []string{base},
			"tenant":           "common",
			"identityProvider": "AAD",
		},
		"resourceManager":          base,
		"graph":                    base,
		"microsoftGraphResourceId": base,
		"suffixes": map[string]any{
			"keyVaultDns": suffix,
		},
		"vaultAudience":   s.cfg.VaultAudience(),
		"defaultTenantId": s.defaultTenant,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func collapseSlashes(p string) string {
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		if p[i] == '/' && i > 0 && p[i-1] == '/' {
			continue
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
