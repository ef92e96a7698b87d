package server

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"

	"github.com/keyhaven/keyhaven/internal/pki"
	"github.com/keyhaven/keyhaven/internal/web"
)

// The portal calls this server's APIs through its own listener, so without
// help every call would come from the server's address: the vault firewall
// would judge the server, not the browser, and audit events would name it.
// The portal therefore stamps each call with the browser's address and a
// per-process key; instrument believes the address only with that key (256
// random bits, never leaving the process) and strips both headers.
const (
	portalClientIPHeader = "X-Keyhaven-Portal-Client-Ip"
	portalKeyHeader      = "X-Keyhaven-Portal-Key"
)

// newPortal builds the portal with the client that reaches this server, and
// the forwarding key it stamps on its calls.
func newPortal(cfg Config, tlsMat *pki.Material, log *slog.Logger) (*web.Portal, string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, "", err
	}
	key := hex.EncodeToString(b)
	p, err := web.New(web.Options{BaseURL: cfg.BaseURL(), VaultAudience: cfg.VaultAudience(),
		Client: selfClient(cfg, tlsMat), Logger: log,
		Forward: func(req *http.Request, clientIP string) {
			if clientIP != "" {
				req.Header.Set(portalClientIPHeader, clientIP)
				req.Header.Set(portalKeyHeader, key)
			}
		}})
	return p, key, err
}

// forwardedClientIP returns the browser's address a portal call carries
// (ip unchanged for any other request) and removes the portal's headers.
func (s *Server) forwardedClientIP(r *http.Request, ip string) string {
	fwd, key := r.Header.Get(portalClientIPHeader), r.Header.Get(portalKeyHeader)
	if fwd == "" && key == "" {
		return ip
	}
	r.Header.Del(portalClientIPHeader)
	r.Header.Del(portalKeyHeader)
	if s.portalKey == "" || subtle.ConstantTimeCompare([]byte(key), []byte(s.portalKey)) != 1 {
		return ip
	}
	if a := net.ParseIP(fwd); a != nil {
		return a.String()
	}
	return ip
}
