package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/pki"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/providers/keyvault"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/rotation/drivers"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// newRotation builds the rotation engine. It delivers rotated credentials
// through the front door: real HTTPS requests to this process's own listener,
// so authentication, the vault firewall, authorization and the audit log all
// apply to the platform exactly as to any client.
func newRotation(cfg Config, st store.Store, sealer seal.Sealer, clk clock.Clock, ids *identity.Service,
	engine *authz.Engine, kvp *keyvault.Provider, boot *identity.BootstrapResult, tlsMat *pki.Material, log *slog.Logger) (*rotation.Service, error) {
	var targetCAs *x509.CertPool
	if cfg.TargetCAFile != "" {
		pem, err := os.ReadFile(cfg.TargetCAFile)
		if err != nil {
			return nil, fmt.Errorf("--target-ca-file: %w", err)
		}
		if targetCAs, err = x509.SystemCertPool(); err != nil || targetCAs == nil {
			targetCAs = x509.NewCertPool()
		}
		if !targetCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--target-ca-file %s holds no PEM certificate", cfg.TargetCAFile)
		}
	}
	drv, err := drivers.New(drivers.Options{RootCAs: targetCAs, AllowPlainHTTP: cfg.TargetAllowPlainHTTP})
	if err != nil {
		return nil, err
	}
	platform := &principal.Principal{TenantID: boot.TenantID, ObjectID: boot.PlatformObjectID,
		AppID: boot.PlatformAppID, Kind: principal.ServicePrincipal, Platform: true}
	return rotation.New(rotation.Config{
		Store: st, Sealer: sealer, Clock: clk,
		Tokens: ids, Principals: ids, Decider: engine, Vaults: kvp,
		PlatformPrincipal: func(context.Context) (*principal.Principal, error) { return platform, nil },
		VaultURIForName:   cfg.VaultURL,
		VaultClient:       rotation.NewHTTPVaultClient(selfClient(cfg, tlsMat)),
		VaultAudience:     cfg.VaultAudience(),
		Drivers:           drv,
		PollInterval:      cfg.RotationInterval,
		LeaseTTL:          cfg.RotationLeaseTTL,
		Backoff:           rotation.Backoff{Initial: cfg.RotationRetryInitial, Max: cfg.RotationRetryMax},
		AlertsAudiences:   []string{cfg.BaseURL()},
		Logger:            log,
	})
}

// selfClient is an HTTPS client that reaches this server's own listener for
// every host name (vault hosts included), trusting the server's CA.
func selfClient(cfg Config, tlsMat *pki.Material) *http.Client {
	addr := cfg.Listen
	if host, port, err := net.SplitHostPort(addr); err == nil {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: selfRoots(tlsMat)}
	d := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: tc,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		MaxIdleConnsPerHost: 8,
	}}
}

// selfRoots is what this server's own client trusts: the generated or
// bundled CA, else the system roots; plus the serving certificate itself,
// so a certificate given with --tls-cert from a private CA is trusted here
// without its CA being bundled.
func selfRoots(m *pki.Material) *x509.CertPool {
	pool := m.CAPool
	if pool == nil {
		if sys, err := x509.SystemCertPool(); err == nil && sys != nil {
			pool = sys
		} else {
			pool = x509.NewCertPool()
		}
	} else {
		pool = pool.Clone()
	}
	if m.Certificate.Leaf != nil {
		pool.AddCert(m.Certificate.Leaf)
	}
	return pool
}
