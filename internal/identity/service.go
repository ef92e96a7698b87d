package identity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Options configures a Service. Zero values take the documented defaults.
type Options struct {
	// BaseURL is the public URL of the server, e.g. https://localhost:8443.
	// Issuers are {BaseURL}/{tenantId}/v2.0.
	BaseURL string
	// TokenLifetime of access and ID tokens (default 1h, at most 24h).
	TokenLifetime time.Duration
	// RefreshTokenLifetime (default 14 days, at most 90 days).
	RefreshTokenLifetime time.Duration
	// KeyRotationInterval: the active signing key is replaced once it is this
	// old (default 30 days, at least 1h).
	KeyRotationInterval time.Duration
	// ClockSkew tolerated on nbf/exp/iat (default 2m, at most 5m).
	ClockSkew time.Duration
	// GraphAudiences are the token audiences the Graph-like API accepts in
	// addition to BaseURL.
	GraphAudiences []string
	// MaxConcurrentPasswordChecks bounds argon2id work (memory-hard) running
	// at once; beyond it the token endpoint answers 429 (default 4).
	MaxConcurrentPasswordChecks int
	// Logger for operational messages; never receives secrets. Default: discard.
	Logger *slog.Logger
}

// Service is the identity service. It is safe for concurrent use; several
// replicas may share one store.
type Service struct {
	st     store.Store
	sealer seal.Sealer
	clk    clock.Clock
	opts   Options
	base   string // BaseURL without trailing slash
	log    *slog.Logger
	pwSem  chan struct{}

	keysMu sync.Mutex
	keys   *keySet // cached signing keys; nil until loaded
	// lastForcedReload rate-limits reloads triggered by unknown kids.
	lastForcedReload time.Time

	pepperMu sync.Mutex
	pepper   []byte

	platformMu sync.Mutex
	platform   *bootstrapRecord
}

const (
	defaultTokenLifetime   = time.Hour
	defaultRefreshLifetime = 14 * 24 * time.Hour
	defaultRotation        = 30 * 24 * time.Hour
	defaultSkew            = 2 * time.Minute
	keyRetentionMargin     = 5 * time.Minute
)

// New returns a Service. Nothing is written to the store until first use
// (Bootstrap, a token request or Verify), so New never blocks on I/O.
func New(st store.Store, sealer seal.Sealer, clk clock.Clock, opts Options) (*Service, error) {
	if st == nil || sealer == nil || clk == nil {
		return nil, errors.New("identity: store, sealer and clock are required")
	}
	u, err := url.Parse(opts.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("identity: BaseURL must be an absolute http(s) URL, got %q", opts.BaseURL)
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = defaultTokenLifetime
	}
	if opts.TokenLifetime < time.Minute || opts.TokenLifetime > 24*time.Hour {
		return nil, fmt.Errorf("identity: TokenLifetime must be between 1m and 24h")
	}
	if opts.RefreshTokenLifetime == 0 {
		opts.RefreshTokenLifetime = defaultRefreshLifetime
	}
	if opts.RefreshTokenLifetime < time.Minute || opts.RefreshTokenLifetime > 90*24*time.Hour {
		return nil, fmt.Errorf("identity: RefreshTokenLifetime must be between 1m and 90 days")
	}
	if opts.KeyRotationInterval == 0 {
		opts.KeyRotationInterval = defaultRotation
	}
	if opts.KeyRotationInterval < time.Hour {
		return nil, fmt.Errorf("identity: KeyRotationInterval must be at least 1h")
	}
	if opts.ClockSkew == 0 {
		opts.ClockSkew = defaultSkew
	}
	if opts.ClockSkew < 0 || opts.ClockSkew > 5*time.Minute {
		return nil, fmt.Errorf("identity: ClockSkew must be between 0 and 5m")
	}
	if opts.MaxConcurrentPasswordChecks <= 0 {
		opts.MaxConcurrentPasswordChecks = 4
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{
		st: st, sealer: sealer, clk: clk, opts: opts,
		base:  strings.TrimRight(opts.BaseURL, "/"),
		log:   log,
		pwSem: make(chan struct{}, opts.MaxConcurrentPasswordChecks),
	}, nil
}

// Issuer returns the issuer of tokens for tenantID.
func (s *Service) Issuer(tenantID string) string { return s.base + "/" + tenantID + "/v2.0" }

// now is the service's notion of the current time, truncated to seconds as
// JWT times are.
func (s *Service) now() time.Time { return s.clk.Now().UTC() }

// Store key layout; everything under "identity/".
const (
	pfx            = "identity/"
	kTenant        = pfx + "tenants/"       // + tenant id → tenantRecord
	kDomain        = pfx + "domains/"       // + lower(domain) → tenant id
	kDefaultTenant = pfx + "default-tenant" // → tenant id
	kBootstrap     = pfx + "bootstrap"      // → bootstrapRecord
	kPrincipal     = pfx + "principals/"    // + object id → principalRecord
	kUPN           = pfx + "upn/"           // + lower(upn) → object id
	kClientID      = pfx + "clientids/"     // + appId/clientId → object id
	kApp           = pfx + "apps/"          // + appId → appRecord
	kAppObj        = pfx + "appobjects/"    // + application object id → appId
	kMISystem      = pfx + "mi/system/"     // + lower(resource id) → object id
	kMIUser        = pfx + "mi/user/"       // + lower(resource id) → object id
	kAttach        = pfx + "attach/"        // + lower(resource id) → attachRecord
	kSigning       = pfx + "signing"        // → keyState
	kPepper        = pfx + "pepper"         // → sealed pepper
	kRefresh       = pfx + "refresh/"       // + hex(hmac(token)) → refreshRecord
	kWorkload      = pfx + "workload/"      // + hex(hmac(secret)) → workloadRecord
	kWorkloadRes   = pfx + "workload-res/"  // + lower(resource id) → hex(hmac(secret))
)

func getString(ctx context.Context, r store.Reader, key string) (string, error) {
	rec, err := r.Get(ctx, key)
	if err != nil {
		return "", err
	}
	return string(rec.Value), nil
}

func putString(ctx context.Context, tx store.Tx, key, v string, ifVersion int64) error {
	_, err := tx.Put(ctx, key, []byte(v), ifVersion)
	return err
}

// isNotFound reports a missing store key.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
