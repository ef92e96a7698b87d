package cli

import (
	"context"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// The networkcloud noun mirrors `az networkcloud` (the Operator Nexus
// extension) for the commands the credential-rotation guide runs.

const (
	apiNetworkCloud      = "2025-02-01"
	ncNamespace          = "Microsoft.NetworkCloud"
	clusterManagerType   = ncNamespace + "/clusterManagers"
	ncClusterType        = ncNamespace + "/clusters"
	bareMetalMachineType = ncNamespace + "/bareMetalMachines"
	storageApplianceType = ncNamespace + "/storageAppliances"
)

func init() {
	register("", newNetworkCloudCmd)
	for _, t := range []string{clusterManagerType, ncClusterType, bareMetalMachineType, storageApplianceType} {
		apiVersionByType[strings.ToLower(t)] = apiNetworkCloud
	}
	for _, f := range []string{"--mi-user-assigned", "--secret-archive-settings", "--sa-settings",
		"--managed-resource-group-configuration", "--extended-location", "--credentials", "--skip-validations-for-machines"} {
		multiValueFlags[f] = true
	}
}

// Argument schemas (az's names; JSON names as in the networkcloud spec).
var (
	secretArchiveArg = shArg{
		flag: "--secret-archive",
		help: "The configuration for use of a key vault to store secrets for later retrieval by the operator (delivered with the cluster manager's identity).",
		fields: []shField{
			{name: "key-vault-id", json: "keyVaultId", help: "The resource ID of the key vault to archive the secrets of the cluster.", kind: shString},
			{name: "use-key-vault", json: "useKeyVault", help: "The indicator if the specified key vault should be used to archive the secrets of the cluster.",
				kind: shEnum, enum: []string{"True", "False"}},
		},
		example: `--secret-archive "{key-vault-id:/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.KeyVault/vaults/<vault>,use-key-vault:true}"`,
	}
	secretArchiveSettingsArg = shArg{
		flag:  "--secret-archive-settings",
		help:  "The settings for the secret archive used to hold credentials for the cluster (delivered with the cluster's identity; supersedes --secret-archive).",
		pairs: true,
		fields: []shField{
			{name: "identity-type", json: "associatedIdentity.identityType", help: "The type of managed identity that is being selected.",
				kind: shEnum, enum: []string{"SystemAssignedIdentity", "UserAssignedIdentity"}},
			{name: "identity-resource-id", json: "associatedIdentity.userAssignedIdentityResourceId",
				help: "The user assigned managed identity resource ID to use. Mutually exclusive with a system assigned identity type.", kind: shString},
			{name: "vault-uri", json: "vaultUri", help: "The URI for the key vault used as the secret archive (https://).", kind: shString},
			{name: "encryption-public-key", json: "encryptionPublicKey", file: true,
				help: "PEM RSA public key (>= 3072 bits) archived values are encrypted to; @FILE reads it from a file.", kind: shString},
		},
		example: `--secret-archive-settings identity-type="UserAssignedIdentity" identity-resource-id="/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<uai>" vault-uri="https://<vault>.vault.localhost:8443/"`,
	}
	managedRGArg = shArg{
		flag: "--managed-resource-group-configuration", help: "The configuration of the managed resource group associated with the resource.", pairs: true,
		fields: []shField{
			{name: "name", json: "name", help: "The name for the managed resource group.", kind: shString},
			{name: "location", json: "location", help: "The location of the managed resource group.", kind: shString},
		},
		example: `--managed-resource-group-configuration name="my-managed-rg" location="eastus"`,
	}
	extendedLocationArg = shArg{
		flag: "--extended-location", help: "The extended location of the cluster manager associated with the cluster (its managerExtendedLocation).", pairs: true,
		fields: []shField{
			{name: "name", json: "name", help: "The resource ID of the extended location (keyhaven also accepts the cluster manager's resource ID).", kind: shString},
			{name: "type", json: "type", help: "The extended location type: CustomLocation.", kind: shString},
		},
		example: `--extended-location name="/subscriptions/<sub>/resourceGroups/<managed-rg>/providers/Microsoft.ExtendedLocation/customLocations/<cm>-cl" type="CustomLocation"`,
	}
	credentialsFields = []shField{
		{name: "username", json: "username", help: "The username of the administrator of the device.", kind: shString},
		{name: "password", json: "password", help: "The password of the administrator of the device (write-only).", kind: shString},
	}
	rackFields = []shField{
		{name: "availability-zone", json: "availabilityZone", help: "The zone name used for this rack when created.", kind: shString},
		{name: "bare-metal-machine-configuration-data", json: "bareMetalMachineConfigurationData", help: "The unordered list of bare metal machine configuration.", kind: shList,
			fields: []shField{
				{name: "bmc-credentials", json: "bmcCredentials", help: "The credentials of the baseboard management controller.", kind: shObject, fields: credentialsFields},
				{name: "bmc-connection-string", json: "bmcConnectionString", help: "keyhaven: the BMC's Redfish endpoint, e.g. redfish+https://127.0.0.1:9443.", kind: shString},
				{name: "bmc-endpoint", json: "bmcEndpoint", help: "keyhaven: alias of bmc-connection-string.", kind: shString},
				{name: "bmc-mac-address", json: "bmcMacAddress", help: "The MAC address of the BMC for this machine.", kind: shString},
				{name: "boot-mac-address", json: "bootMacAddress", help: "The MAC address associated with the PXE NIC card.", kind: shString},
				{name: "machine-details", json: "machineDetails", help: "Free-form additional information about the machine.", kind: shString},
				{name: "machine-name", json: "machineName", help: "The name for the bare metal machine created from this specification.", kind: shString},
				{name: "rack-slot", json: "rackSlot", help: "The slot the physical machine is in the rack.", kind: shInt},
				{name: "serial-number", json: "serialNumber", help: "The serial number of the machine.", kind: shString},
			}},
		{name: "network-rack-id", json: "networkRackId", help: "The resource ID of the network rack that matches this rack definition.", kind: shString},
		{name: "rack-location", json: "rackLocation", help: "The free-form description of the rack's location.", kind: shString},
		{name: "rack-serial-number", json: "rackSerialNumber", help: "The unique identifier for the rack within the cluster.", kind: shString},
		{name: "rack-sku-id", json: "rackSkuId", help: "The resource ID of the sku for the rack being added.", kind: shString},
		{name: "storage-appliance-configuration-data", json: "storageApplianceConfigurationData", help: "The list of storage appliance configuration data for this rack.", kind: shList,
			fields: []shField{
				{name: "admin-credentials", json: "adminCredentials", help: "The credentials of the administrative interface.", kind: shObject, fields: credentialsFields},
				{name: "admin-endpoint", json: "adminEndpoint", help: "keyhaven: where the administrator credential lives: redfish+https://... or postgres://host:port/db.", kind: shString},
				{name: "rack-slot", json: "rackSlot", help: "The slot the storage appliance is in the rack.", kind: shInt},
				{name: "serial-number", json: "serialNumber", help: "The serial number of the appliance.", kind: shString},
				{name: "storage-appliance-name", json: "storageApplianceName", help: "The name for the storage appliance.", kind: shString},
			}},
	}
	rackArg = shArg{
		flag: "--aggregator-or-single-rack-definition", help: "The rack definition of the single rack (or the aggregator rack of a multi-rack cluster).",
		fields: rackFields,
		example: `--aggregator-or-single-rack-definition "{networkRackId:'/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ManagedNetworkFabric/networkRacks/<rack>',` +
			`rackSkuId:'/subscriptions/<sub>/providers/Microsoft.NetworkCloud/rackSkus/<sku>',rackSerialNumber:b99m99r1,` +
			`bareMetalMachineConfigurationData:[{bmcCredentials:{username:root,password:'<pw>'},bmcConnectionString:'redfish+https://127.0.0.1:9443',` +
			`bmcMacAddress:'AA:BB:CC:DD:E7:08',bootMacAddress:'AA:BB:CC:F8:71:2E',machineName:lab00r750wkr1,rackSlot:2,serialNumber:5HS7PK3}]}"`,
	}
	computeRacksArg = shArg{
		flag: "--compute-rack-definitions", help: "The list of rack definitions for the compute racks of a multi-rack cluster.", list: true,
		fields: rackFields, example: `--compute-rack-definitions @compute-racks.json`,
	}
)

func newNetworkCloudCmd(a *app) *cobra.Command {
	cmd := newGroup("networkcloud", "Manage Operator Nexus (Microsoft.NetworkCloud) cluster managers, clusters and their machines.")
	cmd.AddCommand(newClusterManagerCmd(a), newNCClusterCmd(a), newBareMetalMachineCmd(a), newStorageApplianceCmd(a))
	return cmd
}

// flattenNC renders a NetworkCloud resource as az's networkcloud commands
// do: the properties next to the envelope (so `--query secretArchive`
// works on `cluster show`).
func flattenNC(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, it := range x {
			out[i] = flattenNC(it)
		}
		return out
	case map[string]any:
		props, ok := x["properties"].(map[string]any)
		if !ok {
			return x
		}
		out := make(map[string]any, len(x)+len(props))
		for k, val := range props {
			out[k] = val
		}
		for k, val := range x {
			if k != "properties" {
				out[k] = val
			}
		}
		return out
	}
	return v
}

func (a *app) printNC(v any) error { return a.print(flattenNC(v)) }

// identityFlags are az's --mi-system-assigned / --mi-user-assigned.
type identityFlags struct {
	system bool
	user   []string
}

func (f *identityFlags) bind(c *cobra.Command) {
	c.Flags().BoolVar(&f.system, "mi-system-assigned", false, "Enable system-assigned managed identity (the resource's identity set becomes exactly what these flags give).")
	c.Flags().StringArrayVar(&f.user, "mi-user-assigned", nil, "Space-separated resource IDs of user-assigned identities to assign.")
}

// addTo sets body's identity block when either flag was given.
func (f *identityFlags) addTo(c *cobra.Command, body map[string]any) error {
	ident, err := f.body(c)
	if err != nil {
		return err
	}
	if ident != nil {
		body["identity"] = ident
	}
	return nil
}

// body returns the identity block, or nil when neither flag was given.
func (f *identityFlags) body(c *cobra.Command) (map[string]any, error) {
	if !c.Flags().Changed("mi-system-assigned") && !c.Flags().Changed("mi-user-assigned") {
		return nil, nil
	}
	var ids []string
	for _, u := range f.user {
		for _, id := range strings.Fields(u) {
			r, err := parseResourceID(id)
			if err != nil || !strings.EqualFold(r.FullType(), "Microsoft.ManagedIdentity/userAssignedIdentities") {
				return nil, usageErrorf("argument --mi-user-assigned: %q is not a user-assigned identity resource ID", clipText(id, 200))
			}
			ids = append(ids, id)
		}
	}
	typ := "None"
	switch {
	case f.system && len(ids) > 0:
		typ = "SystemAssigned,UserAssigned"
	case f.system:
		typ = "SystemAssigned"
	case len(ids) > 0:
		typ = "UserAssigned"
	}
	b := map[string]any{"type": typ}
	if len(ids) > 0 {
		m := map[string]any{}
		for _, id := range ids {
			m[id] = map[string]any{}
		}
		b["userAssignedIdentities"] = m
	}
	return b, nil
}

// ncTarget binds -n/-g/--ids for a NetworkCloud resource command.
type ncTarget struct {
	name, rg string
	ids      []string
	noWait   bool
}

func (t *ncTarget) bind(c *cobra.Command, nameHelp string, withIDs, withNoWait bool, aliases ...string) {
	c.Flags().StringVarP(&t.name, "name", "n", "", nameHelp)
	for _, al := range aliases {
		c.Flags().StringVar(&t.name, al, "", nameHelp)
	}
	c.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Name of resource group.")
	if withIDs {
		c.Flags().StringArrayVar(&t.ids, "ids", nil, "One or more resource IDs (space-delimited). Replaces --name and --resource-group.")
	}
	if withNoWait {
		c.Flags().BoolVar(&t.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	}
}

// ncShow, ncList and ncDelete are the verbs every NetworkCloud noun shares.
func (a *app) ncShow(ctx context.Context, t *ncTarget, fullType string) error {
	paths, err := a.targets(t.ids, t.rg, t.name, fullType)
	if err != nil {
		return err
	}
	v, err := eachTarget(paths, func(p string) (any, error) { return a.armGet(ctx, p, apiNetworkCloud) })
	if err != nil {
		return err
	}
	return a.printNC(v)
}

func (a *app) ncList(ctx context.Context, rg, fullType string) error {
	scope, err := a.scopePath(rg)
	if err != nil {
		return err
	}
	items, err := a.armList(ctx, scope+"/providers/"+fullType, apiNetworkCloud, nil)
	if err != nil {
		return err
	}
	return a.printNC(items)
}

func (a *app) ncAction(ctx context.Context, t *ncTarget, fullType, action string, body any) error {
	paths, err := a.targets(t.ids, t.rg, t.name, fullType)
	if err != nil {
		return err
	}
	v, err := eachTarget(paths, func(p string) (any, error) {
		return a.arm(ctx, armCall{method: http.MethodPost, path: p + "/" + action, apiVersion: apiNetworkCloud, body: body, noWait: t.noWait})
	})
	if err != nil {
		return err
	}
	if v == nil {
		return nil
	}
	return a.printNC(v)
}

func newClusterManagerCmd(a *app) *cobra.Command {
	cmd := newGroup("clustermanager", "Manage cluster managers.")
	var t ncTarget
	var location, workspace, fabric string
	var mrg, tags []string
	var idf identityFlags

	create := &cobra.Command{
		Use: "create", Short: "Create a new cluster manager or update the properties of the cluster manager if it exists.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if t.name == "" || t.rg == "" || fabric == "" {
				return usageErrorf("the following arguments are required: --name/-n, --resource-group/-g, --fabric-controller-id")
			}
			p, err := a.resourcePath(t.rg, ncNamespace, "clusterManagers", t.name)
			if err != nil {
				return err
			}
			if location == "" {
				if location, err = a.groupLocation(cmd.Context(), t.rg); err != nil {
					return err
				}
			}
			props := map[string]any{"fabricControllerId": fabric}
			if workspace != "" {
				props["analyticsWorkspaceId"] = workspace
			}
			if cmd.Flags().Changed("managed-resource-group-configuration") {
				v, help, err := parseObjectArg(managedRGArg, mrg)
				if help {
					printShorthandHelp(a.stdout, managedRGArg)
					return nil
				}
				if err != nil {
					return err
				}
				props["managedResourceGroupConfiguration"] = v
			}
			body := map[string]any{"location": location, "properties": props}
			if err := addTags(cmd, body, tags); err != nil {
				return err
			}
			if err := idf.addTo(cmd, body); err != nil {
				return err
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: p, apiVersion: apiNetworkCloud, body: body, noWait: t.noWait})
			if err != nil || v == nil {
				return err
			}
			return a.printNC(v)
		},
	}
	t.bind(create, "The name of the cluster manager.", false, true, "cluster-manager-name")
	create.Flags().StringVarP(&location, "location", "l", "", "Location (default: the resource group's).")
	create.Flags().StringVar(&workspace, "analytics-workspace-id", "", "The resource ID of the Log Analytics workspace that is used for the logs collection.")
	create.Flags().StringVar(&fabric, "fabric-controller-id", "", "The resource ID of the fabric controller that has one to one mapping with the cluster manager.")
	create.Flags().StringArrayVar(&mrg, "managed-resource-group-configuration", nil, "The configuration of the managed resource group: name=XX location=XX.")
	create.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	idf.bind(create)

	update := &cobra.Command{
		Use: "update", Short: "Update the identities or tags of a cluster manager (a given identity set replaces the current one).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(t.ids, t.rg, t.name, clusterManagerType)
			if err != nil {
				return err
			}
			body := map[string]any{}
			if err := addTags(cmd, body, tags); err != nil {
				return err
			}
			if err := idf.addTo(cmd, body); err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodPatch, path: p, apiVersion: apiNetworkCloud, body: body})
			})
			if err != nil {
				return err
			}
			return a.printNC(v)
		},
	}
	t.bind(update, "The name of the cluster manager.", true, false, "cluster-manager-name")
	update.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	idf.bind(update)

	show, list := a.ncShowListCmds(&t, clusterManagerType, "cluster manager", "cluster-manager-name")
	cmd.AddCommand(create, update, show, list, newNCDeleteCmd(a, "cluster manager", clusterManagerType, "cluster-manager-name"))
	return cmd
}

func newNCDeleteCmd(a *app, what, fullType, alias string) *cobra.Command {
	var t ncTarget
	var yes bool
	del := &cobra.Command{Use: "delete", Short: "Delete the provided " + what + ".", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(t.ids, t.rg, t.name, fullType)
			if err != nil {
				return err
			}
			_, err = eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiNetworkCloud, noWait: t.noWait})
			})
			return err
		}}
	t.bind(del, "The name of the "+what+".", true, true, alias)
	del.Flags().BoolVarP(&yes, "yes", "y", false, "Do not prompt for confirmation.")
	return del
}

func addTags(cmd *cobra.Command, body map[string]any, tags []string) error {
	if !cmd.Flags().Changed("tags") {
		return nil
	}
	tg, err := parseTags(tags)
	if err != nil {
		return err
	}
	body["tags"] = tg
	return nil
}

// ncShowListCmds are the show and list verbs of a Network Cloud resource
// type (noun, e.g. "bare metal machine"), named by --nameFlag.
func (a *app) ncShowListCmds(t *ncTarget, typ, noun, nameFlag string) (show, list *cobra.Command) {
	show = &cobra.Command{Use: "show", Short: "Get properties of the provided " + noun + ".", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.ncShow(cmd.Context(), t, typ) }}
	t.bind(show, "The name of the "+noun+".", true, false, nameFlag)
	list = &cobra.Command{Use: "list", Short: "List " + noun + "s in the resource group or subscription.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.ncList(cmd.Context(), t.rg, typ) }}
	list.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Name of resource group.")
	return show, list
}

func newBareMetalMachineCmd(a *app) *cobra.Command {
	cmd := newGroup("baremetalmachine", "Manage bare metal machines (created by cluster deploy).")
	var t ncTarget
	show, list := a.ncShowListCmds(&t, bareMetalMachineType, "bare metal machine", "bare-metal-machine-name")
	var evacuate string
	cordon := &cobra.Command{Use: "cordon", Short: "Cordon the provided bare metal machine: its credentials are not rotated while cordoned.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			if evacuate != "" {
				v, err := oneOf("--evacuate", evacuate, "True", "False")
				if err != nil {
					return err
				}
				body["evacuate"] = v
			}
			return a.ncAction(cmd.Context(), &t, bareMetalMachineType, "cordon", body)
		}}
	t.bind(cordon, "The name of the bare metal machine.", true, true, "bare-metal-machine-name")
	cordon.Flags().StringVar(&evacuate, "evacuate", "", "Whether to evacuate the node workload: True or False.")
	uncordon := &cobra.Command{Use: "uncordon", Short: "Uncordon the provided bare metal machine.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.ncAction(cmd.Context(), &t, bareMetalMachineType, "uncordon", nil)
		}}
	t.bind(uncordon, "The name of the bare metal machine.", true, true, "bare-metal-machine-name")
	cmd.AddCommand(show, list, cordon, uncordon)
	return cmd
}

func newStorageApplianceCmd(a *app) *cobra.Command {
	cmd := newGroup("storageappliance", "Manage storage appliances (created by cluster deploy).")
	var t ncTarget
	show, list := a.ncShowListCmds(&t, storageApplianceType, "storage appliance", "storage-appliance-name")
	cmd.AddCommand(show, list)
	return cmd
}
