package cli

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"
)

// Rotation alerts are a keyhaven extension: the rotation engine's alerts for
// a cluster's managed credentials (delivery blocked, expiry, manual change),
// served on the main host beside ARM with an ARM-audience token.

func init() { register("networkcloud cluster", newNCClusterAlertCmd) }

func newNCClusterAlertCmd(a *app) *cobra.Command {
	g := newGroup("alert", "Credential rotation alerts of a cluster (keyhaven extension).")
	var t ncTarget
	var cleared bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the credential rotation alerts of a cluster, newest first.",
		Long: `List the credential rotation alerts of a cluster, newest first: why a rotated
credential could not be delivered to the customer vault (e.g. MissingRoleAssignment,
VaultFirewallEnabled, MissingManagedIdentityOperator), a manual change on a machine,
or a credential nearing or past its maximum age. Active alerts only, unless
--include-cleared.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(t.ids, t.rg, t.name, ncClusterType)
			if err != nil {
				return err
			}
			base, aud, err := a.armBase()
			if err != nil {
				return err
			}
			out := []any{}
			for _, p := range paths {
				q := url.Values{"clusterId": {p}}
				if cleared {
					q.Set("includeCleared", "true")
				}
				resp, err := a.send(cmd.Context(), request{method: http.MethodGet,
					url: strings.TrimRight(base, "/") + "/rotation/alerts?" + q.Encode(), audience: aud})
				if err != nil {
					return err
				}
				v, err := decodeBody(resp.body)
				if err != nil {
					return err
				}
				if m, ok := v.(map[string]any); ok {
					if items, ok := m["value"].([]any); ok {
						out = append(out, items...)
					}
				}
			}
			return a.print(out)
		},
	}
	t.bind(list, "The name of the cluster.", true, false, "cluster-name")
	list.Flags().BoolVar(&cleared, "include-cleared", false, "Also list alerts that have cleared.")
	g.AddCommand(list)
	return g
}
