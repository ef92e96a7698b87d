package server

import (
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
	fs := rotate.Flags()
	fs.StringVar(&cfg.DataDir, "data-dir", envOr("KEYHAVEN_DATA_DIR", cfg.DataDir), "data directory")
	fs.StringVar(&cfg.StoreDSN, "store", os.Getenv("KEYHAVEN_STORE"), "storage: empty for SQLite in the data directory, or a postgres:// DSN")
	fs.StringVar(&cfg.StoreSchema, "store-schema", os.Getenv("KEYHAVEN_STORE_SCHEMA"), "PostgreSQL schema")
	fs.StringVar(&cfg.RootKeyFile, "root-key-file", os.Getenv("KEYHAVEN_ROOT_KEY_FILE"), "root keyring file (default {data-dir}/root.key)")
	admin.AddCommand(rotate)
	return admin
}

func envOr(k, def string) string {
	if v, ok := os.LookupEnv(k); ok {
		return v
	}
	return def
}
