package cli

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

const apiDiagnosticSettings = "2021-05-01-preview"

func init() {
	register("monitor", newDiagnosticSettingsCmd)
}

// readJSONArrayArg reads az's "JSON list or @file" argument.
func readJSONArrayArg(flag, s string) ([]any, error) {
	const maxLen = 1 << 20
	raw := []byte(s)
	if strings.HasPrefix(s, "@") {
		b, err := readFileLimited(s[1:], maxLen)
		if err != nil {
			return nil, usageErrorf("argument %s: %v", flag, err)
		}
		raw = b
	}
	if len(raw) > maxLen {
		return nil, usageErrorf("argument %s: longer than %d bytes", flag, maxLen)
	}
	var v []any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, usageErrorf("argument %s: expected a JSON list or @file: %v", flag, err)
	}
	return v, nil
}

func newDiagnosticSettingsCmd(a *app) *cobra.Command {
	cmd := newGroup("diagnostic-settings", "Manage diagnostic settings (where a resource's logs go).")
	var t lockTarget
	var name, storage, workspace, logs, metrics string
	bindResource := func(c *cobra.Command) {
		c.Flags().StringVar(&t.resource, "resource", "", "Name or ID of the target resource.")
		c.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Name of the resource group (with --resource NAME).")
		c.Flags().StringVar(&t.resourceType, "resource-type", "", "Target resource type (with --resource NAME), e.g. Microsoft.KeyVault/vaults.")
		c.Flags().StringVar(&t.namespace, "resource-namespace", "", "Target resource provider namespace.")
		c.Flags().StringVar(&t.parent, "resource-parent", "", "Target resource parent path, if any.")
	}
	resource := func() (string, error) {
		if t.resource == "" {
			return "", usageErrorf("the following arguments are required: --resource")
		}
		return t.scope(a)
	}
	settingPath := func() (string, error) {
		if err := checkName("--name/-n", name); err != nil {
			return "", err
		}
		r, err := resource()
		if err != nil {
			return "", err
		}
		return r + "/providers/Microsoft.Insights/diagnosticSettings/" + name, nil
	}

	create := &cobra.Command{
		Use: "create", Short: "Create diagnostic settings for the specified resource.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := settingPath()
			if err != nil {
				return err
			}
			if storage == "" && workspace == "" {
				return usageErrorf("usage error: --storage-account or --workspace is required")
			}
			props := map[string]any{}
			if storage != "" {
				id, err := a.storageAccountID(cmd.Context(), "--storage-account", storage)
				if err != nil {
					return err
				}
				props["storageAccountId"] = id
			}
			if workspace != "" {
				r, err := parseResourceID(workspace)
				if err != nil {
					return usageErrorf("argument --workspace: expected a workspace resource ID")
				}
				props["workspaceId"] = r.Raw
			}
			if logs != "" {
				v, err := readJSONArrayArg("--logs", logs)
				if err != nil {
					return err
				}
				props["logs"] = v
			}
			if metrics != "" {
				v, err := readJSONArrayArg("--metrics", metrics)
				if err != nil {
					return err
				}
				props["metrics"] = v
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: p, apiVersion: apiDiagnosticSettings,
				body: map[string]any{"properties": props}})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	bindResource(create)
	create.Flags().StringVarP(&name, "name", "n", "", "The name of the diagnostic setting.")
	create.Flags().StringVar(&storage, "storage-account", "", "Name or ID of the storage account to send logs to.")
	create.Flags().StringVar(&workspace, "workspace", "", "ID of the Log Analytics workspace (stored, not delivered by keyhaven).")
	create.Flags().StringVar(&logs, "logs", "", `JSON list of log settings, or @file, e.g. '[{"category":"AuditEvent","enabled":true}]'.`)
	create.Flags().StringVar(&metrics, "metrics", "", `JSON list of metric settings, or @file, e.g. '[{"category":"AllMetrics","enabled":true}]'.`)

	list := &cobra.Command{
		Use: "list", Short: "List the diagnostic settings of a resource.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := resource()
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), r+"/providers/Microsoft.Insights/diagnosticSettings", apiDiagnosticSettings, nil)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	bindResource(list)

	show := &cobra.Command{
		Use: "show", Short: "Get the information of a diagnostic setting.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := settingPath()
			if err != nil {
				return err
			}
			v, err := a.armGet(cmd.Context(), p, apiDiagnosticSettings)
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	bindResource(show)
	show.Flags().StringVarP(&name, "name", "n", "", "The name of the diagnostic setting.")

	del := &cobra.Command{
		Use: "delete", Short: "Delete a diagnostic setting.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := settingPath()
			if err != nil {
				return err
			}
			_, err = a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiDiagnosticSettings})
			return err
		},
	}
	bindResource(del)
	del.Flags().StringVarP(&name, "name", "n", "", "The name of the diagnostic setting.")

	cmd.AddCommand(create, list, show, del)
	return cmd
}
