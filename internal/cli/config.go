package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

const (
	configFileName = "config.json"
	maxConfigSize  = 4 << 20

	loginUser             = "user"
	loginServicePrincipal = "servicePrincipal"
)

// Config is the per-user CLI state. It holds credentials (refresh token or
// service-principal secret, cached access tokens), so it lives in a 0700
// directory as a 0600 file and is replaced atomically.
type Config struct {
	Server   string    `json:"server"`
	CAFile   string    `json:"caFile,omitempty"`
	CAPEM    string    `json:"caPem,omitempty"`
	Endpoint Endpoints `json:"endpoints"`

	TenantID  string `json:"tenantId,omitempty"`
	LoginKind string `json:"loginKind,omitempty"` // user | servicePrincipal
	Username  string `json:"username,omitempty"`  // UPN, or appId for a service principal
	ObjectID  string `json:"objectId,omitempty"`  // the signed-in principal's object id

	RefreshToken string `json:"refreshToken,omitempty"`
	ClientSecret string `json:"clientSecret,omitempty"`

	DefaultSubscription string         `json:"defaultSubscription,omitempty"`
	Subscriptions       []Subscription `json:"subscriptions,omitempty"`

	Tokens map[string]CachedToken `json:"tokens,omitempty"` // by audience
}

// Endpoints are what login learnt from /metadata/endpoints.
type Endpoints struct {
	LoginEndpoint   string `json:"loginEndpoint"`   // token authority base, no trailing slash
	ResourceManager string `json:"resourceManager"` // ARM base, no trailing slash
	ARMAudience     string `json:"armAudience"`
	GraphEndpoint   string `json:"graphEndpoint"`
	GraphAudience   string `json:"graphAudience"`
	VaultDomain     string `json:"vaultDomain"` // e.g. vault.localhost
	VaultPort       string `json:"vaultPort"`   // e.g. 8443; empty for 443
	VaultAudience   string `json:"vaultAudience"`
}

// Subscription is one entry of `account list`.
type Subscription struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	State    string `json:"state"`
	TenantID string `json:"tenantId"`
}

// CachedToken is an access token for one audience.
type CachedToken struct {
	AccessToken string `json:"accessToken"`
	ExpiresOn   int64  `json:"expiresOn"` // unix seconds
}

func (a *app) configDir() (string, error) {
	if d := a.getenv("KEYHAVEN_CONFIG_DIR"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the home directory; set KEYHAVEN_CONFIG_DIR: %w", err)
	}
	return filepath.Join(home, ".keyhaven"), nil
}

// loadConfig reads the config, returning an empty one when none exists.
func (a *app) loadConfig() (*Config, error) {
	if a.cfg != nil {
		return a.cfg, nil
	}
	dir, err := a.configDir()
	if err != nil {
		return nil, err
	}
	cfg, err := readConfig(filepath.Join(dir, configFileName))
	if err != nil {
		return nil, err
	}
	a.cfg = cfg
	return cfg, nil
}

func readConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("config file %s is too large", path)
	}
	cfg := &Config{}
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("config file %s is not valid JSON; run 'keyhaven login' again: %v", path, err)
	}
	return cfg, nil
}

// saveConfig writes the config atomically (temp file + rename) with 0600
// permissions in a 0700 directory.
func (a *app) saveConfig(cfg *Config) error {
	dir, err := a.configDir()
	if err != nil {
		return err
	}
	if err := writeConfig(dir, cfg); err != nil {
		return err
	}
	a.cfg = cfg
	return nil
}

func writeConfig(dir string, cfg *Config) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating config directory: %w", err)
	}
	// MkdirAll leaves an existing directory alone; tighten it since it holds credentials.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("securing config directory: %w", err)
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.tmp") // created 0600
	if err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing config: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	if err := os.Rename(tmpName, filepath.Join(dir, configFileName)); err != nil {
		return fmt.Errorf("writing config: %w", err)
	}
	return nil
}

var errNotLoggedIn = &azerr.Error{Message: "Please run 'keyhaven login' to setup account."}

// loggedIn returns the config of a signed-in user, or az's "please login".
func (a *app) loggedIn() (*Config, error) {
	cfg, err := a.loadConfig()
	if err != nil {
		return nil, err
	}
	if cfg.Server == "" || cfg.LoginKind == "" {
		return nil, errNotLoggedIn
	}
	return cfg, nil
}

// subscriptionID resolves --subscription (id or name) or the default.
func (a *app) subscriptionID() (string, error) {
	cfg, err := a.loggedIn()
	if err != nil {
		return "", err
	}
	want := a.subscription
	if want == "" {
		want = cfg.DefaultSubscription
	}
	if want == "" {
		return "", &azerr.Error{Message: "No subscription found. Run 'keyhaven account set' to select a subscription, or pass --subscription."}
	}
	if s := cfg.findSubscription(want); s != nil {
		return s.ID, nil
	}
	if isGUID(want) {
		// A subscription created after login is not in the local list yet.
		return strings.ToLower(want), nil
	}
	return "", &azerr.Error{Message: fmt.Sprintf("Subscription '%s' not found. Check the spelling and casing and try again.", want)}
}

func (c *Config) findSubscription(idOrName string) *Subscription {
	for i := range c.Subscriptions {
		s := &c.Subscriptions[i]
		if strings.EqualFold(s.ID, idOrName) {
			return s
		}
	}
	for i := range c.Subscriptions {
		s := &c.Subscriptions[i]
		if strings.EqualFold(s.Name, idOrName) {
			return s
		}
	}
	return nil
}

func (c *Config) validToken(aud string, now time.Time) (string, bool) {
	t, ok := c.Tokens[aud]
	// Refresh five minutes early so a token never expires mid-command.
	if !ok || t.AccessToken == "" || now.Add(5*time.Minute).Unix() >= t.ExpiresOn {
		return "", false
	}
	return t.AccessToken, true
}
