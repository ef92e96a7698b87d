package drivers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// ErrRejected: the target refused the credential (wrong password). Drivers
// wrap it; test with errors.Is.
var ErrRejected = errors.New("credential rejected by the target")

// ErrUnsupported: the endpoint names no known driver or is malformed.
var ErrUnsupported = errors.New("unsupported target endpoint")

// Driver reaches one kind of target.
type Driver interface {
	// Login checks that secret is the current credential of username. It
	// returns nil, an error wrapping ErrRejected, or another error.
	Login(ctx context.Context, endpoint, username string, secret []byte) error
	// Set replaces username's credential current with next, authenticating
	// with current. It does not verify: the caller logs in with next.
	Set(ctx context.Context, endpoint, username string, current, next []byte) error
}

// Limits on inputs.
const (
	MaxEndpointLen = 2048
	MaxUsernameLen = 256
	MaxSecretLen   = 4096
)

// Options configure the drivers.
type Options struct {
	// Timeout bounds each request / connection to a target (default 30s).
	Timeout time.Duration
	// RootCAs verify BMC certificates (nil: the system roots).
	RootCAs *x509.CertPool
	// PinnedCerts are DER certificates explicitly trusted as they are
	// (self-signed BMC certificates); a server presenting one of them is
	// accepted regardless of chain and host name.
	PinnedCerts [][]byte
	// AllowPlainHTTP permits redfish+http:// endpoints (labs and tests).
	AllowPlainHTTP bool
}

// Registry selects a driver by endpoint scheme.
type Registry struct {
	redfish  *Redfish
	postgres *Postgres
	platform Platform
}

// New returns a Registry with the Redfish, PostgreSQL and platform drivers.
func New(opts Options) (*Registry, error) {
	rf, err := NewRedfish(opts)
	if err != nil {
		return nil, err
	}
	return &Registry{redfish: rf, postgres: NewPostgres(opts)}, nil
}

// For returns the driver for endpoint.
func (r *Registry) For(endpoint string) (Driver, error) {
	if endpoint == "" {
		return r.platform, nil
	}
	scheme, err := Scheme(endpoint)
	if err != nil {
		return nil, err
	}
	switch scheme {
	case "redfish+https", "redfish+http":
		return r.redfish, nil
	case "postgres", "postgresql":
		return r.postgres, nil
	}
	return nil, fmt.Errorf("%w: scheme %q", ErrUnsupported, clip(scheme, 32))
}

// Scheme returns the lower-cased scheme of endpoint, validating its size.
func Scheme(endpoint string) (string, error) {
	if len(endpoint) > MaxEndpointLen {
		return "", fmt.Errorf("%w: endpoint longer than %d bytes", ErrUnsupported, MaxEndpointLen)
	}
	i := strings.Index(endpoint, "://")
	if i <= 0 {
		return "", fmt.Errorf("%w: endpoint has no scheme", ErrUnsupported)
	}
	return strings.ToLower(endpoint[:i]), nil
}

func checkInputs(username string, secrets ...[]byte) error {
	if username == "" || len(username) > MaxUsernameLen {
		return fmt.Errorf("username must be 1 to %d bytes", MaxUsernameLen)
	}
	for _, s := range secrets {
		if len(s) > MaxSecretLen {
			return fmt.Errorf("credential longer than %d bytes", MaxSecretLen)
		}
	}
	return nil
}

// redact removes userinfo from a URL for error messages.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	return c.String()
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Platform is the driver of credentials keyhaven holds outright: there is no
// external system, so Login always succeeds and Set only lets the engine
// record the new value.
type Platform struct{}

// Login accepts any credential: keyhaven's own record is the truth.
func (Platform) Login(context.Context, string, string, []byte) error { return nil }

// Set has nothing to change outside keyhaven.
func (Platform) Set(context.Context, string, string, []byte, []byte) error { return nil }

var (
	_ Driver = Platform{}
	_ Driver = (*Redfish)(nil)
	_ Driver = (*Postgres)(nil)
)
