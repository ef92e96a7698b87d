package cli

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// clusterArgs are the object arguments of cluster create/update, in the
// order their `??` help is looked for.
type clusterArgs struct {
	secretArchive, settings, rack, computeRacks, mrg, extLoc []string
}

func (c *clusterArgs) objectArgs() []struct {
	flag string
	arg  shArg
	vals *[]string
} {
	return []struct {
		flag string
		arg  shArg
		vals *[]string
	}{
		{"secret-archive", secretArchiveArg, &c.secretArchive},
		{"secret-archive-settings", secretArchiveSettingsArg, &c.settings},
		{"aggregator-or-single-rack-definition", rackArg, &c.rack},
		{"compute-rack-definitions", computeRacksArg, &c.computeRacks},
		{"managed-resource-group-configuration", managedRGArg, &c.mrg},
		{"extended-location", extendedLocationArg, &c.extLoc},
	}
}

// syntaxHelp prints the shorthand help of the first object argument given
// as `??` and reports whether it did.
func (c *clusterArgs) syntaxHelp(a *app, cmd *cobra.Command) bool {
	for _, o := range c.objectArgs() {
		f := cmd.Flags().Lookup(o.flag)
		if f == nil || !f.Changed {
			continue
		}
		if len(*o.vals) == 1 && strings.TrimSpace((*o.vals)[0]) == "??" {
			printShorthandHelp(cmd.OutOrStdout(), o.arg)
			return true
		}
	}
	return false
}

// bindClusterObjects binds the object arguments (with az's short aliases)
// and makes `--flag ?? --help` print the argument's syntax, as az does.
func (c *clusterArgs) bind(a *app, cmd *cobra.Command, create bool) {
	f := cmd.Flags()
	f.StringArrayVar(&c.secretArchive, "secret-archive", nil, "The legacy secret archive: \"{key-vault-id:ID,use-key-vault:true}\". Use '??' for the syntax.")
	f.StringArrayVar(&c.settings, "secret-archive-settings", nil, "The secret archive settings: identity-type=XX identity-resource-id=XX vault-uri=XX. Use '??' for the syntax.")
	f.StringArrayVar(&c.settings, "sa-settings", nil, "Alias of --secret-archive-settings.")
	f.StringArrayVar(&c.rack, "aggregator-or-single-rack-definition", nil, "The rack definition (shorthand, JSON or @file). Use '??' for the syntax.")
	f.StringArrayVar(&c.rack, "aggregator-or-single", nil, "Alias of --aggregator-or-single-rack-definition.")
	f.StringArrayVar(&c.computeRacks, "compute-rack-definitions", nil, "The compute rack definitions (list: shorthand, JSON or @file).")
	f.StringArrayVar(&c.computeRacks, "compute-rack-def", nil, "Alias of --compute-rack-definitions.")
	if create {
		f.StringArrayVar(&c.mrg, "managed-resource-group-configuration", nil, "The managed resource group: name=XX location=XX.")
		f.StringArrayVar(&c.extLoc, "extended-location", nil, "The cluster manager's extended location: name=XX type=CustomLocation.")
	}
	def := cmd.HelpFunc()
	cmd.SetHelpFunc(func(cmd *cobra.Command, args []string) {
		if c.syntaxHelp(a, cmd) {
			return
		}
		def(cmd, args)
	})
}

// apply parses the object arguments given into the request body.
func (c *clusterArgs) apply(cmd *cobra.Command, body, props map[string]any) error {
	set := func(flag string, alias string) bool {
		return cmd.Flags().Changed(flag) || alias != "" && cmd.Flags().Changed(alias)
	}
	aliases := map[string]string{"secret-archive-settings": "sa-settings", "aggregator-or-single-rack-definition": "aggregator-or-single",
		"compute-rack-definitions": "compute-rack-def"}
	for _, o := range c.objectArgs() {
		if cmd.Flags().Lookup(o.flag) == nil || !set(o.flag, aliases[o.flag]) {
			continue
		}
		var v any
		if len(*o.vals) == 1 && strings.EqualFold(strings.TrimSpace((*o.vals)[0]), "null") && o.flag == "secret-archive-settings" {
			v = nil // az's nullable argument: clear the settings
		} else {
			pv, _, err := parseObjectArg(o.arg, *o.vals)
			if err != nil {
				return err
			}
			v = pv
		}
		switch o.flag {
		case "secret-archive":
			props["secretArchive"] = v
		case "secret-archive-settings":
			props["secretArchiveSettings"] = v
		case "aggregator-or-single-rack-definition":
			props["aggregatorOrSingleRackDefinition"] = v
		case "compute-rack-definitions":
			props["computeRackDefinitions"] = v
		case "managed-resource-group-configuration":
			props["managedResourceGroupConfiguration"] = v
		case "extended-location":
			m, _ := v.(map[string]any)
			if m != nil && m["type"] == nil {
				m["type"] = "CustomLocation"
			}
			body["extendedLocation"] = m
		}
	}
	return nil
}

func newNCClusterCmd(a *app) *cobra.Command {
	cmd := newGroup("cluster", "Manage Operator Nexus clusters.")
	cmd.AddCommand(newNCClusterCreateCmd(a), newNCClusterUpdateCmd(a), newNCClusterShowCmd(a), newNCClusterListCmd(a),
		newNCDeleteCmd(a, "cluster", ncClusterType, "cluster-name"), newNCClusterDeployCmd(a), newNCRotateCredentialCmd(a))
	return cmd
}

func newNCClusterCreateCmd(a *app) *cobra.Command {
	var t ncTarget
	var c clusterArgs
	var idf identityFlags
	var location, clusterType, clusterVersion, fabric, workspace, clusterLocation, managerID, encKey string
	var tags []string
	create := &cobra.Command{
		Use: "create", Short: "Create a new cluster or update the properties of the cluster if it exists.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.syntaxHelp(a, cmd) {
				return nil
			}
			if t.name == "" || t.rg == "" {
				return usageErrorf("the following arguments are required: --name/-n, --resource-group/-g")
			}
			p, err := a.resourcePath(t.rg, ncNamespace, "clusters", t.name)
			if err != nil {
				return err
			}
			if location == "" {
				if location, err = a.groupLocation(cmd.Context(), t.rg); err != nil {
					return err
				}
			}
			props := map[string]any{"clusterType": clusterType, "clusterVersion": clusterVersion, "networkFabricId": fabric}
			body := map[string]any{"location": location, "properties": props}
			for k, v := range map[string]string{"analyticsWorkspaceId": workspace, "clusterLocation": clusterLocation, "clusterManagerId": managerID} {
				if v != "" {
					props[k] = v
				}
			}
			if encKey != "" {
				k, err := readValueOrFile("--encryption-public-key", encKey)
				if err != nil {
					return err
				}
				props["encryptionPublicKey"] = k
			}
			if err := c.apply(cmd, body, props); err != nil {
				return err
			}
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
	t.bind(create, "The name of the cluster.", false, true, "cluster-name")
	f := create.Flags()
	f.StringVarP(&location, "location", "l", "", "Location (default: the resource group's).")
	f.StringVar(&clusterType, "cluster-type", "", "The type of rack configuration for the cluster: SingleRack or MultiRack.")
	f.StringVar(&clusterVersion, "cluster-version", "", "The current runtime version of the cluster.")
	f.StringVar(&fabric, "network-fabric-id", "", "The resource ID of the Network Fabric associated with the cluster.")
	f.StringVar(&workspace, "analytics-workspace-id", "", "The resource ID of the Log Analytics Workspace.")
	f.StringVar(&clusterLocation, "cluster-location", "", "The customer-provided location information to identify where the cluster resides.")
	f.StringVar(&managerID, "cluster-manager-id", "", "keyhaven: the cluster manager's resource ID (instead of --extended-location).")
	f.StringVar(&encKey, "encryption-public-key", "", "keyhaven: PEM RSA public key (>= 3072 bits) or @FILE; archived values are encrypted to it.")
	f.StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	idf.bind(create)
	c.bind(a, create, true)
	return create
}

func readValueOrFile(flag, v string) (string, error) {
	if !strings.HasPrefix(v, "@") {
		return v, nil
	}
	b, err := readFileLimited(v[1:], maxShorthandLen)
	if err != nil {
		return "", usageErrorf("argument %s: %v", flag, err)
	}
	return string(b), nil
}

func newNCClusterUpdateCmd(a *app) *cobra.Command {
	var t ncTarget
	var c clusterArgs
	var idf identityFlags
	var clusterLocation, encKey string
	var tags []string
	update := &cobra.Command{
		Use:   "update",
		Short: "Update the properties of the provided cluster, or update the tags associated with the cluster.",
		Long: `Update the properties of the provided cluster, or update the tags associated with the cluster.

Identity flags set the cluster's whole identity set (--mi-user-assigned removes a system-assigned
identity unless --mi-system-assigned is given too), as az does.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if c.syntaxHelp(a, cmd) {
				return nil
			}
			paths, err := a.targets(t.ids, t.rg, t.name, ncClusterType)
			if err != nil {
				return err
			}
			props := map[string]any{}
			body := map[string]any{}
			if cmd.Flags().Changed("cluster-location") {
				props["clusterLocation"] = clusterLocation
			}
			if cmd.Flags().Changed("encryption-public-key") {
				k, err := readValueOrFile("--encryption-public-key", encKey)
				if err != nil {
					return err
				}
				props["encryptionPublicKey"] = k
			}
			if err := c.apply(cmd, body, props); err != nil {
				return err
			}
			if len(props) > 0 {
				body["properties"] = props
			}
			if err := addTags(cmd, body, tags); err != nil {
				return err
			}
			if err := idf.addTo(cmd, body); err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodPatch, path: p, apiVersion: apiNetworkCloud, body: body, noWait: t.noWait})
			})
			if err != nil || v == nil {
				return err
			}
			return a.printNC(v)
		},
	}
	t.bind(update, "The name of the cluster.", true, true, "cluster-name")
	update.Flags().StringVar(&clusterLocation, "cluster-location", "", "The customer-provided location information to identify where the cluster resides.")
	update.Flags().StringVar(&encKey, "encryption-public-key", "", "keyhaven: PEM RSA public key (>= 3072 bits) or @FILE; \"\" removes it.")
	update.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
	idf.bind(update)
	c.bind(a, update, false)
	return update
}

func newNCClusterShowCmd(a *app) *cobra.Command {
	var t ncTarget
	show := &cobra.Command{Use: "show", Short: "Get properties of the provided cluster.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.ncShow(cmd.Context(), &t, ncClusterType) }}
	t.bind(show, "The name of the cluster.", true, false, "cluster-name")
	return show
}

func newNCClusterListCmd(a *app) *cobra.Command {
	var rg string
	list := &cobra.Command{Use: "list", Short: "List clusters in the resource group or subscription.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.ncList(cmd.Context(), rg, ncClusterType) }}
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of resource group.")
	return list
}

func newNCClusterDeployCmd(a *app) *cobra.Command {
	var t ncTarget
	var skip []string
	deploy := &cobra.Command{Use: "deploy", Short: "Deploy the cluster: its machines become resources and every managed credential is rotated.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			body := map[string]any{}
			if len(skip) > 0 {
				body["skipValidationsForMachines"] = skip
			}
			return a.ncAction(cmd.Context(), &t, ncClusterType, "deploy", body)
		}}
	t.bind(deploy, "The name of the cluster.", true, true, "cluster-name")
	deploy.Flags().StringArrayVar(&skip, "skip-validations-for-machines", nil, "Names of bare metal machines to skip during environment validation.")
	return deploy
}

func newNCRotateCredentialCmd(a *app) *cobra.Command {
	var t ncTarget
	var creds []string
	rot := &cobra.Command{Use: "rotate-credential", Short: "Rotate the specified managed credentials of the cluster now.",
		Long: `Rotate the specified managed credentials of the cluster now.

Credential names: BMCCredential, ConsoleUser, LocalPathStorageKey, StorageApplianceAdministrator
(the cluster's managedCredentials list names the ones it has).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var names []string
			for _, c := range creds {
				names = append(names, strings.FieldsFunc(c, func(r rune) bool { return r == ',' || r == ' ' })...)
			}
			if len(names) == 0 {
				return usageErrorf("the following arguments are required: --credentials")
			}
			return a.ncAction(cmd.Context(), &t, ncClusterType, "rotateCredential", map[string]any{"credentials": names})
		}}
	t.bind(rot, "The name of the cluster.", true, true, "cluster-name")
	rot.Flags().StringArrayVar(&creds, "credentials", nil, "Space-separated credential names to rotate, e.g. BMCCredential ConsoleUser.")
	return rot
}
