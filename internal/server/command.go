package server

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// ServeCommand is `keyhaven serve`.
func ServeCommand() *cobra.Command {
	cfg := DefaultConfig()
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the keyhaven server (embedded SQLite store, generated root key and TLS by default)",
		Long: `Run the keyhaven server.

With no flags it keeps everything under ./keyhaven-data: the SQLite store, the root
keyring (0600), a generated local CA and server certificate, and the bootstrap
administrator's credential (admin-credentials.json, 0600, written on first start).
Every flag has a KEYHAVEN_* environment variable.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Run(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cfg.BindFlags(cmd.Flags())
	return cmd
}

// AdminCommand is `keyhaven admin`: offline maintenance of a data directory.
func AdminCommand() *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Maintenance of a keyhaven data directory (run on the server host)"}
	cfg := DefaultConfig()
	rotate := &cobra.Command{
		Use:   "rotate-root-key",
		Short: "Re-wrap every data key under a new root key (values are not rewritten)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			return RotateRootKey(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	bindStoreFlags(rotate, &cfg)
	admin.AddCommand(rotate, snapshotCommand())
	return admin
}

// bindStoreFlags adds the flags naming a data directory's store and keyring.
func bindStoreFlags(cmd *cobra.Command, cfg *Config) {
	fs := cmd.Flags()
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("KEYHAVEN_DATA_DIR", cfg.DataDir), "data directory")
	fs.StringVar(&cfg.StoreDSN, "store", os.Getenv("KEYHAVEN_STORE"), "storage: empty for SQLite in the data directory, or a postgres:// DSN")
	fs.StringVar(&cfg.StoreSchema, "store-schema", os.Getenv("KEYHAVEN_STORE_SCHEMA"), "PostgreSQL schema")
	fs.StringVar(&cfg.RootKeyFile, "root-key-file", os.Getenv("KEYHAVEN_ROOT_KEY_FILE"), "root keyring file (default {data-dir}/root.key)")
}

// snapshotCommand is `keyhaven admin snapshot save|verify|restore`.
func snapshotCommand() *cobra.Command {
	group := &cobra.Command{Use: "snapshot", Short: "Consistent copies of the embedded (SQLite) store: take one while serving, verify it, restore it"}
	verb := func(use, short, fileFlag, fileHelp string, run func(ctx context.Context, cfg Config, out io.Writer, path string) error, listen bool) *cobra.Command {
		cfg := DefaultConfig()
		var path string
		cmd := &cobra.Command{
			Use: use, Short: short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				cfg.RootKeyEnv = os.Getenv("KEYHAVEN_ROOT_KEY")
				if err := cfg.Validate(); err != nil {
					return err
				}
				if path == "" {
					return fmt.Errorf("--%s is required", fileFlag)
				}
				return run(cmd.Context(), cfg, cmd.OutOrStdout(), path)
			},
		}
		bindStoreFlags(cmd, &cfg)
		cmd.Flags().StringVar(&path, fileFlag, "", fileHelp)
		if listen {
			cmd.Flags().StringVar(&cfg.Listen, "listen", envOr("KEYHAVEN_LISTEN", cfg.Listen), "the server's listen address: restore refuses while something answers there")
		}
		return cmd
	}
	group.AddCommand(
		verb("save", "Write a consistent copy of the store to a new file (the server may keep running); it is verified before the command succeeds",
			"out", "the snapshot file to create (it must not exist)", SnapshotSave, false),
		verb("verify", "Check a snapshot: SQLite's integrity check, and every data key opens with the root keyring",
			"in", "the snapshot file", SnapshotVerify, false),
		verb("restore", "With the server stopped, replace the store with a verified snapshot (the replaced database is kept beside it)",
			"in", "the snapshot file", SnapshotRestore, true),
	)
	return group
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
