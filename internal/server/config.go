package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// Config is everything `keyhaven serve` can be told. Every field has a flag
// and a KEYHAVEN_* environment variable; flags win over the environment.
type Config struct {
	DataDir     string // where the SQLite store, root key, TLS material live
	Listen      string // HTTPS listen address
	PublicHost  string // host name clients use for the server itself
	PublicPort  int    // port clients use (defaults to the listen port)
	VaultDomain string // vault host names are {vault}.{VaultDomain}
	MIListen    string // loopback plain-HTTP managed-identity endpoint ("" disables)

	StoreDSN    string // "" = SQLite in DataDir; postgres://... = PostgreSQL
	StoreSchema string // PostgreSQL schema (created if missing); "" = the DSN's default
	RootKeyFile string // default {DataDir}/root.key
	RootKeyEnv  string // base64 root key from KEYHAVEN_ROOT_KEY (not a flag: keep it out of ps)
	TLSCert     string
	TLSKey      string

	LogFormat string // text | json
	LogLevel  string // debug | info | warn | error

	Locations []string // regions offered besides Azure's names; "local" by default

	// Rotation targets (BMCs over Redfish): extra CA file to trust, and
	// whether plain-HTTP Redfish endpoints are allowed (labs only).
	TargetCAFile         string
	TargetAllowPlainHTTP bool
	// RotationInterval is how often the rotation scheduler looks for due work.
	RotationInterval time.Duration
	// RotationLeaseTTL is how long a replica's claim on a rotation lasts
	// without renewal; a crashed replica's work resumes elsewhere after it.
	RotationLeaseTTL time.Duration
	// RotationRetryInitial and RotationRetryMax shape the backoff between
	// retries of a rotation whose delivery or target is failing: the first
	// wait, doubling up to the cap.
	RotationRetryInitial time.Duration
	RotationRetryMax     time.Duration

	// OperationLeaseTTL is how long a replica's claim on a long-running ARM
	// operation lasts without renewal; after it, any replica fails the
	// operation as interrupted so clients get a final answer.
	OperationLeaseTTL time.Duration

	// AuditFailOpen serves requests whose audit event could not be written
	// (counted in keyhaven_audit_fail_open_total) instead of refusing them.
	AuditFailOpen bool

	// Per-vault request budgets, as Key Vault's service limits (per 10 s).
	ThrottleTransactions int
	ThrottleCreates      int

	MaxBodyBytes    int64
	MaxHeaderBytes  int
	ShutdownTimeout time.Duration
	PurgeInterval   time.Duration
	// RenewInterval is how often certificates whose AutoRenew lifetime
	// action, and keys whose rotation policy, fell due are renewed or
	// rotated.
	RenewInterval time.Duration
}

// DefaultConfig returns the zero-setup configuration.
func DefaultConfig() Config {
	return Config{
		DataDir:              "./keyhaven-data",
		Listen:               "127.0.0.1:8443",
		PublicHost:           "localhost",
		VaultDomain:          "vault.localhost",
		MIListen:             "127.0.0.1:8444",
		LogFormat:            "text",
		LogLevel:             "info",
		Locations:            []string{"local"},
		RotationInterval:     15 * time.Second,
		RotationLeaseTTL:     2 * time.Minute,
		RotationRetryInitial: 30 * time.Second,
		RotationRetryMax:     time.Hour,
		OperationLeaseTTL:    30 * time.Second,
		ThrottleTransactions: 4000,
		ThrottleCreates:      300,
		MaxBodyBytes:         1 << 20,
		MaxHeaderBytes:       64 << 10,
		ShutdownTimeout:      20 * time.Second,
		PurgeInterval:        time.Minute,
		RenewInterval:        time.Minute,
	}
}

// BindFlags registers the flags of c on fs, with defaults taken from the
// environment where a KEYHAVEN_* variable is set.
func (c *Config) BindFlags(fs *pflag.FlagSet) {
	env := func(name, def string) string {
		if v, ok := os.LookupEnv("KEYHAVEN_" + name); ok {
			return v
		}
		return def
	}
	envInt := func(name string, def int) int {
		if v, ok := os.LookupEnv("KEYHAVEN_" + name); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return n
			}
		}
		return def
	}
	fs.StringVar(&c.DataDir, "data-dir", env("DATA_DIR", c.DataDir), "data directory (env KEYHAVEN_DATA_DIR)")
	fs.StringVar(&c.Listen, "listen", env("LISTEN", c.Listen), "HTTPS listen address (env KEYHAVEN_LISTEN)")
	fs.StringVar(&c.PublicHost, "public-host", env("PUBLIC_HOST", c.PublicHost), "host name clients use for this server (env KEYHAVEN_PUBLIC_HOST)")
	fs.IntVar(&c.PublicPort, "public-port", envInt("PUBLIC_PORT", c.PublicPort), "port clients use, when it differs from the listen port (env KEYHAVEN_PUBLIC_PORT)")
	fs.StringVar(&c.VaultDomain, "vault-domain", env("VAULT_DOMAIN", c.VaultDomain), "vault host names are {vault}.{vault-domain} (env KEYHAVEN_VAULT_DOMAIN)")
	fs.StringVar(&c.MIListen, "mi-listen", env("MI_LISTEN", c.MIListen), "loopback plain-HTTP managed-identity endpoint; empty disables (env KEYHAVEN_MI_LISTEN)")
	fs.StringVar(&c.StoreDSN, "store", env("STORE", c.StoreDSN), "storage: empty for embedded SQLite, or a postgres:// DSN (env KEYHAVEN_STORE)")
	fs.StringVar(&c.StoreSchema, "store-schema", env("STORE_SCHEMA", c.StoreSchema), "PostgreSQL schema to keep keyhaven's tables in, created if missing (env KEYHAVEN_STORE_SCHEMA)")
	fs.StringVar(&c.RootKeyFile, "root-key-file", env("ROOT_KEY_FILE", c.RootKeyFile), "root keyring file (default {data-dir}/root.key; env KEYHAVEN_ROOT_KEY_FILE; or KEYHAVEN_ROOT_KEY=base64 key)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("TLS_CERT", c.TLSCert), "TLS certificate PEM (default: generated under {data-dir}/tls)")
	fs.StringVar(&c.TLSKey, "tls-key", env("TLS_KEY", c.TLSKey), "TLS private key PEM")
	fs.StringVar(&c.LogFormat, "log-format", env("LOG_FORMAT", c.LogFormat), "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", env("LOG_LEVEL", c.LogLevel), "log level: debug, info, warn, error")
	fs.StringSliceVar(&c.Locations, "locations", splitList(env("LOCATIONS", strings.Join(c.Locations, ","))), "location names offered in addition to Azure's region names (env KEYHAVEN_LOCATIONS)")
	fs.IntVar(&c.ThrottleTransactions, "throttle-vault-transactions", envInt("THROTTLE_VAULT_TRANSACTIONS", c.ThrottleTransactions), "requests per vault per 10 s before 429 (-1: unlimited)")
	fs.IntVar(&c.ThrottleCreates, "throttle-vault-creates", envInt("THROTTLE_VAULT_CREATES", c.ThrottleCreates), "secret creates per vault per 10 s before 429 (-1: unlimited)")
	fs.StringVar(&c.TargetCAFile, "target-ca-file", env("TARGET_CA_FILE", c.TargetCAFile), "PEM CA certificates trusted for rotation targets (BMC Redfish endpoints), besides the system roots")
	fs.BoolVar(&c.TargetAllowPlainHTTP, "target-allow-plain-http", os.Getenv("KEYHAVEN_TARGET_ALLOW_PLAIN_HTTP") == "true", "allow redfish+http:// rotation targets (labs only)")
	fs.DurationVar(&c.RotationInterval, "rotation-interval", c.RotationInterval, "how often the rotation scheduler looks for due credentials")
	fs.DurationVar(&c.RotationLeaseTTL, "rotation-lease-ttl", c.RotationLeaseTTL, "how long a replica's claim on a rotation lasts without renewal")
	fs.DurationVar(&c.RotationRetryInitial, "rotation-retry-initial", c.RotationRetryInitial, "first wait before a failing rotation (delivery to the customer's vault, or its target) is retried; it doubles each time")
	fs.DurationVar(&c.RotationRetryMax, "rotation-retry-max", c.RotationRetryMax, "longest wait between retries of a failing rotation")
	fs.DurationVar(&c.OperationLeaseTTL, "operation-lease-ttl", c.OperationLeaseTTL, "how long a replica's claim on a long-running ARM operation lasts without renewal")
	fs.BoolVar(&c.AuditFailOpen, "audit-fail-open", os.Getenv("KEYHAVEN_AUDIT_FAIL_OPEN") == "true", "serve requests even when their audit event cannot be written (default: refuse them)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", int64(envInt("MAX_BODY_BYTES", int(c.MaxBodyBytes))), "largest request body accepted")
	fs.DurationVar(&c.PurgeInterval, "purge-interval", c.PurgeInterval, "how often expired soft-deleted objects are purged")
	fs.DurationVar(&c.RenewInterval, "renew-interval", c.RenewInterval, "how often certificates whose AutoRenew lifetime action, and keys whose rotation policy, fell due are renewed or rotated")
	c.RootKeyEnv = os.Getenv("KEYHAVEN_ROOT_KEY")
}

// Validate checks c and fills derived defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir must not be empty"))
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		// Absolute, so the CA path written into admin-credentials.json and
		// printed at start works from any working directory.
		c.DataDir = abs
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %v", c.Listen, err))
	} else if c.PublicPort == 0 {
		p, err := strconv.Atoi(port)
		if err != nil || p <= 0 || p > 65535 {
			errs = append(errs, fmt.Errorf("--listen %q: port must be 1-65535 (an explicit port; 0 is not supported)", c.Listen))
		}
		c.PublicPort = p
	}
	_ = host
	if c.PublicHost == "" || strings.ContainsAny(c.PublicHost, "/: ") {
		errs = append(errs, fmt.Errorf("--public-host %q must be a bare host name", c.PublicHost))
	}
	if c.VaultDomain == "" || strings.ContainsAny(c.VaultDomain, "/: *") {
		errs = append(errs, fmt.Errorf("--vault-domain %q must be a bare domain", c.VaultDomain))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.StoreDSN != "" && !strings.HasPrefix(c.StoreDSN, "postgres://") && !strings.HasPrefix(c.StoreDSN, "postgresql://") {
		errs = append(errs, fmt.Errorf("--store must be empty (SQLite) or a postgres:// DSN"))
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	if c.MaxBodyBytes < 64<<10 {
		errs = append(errs, errors.New("--max-body-bytes must be at least 65536"))
	}
	if c.RotationRetryInitial < 100*time.Millisecond {
		errs = append(errs, errors.New("--rotation-retry-initial must be at least 100ms"))
	}
	if c.RotationRetryMax < c.RotationRetryInitial {
		errs = append(errs, errors.New("--rotation-retry-max must not be less than --rotation-retry-initial"))
	}
	if c.RootKeyFile == "" {
		c.RootKeyFile = filepath.Join(c.DataDir, "root.key")
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	return errors.Join(errs...)
}

// BaseURL is the public URL of the server itself, without a trailing slash.
func (c *Config) BaseURL() string {
	return "https://" + hostPort(c.PublicHost, c.PublicPort)
}

// VaultAudience is the token audience (and challenge resource) of the data plane.
func (c *Config) VaultAudience() string {
	return "https://" + hostPort(c.VaultDomain, c.PublicPort)
}

// VaultURL is the URI of one vault.
func (c *Config) VaultURL(name string) string {
	return "https://" + hostPort(name+"."+c.VaultDomain, c.PublicPort) + "/"
}

func hostPort(host string, port int) string {
	if port == 443 || port == 0 {
		return host
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
