package cli

import (
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/edge"
)

// The Azure Stack Edge device agent (internal/edge): `keyhaven edge
// activate` redeems a device's activation key into a state directory;
// `keyhaven edge agent` runs the device from it. Neither uses the login
// configuration: the device authenticates as its own managed identity.

func init() {
	register("", newEdgeAgentCmd)
}

func newEdgeAgentCmd(a *app) *cobra.Command {
	cmd := newGroup("edge", "Run an Azure Stack Edge device: activate it, then run its agent (keyhaven).")
	var server, caFile, key, stateDir string
	var once bool
	var interval time.Duration

	activate := &cobra.Command{
		Use:   "activate",
		Short: "Activate a device with its activation key and write its state directory.",
		Long: `Redeem a device's activation key (from 'keyhaven databoxedge device
generate-activation-key') at POST {server}/edge/activate. The device gets its managed
identity's workload secret for the managed-identity endpoint, its key vault and the
names of its secrets there; it generates its device secrets (BitLocker recovery key,
BMC user password). The state directory (0700) holds device.key (0600, the local
sealing key), device.json (0600; every secret in it sealed with AES-256-GCM) and the
server's CA. An activation key works once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if server == "" || key == "" || stateDir == "" {
				return usageErrorf("the following arguments are required: --server, --activation-key, --state-dir")
			}
			if key == "-" {
				// From stdin, so the key stays out of the process list.
				b, err := io.ReadAll(io.LimitReader(a.stdin, 4096))
				if err != nil {
					return err
				}
				key = strings.TrimSpace(string(b))
			}
			out, err := edge.Activate(cmd.Context(), edge.ActivateOptions{Server: server, CAFile: caFile, ActivationKey: key, StateDir: stateDir})
			if err != nil {
				return err
			}
			return a.print(out)
		},
	}
	activate.Flags().StringVar(&server, "server", "", "The keyhaven server URL, e.g. https://keyhaven.example:8443.")
	activate.Flags().StringVar(&caFile, "ca-file", "", "PEM file of the server's CA (copied into the state directory).")
	activate.Flags().StringVar(&key, "activation-key", "", "The device's activation key ('-' reads it from stdin).")
	activate.Flags().StringVar(&stateDir, "state-dir", "", "The device's state directory (created, mode 0700).")

	agent := &cobra.Command{
		Use:   "agent",
		Short: "Run the device agent: sync the device's secrets with its key vault.",
		Long: `Run the device agent from its state directory. Each pass gets tokens from the
managed-identity endpoint as the device identity, reads the device's extended
information, pushes the device secrets to the key vault through the data plane when
keyVaultSyncStatus is not KeyVaultSynced (KeyVaultSyncPending after recover-key-vault or
sync-secrets), reads and keeps the Channel Integrity Key, and reports KeyVaultSynced or
KeyVaultSyncFailed with its reason. --once runs one pass, prints its result and exits 1
if the sync failed; otherwise a pass runs every --interval until interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				return usageErrorf("the following arguments are required: --state-dir")
			}
			if !once && interval <= 0 {
				return usageErrorf("argument --interval: must be positive")
			}
			lvl := slog.LevelInfo
			if a.debug {
				lvl = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: lvl}))
			ag, err := edge.Open(stateDir, edge.Options{Logger: log})
			if err != nil {
				return err
			}
			if once {
				res, err := ag.Pass(cmd.Context())
				if res != nil {
					if perr := a.print(res); perr != nil {
						return perr
					}
				}
				if err != nil {
					return err
				}
				if res.Status != edge.SyncSynced {
					return &edgeSyncError{res.Reason}
				}
				return nil
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return ag.Run(ctx, interval)
		},
	}
	agent.Flags().StringVar(&stateDir, "state-dir", "", "The device's state directory (from 'keyhaven edge activate').")
	agent.Flags().BoolVar(&once, "once", false, "Run one pass and exit.")
	agent.Flags().DurationVar(&interval, "interval", 30*time.Second, "Time between passes.")

	cmd.AddCommand(activate, agent)
	return cmd
}

type edgeSyncError struct{ reason string }

func (e *edgeSyncError) Error() string { return "KeyVaultSyncFailed: " + e.reason }
