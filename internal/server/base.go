package server

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/pki"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/postgres"
	"github.com/keyhaven/keyhaven/internal/store/sqlite"
)

// openStore opens the configured backend: SQLite in the data directory, or
// PostgreSQL when a DSN is given.
func openStore(ctx context.Context, cfg Config) (store.Store, error) {
	if cfg.StoreDSN != "" {
		var opts []postgres.Option
		if cfg.StoreSchema != "" {
			opts = append(opts, postgres.WithSchema(cfg.StoreSchema))
		}
		st, err := postgres.Open(ctx, cfg.StoreDSN, opts...)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return st, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	// SQLite gives its -wal and -shm files the database file's mode, so
	// creating it 0600 first keeps all three private.
	dbPath := filepath.Join(cfg.DataDir, "keyhaven.db")
	if f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_RDONLY, 0o600); err == nil {
		f.Close()
	}
	st, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return nil, fmt.Errorf("open SQLite store: %w", err)
	}
	return st, nil
}

// openRoot loads the root keyring: KEYHAVEN_ROOT_KEY when set, else the key
// file (created on first start).
func openRoot(cfg Config, log *slog.Logger) (*seal.Root, error) {
	if cfg.RootKeyEnv != "" {
		root, ok, err := seal.RootFromEnv()
		if err != nil {
			return nil, err
		}
		if ok {
			log.Info("root key taken from KEYHAVEN_ROOT_KEY")
			return root, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(cfg.RootKeyFile), 0o700); err != nil {
		return nil, fmt.Errorf("root key directory: %w", err)
	}
	root, created, err := seal.LoadOrCreateRoot(cfg.RootKeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("generated a new root key: back it up; without it nothing stored can be read", "file", cfg.RootKeyFile)
	}
	return root, nil
}

// tlsMaterial loads the operator's certificate or the generated one.
func tlsMaterial(cfg Config, clk clock.Clock) (*pki.Material, error) {
	if cfg.TLSCert != "" {
		return pki.LoadServerTLS(cfg.TLSCert, cfg.TLSKey)
	}
	hosts := []string{"localhost", "127.0.0.1", "::1", "*." + cfg.VaultDomain}
	if cfg.PublicHost != "localhost" {
		hosts = append(hosts, cfg.PublicHost)
	}
	return pki.EnsureServerTLS(filepath.Join(cfg.DataDir, "tls"), hosts, clk)
}

// RotateRootKey is `keyhaven admin rotate-root-key`.
func RotateRootKey(ctx context.Context, cfg Config, out io.Writer) error {
	log := NewLogger(io.Discard, "text", "error")
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	root, err := openRoot(cfg, log)
	if err != nil {
		return err
	}
	rep, err := seal.NewEnvelope(st, root).RotateRoot(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "root key rotated: now version %d; %d data keys re-wrapped; retired versions %v\n",
		rep.NewVersion, rep.Rewrapped, rep.Retired)
	return nil
}
