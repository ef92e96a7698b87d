package clientnet

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// ErrNoPEM is returned for a CA that holds no PEM certificate.
var ErrNoPEM = errors.New("the CA file holds no PEM certificate")

// Transport reaches the server at server (a URL with a host, and an
// optional port defaulting to 443). It trusts caPEM (system roots when
// empty), dials names under vaultDomain to the server and *.localhost names
// to the loopback address, and never sends those names to a proxy.
func Transport(server *url.URL, caPEM []byte, vaultDomain string) (*http.Transport, error) {
	serverAddr := server.Host
	if server.Port() == "" {
		serverAddr = net.JoinHostPort(server.Hostname(), "443")
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, ErrNoPEM
		}
		tlsCfg.RootCAs = pool
	}
	vaultDomain = strings.ToLower(vaultDomain)
	underVaultDomain := func(h string) bool {
		return vaultDomain != "" && (h == vaultDomain || strings.HasSuffix(h, "."+vaultDomain))
	}
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		h := strings.ToLower(strings.TrimSuffix(host, "."))
		switch {
		case underVaultDomain(h):
			addr = serverAddr
		case strings.HasSuffix(h, ".localhost"):
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		// The server itself may be named under .localhost too.
		if sh, sp, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(strings.ToLower(sh), ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", sp)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	// Names the dialer rewrites must never go to a proxy, which could not
	// resolve them either.
	proxy := func(req *http.Request) (*url.URL, error) {
		h := strings.ToLower(strings.TrimSuffix(req.URL.Hostname(), "."))
		if underVaultDomain(h) || strings.HasSuffix(h, ".localhost") {
			return nil, nil
		}
		return http.ProxyFromEnvironment(req)
	}
	return &http.Transport{
		Proxy:               proxy,
		DialContext:         dial,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 15 * time.Second,
		MaxIdleConns:        10,
		IdleConnTimeout:     60 * time.Second,
		ForceAttemptHTTP2:   true,
	}, nil
}
