package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/rotation/drivers"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// TokenSource issues access tokens for principals in process
// (identity.Service satisfies it).
type TokenSource interface {
	IssueToken(ctx context.Context, objectID, audience string, opts ...identity.IssueOption) (string, time.Time, error)
}

// PrincipalDirectory finds principals (identity.Service satisfies it). A
// missing principal is an *azerr.Error with status 404.
type PrincipalDirectory interface {
	LookupPrincipal(ctx context.Context, objectID string) (*identity.DirectoryObject, error)
}

// AssignmentLister is optional on the Decider (authz.Engine has it): with
// it, preflight tells WrongRole (assignments at the vault, none granting
// setSecret) from MissingRoleAssignment.
type AssignmentLister interface {
	ListAssignments(ctx context.Context, f authz.AssignmentFilter) ([]authz.Assignment, error)
}

// DriverSource selects a target driver by endpoint (*drivers.Registry).
type DriverSource interface {
	For(endpoint string) (drivers.Driver, error)
}

// VaultClient delivers a secret version through the vault data plane.
type VaultClient interface {
	// SetSecret adds a version of name and returns its version id. Errors
	// from the vault are *VaultError.
	SetSecret(ctx context.Context, vaultURI, name, value, contentType string, tags map[string]string, bearer string) (version string, err error)
}

// Backoff shapes archive and target retries: Initial·2^(n-1), capped at
// Max, each delay multiplied by a random factor in [1-Jitter, 1+Jitter].
type Backoff struct {
	Initial time.Duration // default 30s
	Max     time.Duration // default 1h
	Jitter  float64       // default 0.2; 0 < Jitter < 1
}

// Config configures a Service. Store, Sealer, Tokens, Principals, Decider,
// PlatformPrincipal, Vaults, VaultClient, VaultAudience and Drivers are
// required; Resolver may be set later with SetResolver.
type Config struct {
	Store    store.Store
	Sealer   seal.Sealer
	Clock    clock.Clock // default clock.Real
	Resolver ArchiveResolver
	Tokens   TokenSource
	// Principals looks up archive identities (IdentityNotFound).
	Principals PrincipalDirectory
	Decider    authz.Decider
	// PlatformPrincipal returns the platform application's service principal
	// (the Managed Identity Operator check).
	PlatformPrincipal func(ctx context.Context) (*principal.Principal, error)
	// Vaults reads vault configuration (existence, permission model,
	// firewall) for preflight; the keyvault provider implements it.
	Vaults vault.Directory
	// VaultURIForName builds a vault URI from a vault name, for archives
	// configured by vault resource ID only (optional).
	VaultURIForName func(name string) string
	VaultClient     VaultClient
	// VaultAudience is the data-plane token audience, e.g. https://vault.localhost:8443.
	VaultAudience string
	Drivers       DriverSource
	// Owner identifies this replica in leases (default: host-pid-random).
	Owner string
	// LeaseTTL is how long a claim lasts without renewal (default 2m).
	LeaseTTL time.Duration
	// PollInterval is how often Run looks for due work (default 15s).
	PollInterval time.Duration
	// Workers bounds concurrent rotations per replica (default 4).
	Workers int
	// BatchSize bounds the due credentials claimed per pass (default 64).
	BatchSize int
	Backoff   Backoff
	// CordonRecheck is how soon an owner that may not rotate now (cordoned,
	// or not yet Ready for a periodic rotation) is looked at again (default 15m).
	CordonRecheck time.Duration
	// AlertsAudiences, when set, are the token audiences AlertsHandler accepts.
	AlertsAudiences []string
	Logger          *slog.Logger
}

// Service rotates managed credentials and delivers them to customer vaults;
// it implements Engine.
type Service struct {
	cfg Config
	clk clock.Clock
	log *slog.Logger

	resMu    sync.RWMutex
	resolver ArchiveResolver

	wake chan struct{}

	inflightMu sync.Mutex
	inflight   map[string]bool

	// failpoint, set by tests, runs at named points; a non-nil error aborts
	// the rotation there as a crash would (nothing more is written).
	failpoint func(point, credID string) error
	// jitter returns a factor in [0,1); tests may fix it.
	jitter func() float64
}

// Service is the contract's Engine (the name Engine is the interface).
var _ Engine = (*Service)(nil)

// New validates cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("rotation: Config.Store is required")
	case cfg.Sealer == nil:
		return nil, errors.New("rotation: Config.Sealer is required")
	case cfg.Tokens == nil:
		return nil, errors.New("rotation: Config.Tokens is required")
	case cfg.Principals == nil:
		return nil, errors.New("rotation: Config.Principals is required")
	case cfg.Decider == nil:
		return nil, errors.New("rotation: Config.Decider is required")
	case cfg.PlatformPrincipal == nil:
		return nil, errors.New("rotation: Config.PlatformPrincipal is required")
	case cfg.Vaults == nil:
		return nil, errors.New("rotation: Config.Vaults is required")
	case cfg.VaultClient == nil:
		return nil, errors.New("rotation: Config.VaultClient is required")
	case cfg.VaultAudience == "" || len(cfg.VaultAudience) > 512:
		return nil, errors.New("rotation: Config.VaultAudience is required")
	case cfg.Drivers == nil:
		return nil, errors.New("rotation: Config.Drivers is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Owner == "" {
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s-%d-%s", clipStr(host, 64), os.Getpid(), hex.EncodeToString(b))
	}
	if len(cfg.Owner) > 200 {
		return nil, errors.New("rotation: Config.Owner is longer than 200 bytes")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.LeaseTTL, 2*time.Minute)
	def(&cfg.PollInterval, 15*time.Second)
	def(&cfg.Backoff.Initial, 30*time.Second)
	def(&cfg.Backoff.Max, time.Hour)
	def(&cfg.CordonRecheck, 15*time.Minute)
	if cfg.Backoff.Jitter <= 0 || cfg.Backoff.Jitter >= 1 {
		cfg.Backoff.Jitter = 0.2
	}
	if cfg.Backoff.Max < cfg.Backoff.Initial {
		cfg.Backoff.Max = cfg.Backoff.Initial
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, clk: cfg.Clock, log: log, resolver: cfg.Resolver,
		wake: make(chan struct{}, 1), inflight: map[string]bool{}, jitter: randFloat}, nil
}

// SetResolver sets the archive resolver (the networkcloud provider), which
// is usually built after the engine.
func (e *Service) SetResolver(r ArchiveResolver) {
	e.resMu.Lock()
	e.resolver = r
	e.resMu.Unlock()
	e.Wake()
}

func (e *Service) getResolver() ArchiveResolver {
	e.resMu.RLock()
	defer e.resMu.RUnlock()
	return e.resolver
}

// Owner is this replica's lease owner id.
func (e *Service) Owner() string { return e.cfg.Owner }

// Wake makes Run look for due work now instead of at its next poll.
func (e *Service) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Service) hit(point, credID string) error {
	if e.failpoint == nil {
		return nil
	}
	return e.failpoint(point, credID)
}

func clipStr(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
