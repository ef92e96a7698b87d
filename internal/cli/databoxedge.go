package cli

import (
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

// Azure Stack Edge devices (Microsoft.DataBoxEdge), as az's databoxedge
// extension names them, plus keyhaven commands for the guide's portal-only
// steps: generate-activation-key, show-extended-info, recover-key-vault,
// update-extended-info and sync-secrets.

const (
	edgeDeviceType = "Microsoft.DataBoxEdge/dataBoxEdgeDevices"
	apiEdge        = "2023-12-01"
)

func init() {
	apiVersionByType["microsoft.databoxedge/databoxedgedevices"] = apiEdge
	register("", newEdgeCmd)
}

func newEdgeCmd(a *app) *cobra.Command {
	cmd := newGroup("databoxedge", "Manage Azure Stack Edge (Data Box Edge) devices and their key vaults.")
	cmd.AddCommand(newEdgeDeviceCmd(a), newEdgeAlertCmd(a))
	return cmd
}

// edgeTarget is the -n/--device-name, -g and --ids of a device command.
type edgeTarget struct {
	name, rg string
	ids      []string
}

func (t *edgeTarget) flags(c *cobra.Command, withIDs bool) {
	c.Flags().StringVarP(&t.name, "device-name", "n", "", "The device name.")
	c.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Name of the resource group.")
	if withIDs {
		c.Flags().StringArrayVar(&t.ids, "ids", nil, "One or more resource IDs (space-delimited).")
	}
}

func (t *edgeTarget) paths(a *app) ([]string, error) {
	if len(t.ids) == 0 && (t.name == "" || t.rg == "") {
		return nil, usageErrorf("usage error: (--resource-group --device-name | --ids) are required")
	}
	return a.targets(t.ids, t.rg, t.name, edgeDeviceType)
}

// edgeAction POSTs action on each device and prints the answers.
func (a *app) edgeAction(cmd *cobra.Command, t *edgeTarget, action string, body any) error {
	paths, err := t.paths(a)
	if err != nil {
		return err
	}
	v, err := eachTarget(paths, func(p string) (any, error) {
		return a.arm(cmd.Context(), armCall{method: http.MethodPost, path: p + "/" + action, apiVersion: apiEdge, body: body})
	})
	if err != nil {
		return err
	}
	return a.print(v)
}

func newEdgeDeviceCmd(a *app) *cobra.Command {
	cmd := newGroup("device", "Manage Data Box Edge devices.")
	var t edgeTarget
	var location, sku, description, friendlyName, keyVaultName, syncStatus string
	var tags []string
	var yes, deleteKV bool

	create := &cobra.Command{
		Use: "create", Short: "Create a device (with its system-assigned identity).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.name == "" || t.rg == "" {
				return usageErrorf("the following arguments are required: --device-name/-n, --resource-group/-g")
			}
			p, err := a.resourcePath(t.rg, "Microsoft.DataBoxEdge", "dataBoxEdgeDevices", t.name)
			if err != nil {
				return err
			}
			if location == "" {
				if location, err = a.groupLocation(cmd.Context(), t.rg); err != nil {
					return err
				}
			}
			body := map[string]any{"location": location, "sku": map[string]any{"name": sku, "tier": "Standard"},
				"identity": map[string]any{"type": "SystemAssigned"}}
			props := map[string]any{}
			if description != "" {
				props["description"] = description
			}
			if friendlyName != "" {
				props["friendlyName"] = friendlyName
			}
			if len(props) > 0 {
				body["properties"] = props
			}
			if cmd.Flags().Changed("tags") {
				tg, err := parseTags(tags)
				if err != nil {
					return err
				}
				body["tags"] = tg
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: p, apiVersion: apiEdge, body: body})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	t.flags(create, false)
	create.Flags().StringVarP(&location, "location", "l", "", "Location (default: the resource group's).")
	create.Flags().StringVar(&sku, "sku", "Edge", "The SKU name, e.g. EdgeP_Base, EdgeP_High, EdgePR_Base, EdgeMR_Mini, Edge, Gateway.")
	create.Flags().StringVar(&description, "description", "", "The description of the device.")
	create.Flags().StringVar(&friendlyName, "friendly-name", "", "The friendly name of the device.")
	create.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")

	show := &cobra.Command{
		Use: "show", Short: "Show a device.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := t.paths(a)
			if err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) { return a.armGet(cmd.Context(), p, apiEdge) })
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	t.flags(show, true)

	list := &cobra.Command{
		Use: "list", Short: "List devices in a subscription or resource group.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, err := a.scopePath(t.rg)
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), scope+"/providers/"+edgeDeviceType, apiEdge, nil)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	list.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Name of the resource group.")

	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete a device; --delete-key-vault also deletes its key vault (the guide's consent).",
		Long: `Delete a device and its system-assigned identity. Without --delete-key-vault the
device's key vault stays (with its lock); with it, the lock is removed and the vault
soft-deleted (recoverable within its retention period).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := t.paths(a)
			if err != nil {
				return err
			}
			var q url.Values
			if deleteKV {
				q = url.Values{"deleteKeyVault": {"true"}}
			}
			_, err = eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiEdge, query: q})
			})
			return err
		},
	}
	t.flags(del, true)
	del.Flags().BoolVar(&deleteKV, "delete-key-vault", false, "Also delete the device's key vault (keyhaven; the portal's 'Yes' consent).")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "Do not prompt for confirmation.")

	gen := &cobra.Command{
		Use:   "generate-activation-key",
		Short: "Generate the device's activation key; the first one creates its key vault (keyhaven).",
		Long: `Generate an activation key for the device (the portal's step). The first time, in the
device's resource group: a standard key vault with the access-policy model (default or
--key-vault-name, 3-24 characters), locked; the Channel Integrity Key in it; a
Standard_ZRS storage account for audit logs, locked; a diagnostic setting on the vault;
and secrets Get/Set for the device's identity. Later calls only issue a new key and do
not access the vault.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.edgeAction(cmd, &t, "generateActivationKey", keyVaultNameBody(keyVaultName))
		},
	}
	t.flags(gen, true)
	gen.Flags().StringVar(&keyVaultName, "key-vault-name", "", "Name of the key vault to create (3-24 characters; default derived from the device name).")

	ext := &cobra.Command{
		Use: "show-extended-info", Short: "Show the device's extended information: key vault, CIK, sync status.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.edgeAction(cmd, &t, "getExtendedInformation", nil)
		},
	}
	t.flags(ext, true)

	upd := &cobra.Command{
		Use: "update-extended-info", Short: "Report the device's key vault sync status (as the device does).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if syncStatus == "" {
				return usageErrorf("the following arguments are required: --sync-status")
			}
			return a.edgeAction(cmd, &t, "updateExtendedInformation", map[string]any{"syncStatus": syncStatus})
		},
	}
	t.flags(upd, true)
	upd.Flags().StringVar(&syncStatus, "sync-status", "", "KeyVaultSynced, KeyVaultSyncFailed, KeyVaultNotConfigured, KeyVaultSyncPending, KeyVaultSyncing or KeyVaultNotSynced.")

	rec := &cobra.Command{
		Use:   "recover-key-vault",
		Short: "Recover the device's key vault (the portal's Reconfigure; keyhaven).",
		Long: `Recover the device's key vault: a deleted vault is recovered with its name and locked
again; after a purge a new vault is created (--key-vault-name, or a default name) with
a new Channel Integrity Key. A missing audit-log storage account and diagnostic setting
are recreated and the device identity's secrets Get/Set is granted again. The device
then pushes its secrets (keyVaultSyncStatus KeyVaultSyncPending).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.edgeAction(cmd, &t, "recoverKeyVault", keyVaultNameBody(keyVaultName))
		},
	}
	t.flags(rec, true)
	rec.Flags().StringVar(&keyVaultName, "key-vault-name", "", "Name of the new key vault when the old one was purged.")

	syncSecrets := &cobra.Command{
		Use:   "sync-secrets",
		Short: "Sync device secrets: the device agent pushes its secrets to the key vault again (keyhaven).",
		Long: `The portal's "Sync device secrets" (POST {device}/syncDeviceSecrets): keyVaultSyncStatus
becomes KeyVaultSyncPending and the device agent pushes every device secret (BitLocker
recovery key, BMC user password) to the key vault on its next pass, then reports
KeyVaultSynced. Use it when the CIK or a device secret was deleted or is stale.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.edgeAction(cmd, &t, "syncDeviceSecrets", nil)
		},
	}
	t.flags(syncSecrets, true)

	cmd.AddCommand(create, show, list, del, gen, ext, upd, rec, syncSecrets)
	return cmd
}

func newEdgeAlertCmd(a *app) *cobra.Command {
	cmd := newGroup("alert", "Alerts of a Data Box Edge device.")
	var t edgeTarget
	list := &cobra.Command{
		Use: "list", Short: "List the alerts of a device (e.g. its key vault was deleted).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.name == "" || t.rg == "" {
				return usageErrorf("the following arguments are required: --device-name/-n, --resource-group/-g")
			}
			p, err := a.resourcePath(t.rg, "Microsoft.DataBoxEdge", "dataBoxEdgeDevices", t.name)
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), p+"/alerts", apiEdge, nil)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	t.flags(list, false)
	cmd.AddCommand(list)
	return cmd
}

// keyVaultNameBody is the body of an action taking an optional key vault
// name: none when the name was not given, so the server picks its default.
func keyVaultNameBody(name string) any {
	if name == "" {
		return nil
	}
	return map[string]any{"keyVaultName": name}
}
