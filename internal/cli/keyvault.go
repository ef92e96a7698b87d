package cli

import (
	"context"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

const vaultType = "Microsoft.KeyVault/vaults"

// vaultFlags are the flags shared by the vault control-plane commands.
type vaultFlags struct {
	name, rg, location string
	ids                []string
	noWait             bool
}

func (f *vaultFlags) bindTarget(c *cobra.Command, withIDs bool) {
	c.Flags().StringVarP(&f.name, "name", "n", "", "Name of the Vault.")
	c.Flags().StringVarP(&f.rg, "resource-group", "g", "", "Name of the resource group (found by vault name when omitted).")
	if withIDs {
		c.Flags().StringArrayVar(&f.ids, "ids", nil, "One or more resource IDs (space-delimited). Replaces --name and --resource-group.")
	}
}

// vaultPaths resolves --ids, or -n with or without -g (without, the vault is
// looked up by name in the subscription as az does).
func (a *app) vaultPaths(ctx context.Context, f *vaultFlags) ([]string, error) {
	if len(f.ids) == 0 && f.rg == "" && f.name != "" {
		p, err := a.findVaultByName(ctx, f.name)
		if err != nil {
			return nil, err
		}
		return []string{p}, nil
	}
	return a.targets(f.ids, f.rg, f.name, vaultType)
}

func (a *app) findVaultByName(ctx context.Context, name string) (string, error) {
	if err := checkName("--name/-n", name); err != nil {
		return "", err
	}
	scope, err := a.scopePath("")
	if err != nil {
		return "", err
	}
	items, err := a.armList(ctx, scope+"/providers/Microsoft.KeyVault/vaults", apiKeyVault, nil)
	if err != nil {
		return "", err
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if n, _ := m["name"].(string); strings.EqualFold(n, name) {
			if id, _ := m["id"].(string); id != "" {
				if _, err := parseResourceID(id); err == nil {
					return id, nil
				}
			}
		}
	}
	return "", &azerr.Error{Status: http.StatusNotFound, Code: "ResourceNotFound", Message: "The Vault '" + name + "' not found within subscription."}
}

// Default permissions az grants the creator of an access-policy vault.
var (
	selfKeyPerms    = []string{"get", "create", "delete", "list", "update", "import", "backup", "restore", "recover"}
	selfSecretPerms = []string{"get", "list", "set", "delete", "backup", "restore", "recover"}
	selfCertPerms   = []string{"get", "list", "delete", "create", "import", "update", "managecontacts", "getissuers", "listissuers", "setissuers", "deleteissuers", "manageissuers", "recover"}
	selfStoragePerm = []string{"get", "list", "delete", "set", "update", "regeneratekey", "setsas", "listsas", "getsas", "deletesas"}
)

func newKeyVaultCmd(a *app) *cobra.Command {
	cmd := newGroup("keyvault", "Manage Key Vault resources and their secrets.")
	cmd.AddCommand(newVaultCreateCmd(a), newVaultShowCmd(a), newVaultListCmd(a), newVaultUpdateCmd(a),
		newVaultDeleteCmd(a), newVaultRecoverCmd(a), newVaultPurgeCmd(a), newVaultListDeletedCmd(a),
		newVaultShowDeletedCmd(a), newVaultSetPolicyCmd(a), newVaultDeletePolicyCmd(a),
		newVaultNetworkRuleCmd(a), newSecretCmd(a))
	return cmd
}

// vaultProps are the properties create and update may set.
type vaultProps struct {
	rbac, purgeProtection triBool
	retentionDays         int
	defaultAction, bypass string
	publicNetworkAccess   string
	tags                  []string
}

func (p *vaultProps) bind(c *cobra.Command, create bool) {
	f := c.Flags()
	f.Var(&p.rbac, "enable-rbac-authorization", "Use RBAC for data-plane authorization (create default: true).")
	f.Lookup("enable-rbac-authorization").NoOptDefVal = "true"
	f.Var(&p.purgeProtection, "enable-purge-protection", "Enable purge protection (cannot be disabled again).")
	f.Lookup("enable-purge-protection").NoOptDefVal = "true"
	def := 0
	if create {
		def = 90
	}
	f.IntVar(&p.retentionDays, "retention-days", def, "Soft-delete retention days, 7-90.")
	f.StringVar(&p.defaultAction, "default-action", "", "Default action when no network rule matches: Allow or Deny.")
	f.StringVar(&p.bypass, "bypass", "", "Traffic that bypasses network rules: AzureServices or None.")
	f.StringVar(&p.publicNetworkAccess, "public-network-access", "", "Enabled or Disabled.")
	f.StringArrayVar(&p.tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")
}

// apply writes the set flags into a vault body's properties.
func (p *vaultProps) apply(c *cobra.Command, body, props map[string]any) error {
	f := c.Flags()
	if p.rbac.set {
		props["enableRbacAuthorization"] = p.rbac.val
	}
	if p.purgeProtection.set {
		if !p.purgeProtection.val {
			return usageErrorf("argument --enable-purge-protection: purge protection cannot be disabled")
		}
		props["enablePurgeProtection"] = true
	}
	if f.Changed("retention-days") || (p.retentionDays != 0 && props["softDeleteRetentionInDays"] == nil) {
		if p.retentionDays < 7 || p.retentionDays > 90 {
			return usageErrorf("argument --retention-days: must be between 7 and 90")
		}
		props["softDeleteRetentionInDays"] = p.retentionDays
	}
	if p.defaultAction != "" || p.bypass != "" {
		acls, _ := props["networkAcls"].(map[string]any)
		if acls == nil {
			acls = map[string]any{"defaultAction": "Allow", "bypass": "AzureServices"}
		}
		if p.defaultAction != "" {
			v, err := oneOf("--default-action", p.defaultAction, "Allow", "Deny")
			if err != nil {
				return err
			}
			acls["defaultAction"] = v
		}
		if p.bypass != "" {
			v, err := oneOf("--bypass", p.bypass, "AzureServices", "None")
			if err != nil {
				return err
			}
			acls["bypass"] = v
		}
		props["networkAcls"] = acls
	}
	if p.publicNetworkAccess != "" {
		v, err := oneOf("--public-network-access", p.publicNetworkAccess, "Enabled", "Disabled")
		if err != nil {
			return err
		}
		props["publicNetworkAccess"] = v
	}
	if f.Changed("tags") {
		t, err := parseTags(p.tags)
		if err != nil {
			return err
		}
		body["tags"] = t
	}
	return nil
}

// oneOf matches v case-insensitively against choices and returns the
// canonical spelling.
func oneOf(flag, v string, choices ...string) (string, error) {
	for _, c := range choices {
		if strings.EqualFold(v, c) {
			return c, nil
		}
	}
	return "", usageErrorf("argument %s: invalid choice: %q (choose from %s)", flag, v, strings.Join(choices, ", "))
}

func newVaultCreateCmd(a *app) *cobra.Command {
	var f vaultFlags
	var p vaultProps
	var sku string
	var noSelfPerms triBool
	cmd := &cobra.Command{
		Use: "create", Short: "Create a Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.name == "" || f.rg == "" {
				return usageErrorf("the following arguments are required: --name/-n, --resource-group/-g")
			}
			path, err := a.resourcePath(f.rg, "Microsoft.KeyVault", "vaults", f.name)
			if err != nil {
				return err
			}
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			skuName, err := oneOf("--sku", sku, "standard", "premium")
			if err != nil {
				return err
			}
			if f.location == "" {
				if f.location, err = a.groupLocation(cmd.Context(), f.rg); err != nil {
					return err
				}
			}
			if !p.rbac.set {
				p.rbac = triBool{set: true, val: true} // az's default since 2.61
			}
			props := map[string]any{
				"tenantId":         cfg.TenantID,
				"sku":              map[string]any{"family": "A", "name": skuName},
				"enableSoftDelete": true,
				"accessPolicies":   []any{},
			}
			body := map[string]any{"location": f.location, "properties": props}
			if err := p.apply(cmd, body, props); err != nil {
				return err
			}
			if !p.rbac.val && !(noSelfPerms.set && noSelfPerms.val) {
				if cfg.ObjectID == "" {
					a.warn("Cannot tell the signed-in principal's object id; no access policy was added for it.")
				} else {
					props["accessPolicies"] = []any{accessPolicy(cfg.TenantID, cfg.ObjectID, selfKeyPerms, selfSecretPerms, selfCertPerms, selfStoragePerm)}
				}
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: path, apiVersion: apiKeyVault, body: body, noWait: f.noWait})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f.bindTarget(cmd, false)
	cmd.Flags().StringVarP(&f.location, "location", "l", "", "Location (default: the resource group's).")
	cmd.Flags().StringVar(&sku, "sku", "standard", "SKU: standard or premium.")
	cmd.Flags().Var(&noSelfPerms, "no-self-perms", "Don't add permissions for the current user in the new vault's access policies.")
	cmd.Flags().Lookup("no-self-perms").NoOptDefVal = "true"
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	p.bind(cmd, true)
	return cmd
}

func accessPolicy(tenant, objectID string, keys, secrets, certs, storage []string) map[string]any {
	perms := map[string]any{}
	for k, v := range map[string][]string{"keys": keys, "secrets": secrets, "certificates": certs, "storage": storage} {
		if v == nil {
			v = []string{}
		}
		perms[k] = v
	}
	return map[string]any{"tenantId": tenant, "objectId": objectID, "permissions": perms}
}

func (a *app) groupLocation(ctx context.Context, rg string) (string, error) {
	p, err := a.scopePath(rg)
	if err != nil {
		return "", err
	}
	v, err := a.armGet(ctx, p, apiResources)
	if err != nil {
		return "", err
	}
	m, _ := v.(map[string]any)
	loc, _ := m["location"].(string)
	if loc == "" {
		return "", usageErrorf("the following arguments are required: --location/-l")
	}
	return loc, nil
}

func newVaultShowCmd(a *app) *cobra.Command {
	var f vaultFlags
	cmd := &cobra.Command{
		Use: "show", Short: "Show details of a Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.vaultPaths(cmd.Context(), &f)
			if err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) { return a.armGet(cmd.Context(), p, apiKeyVault) })
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f.bindTarget(cmd, true)
	return cmd
}

func newVaultListCmd(a *app) *cobra.Command {
	var rg string
	cmd := &cobra.Command{
		Use: "list", Short: "List Vaults.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, err := a.scopePath(rg)
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), scope+"/providers/Microsoft.KeyVault/vaults", apiKeyVault, nil)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of the resource group.")
	return cmd
}

// updateVault GETs each vault, lets mutate change it and PUTs it back, as
// az's generic update does.
func (a *app) updateVault(ctx context.Context, f *vaultFlags, mutate func(body, props map[string]any) error) (any, error) {
	paths, err := a.vaultPaths(ctx, f)
	if err != nil {
		return nil, err
	}
	return eachTarget(paths, func(p string) (any, error) {
		cur, err := a.armGet(ctx, p, apiKeyVault)
		if err != nil {
			return nil, err
		}
		body, _ := cur.(map[string]any)
		if body == nil {
			return nil, &azerr.Error{Message: "the server returned an empty vault"}
		}
		props, _ := body["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		if err := mutate(body, props); err != nil {
			return nil, err
		}
		put := map[string]any{"location": body["location"], "tags": body["tags"], "properties": props}
		return a.arm(ctx, armCall{method: http.MethodPut, path: p, apiVersion: apiKeyVault, body: put, noWait: f.noWait})
	})
}

func newVaultUpdateCmd(a *app) *cobra.Command {
	var f vaultFlags
	var p vaultProps
	cmd := &cobra.Command{
		Use: "update", Short: "Update the properties of a Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := a.updateVault(cmd.Context(), &f, func(body, props map[string]any) error {
				return p.apply(cmd, body, props)
			})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f.bindTarget(cmd, true)
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	p.bind(cmd, false)
	return cmd
}

func newVaultDeleteCmd(a *app) *cobra.Command {
	var f vaultFlags
	cmd := &cobra.Command{
		Use: "delete", Short: "Delete a Vault (it stays recoverable for its retention period).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.vaultPaths(cmd.Context(), &f)
			if err != nil {
				return err
			}
			_, err = eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiKeyVault, noWait: f.noWait})
			})
			return err
		},
	}
	f.bindTarget(cmd, true)
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	return cmd
}

// deletedVault finds a soft-deleted vault by name (and location, if known).
func (a *app) deletedVault(ctx context.Context, name, location string) (map[string]any, error) {
	if err := checkName("--name/-n", name); err != nil {
		return nil, err
	}
	scope, err := a.scopePath("")
	if err != nil {
		return nil, err
	}
	if location != "" {
		if err := checkName("--location/-l", location); err != nil {
			return nil, err
		}
		v, err := a.armGet(ctx, scope+"/providers/Microsoft.KeyVault/locations/"+location+"/deletedVaults/"+name, apiKeyVault)
		if err != nil {
			return nil, err
		}
		m, _ := v.(map[string]any)
		return m, nil
	}
	items, err := a.armList(ctx, scope+"/providers/Microsoft.KeyVault/deletedVaults", apiKeyVault, nil)
	if err != nil {
		return nil, err
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if n, _ := m["name"].(string); strings.EqualFold(n, name) {
			return m, nil
		}
	}
	return nil, &azerr.Error{Status: http.StatusNotFound, Code: "ResourceNotFound", Message: "Deleted vault '" + name + "' not found."}
}

func deletedProp(m map[string]any, key string) string {
	props, _ := m["properties"].(map[string]any)
	s, _ := props[key].(string)
	return s
}

func newVaultRecoverCmd(a *app) *cobra.Command {
	var f vaultFlags
	cmd := &cobra.Command{
		Use: "recover", Short: "Recover a soft-deleted Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.name == "" {
				return usageErrorf("the following arguments are required: --name/-n")
			}
			dv, err := a.deletedVault(cmd.Context(), f.name, f.location)
			if err != nil {
				return err
			}
			loc := f.location
			if loc == "" {
				loc = deletedProp(dv, "location")
			}
			path := ""
			if vid := deletedProp(dv, "vaultId"); vid != "" && f.rg == "" {
				r, err := parseResourceID(vid)
				if err != nil {
					return err
				}
				path = r.Raw
			} else {
				if path, err = a.resourcePath(f.rg, "Microsoft.KeyVault", "vaults", f.name); err != nil {
					return err
				}
			}
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			body := map[string]any{"location": loc, "properties": map[string]any{
				"tenantId": cfg.TenantID, "sku": map[string]any{"family": "A", "name": "standard"}, "createMode": "recover"}}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: path, apiVersion: apiKeyVault, body: body, noWait: f.noWait})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f.bindTarget(cmd, false)
	cmd.Flags().StringVarP(&f.location, "location", "l", "", "Location of the deleted vault (found when omitted).")
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	return cmd
}

func newVaultPurgeCmd(a *app) *cobra.Command {
	var f vaultFlags
	cmd := &cobra.Command{
		Use: "purge", Short: "Permanently delete a soft-deleted Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.name == "" {
				return usageErrorf("the following arguments are required: --name/-n")
			}
			loc := f.location
			if loc == "" {
				dv, err := a.deletedVault(cmd.Context(), f.name, "")
				if err != nil {
					return err
				}
				loc = deletedProp(dv, "location")
			}
			if err := checkName("--location/-l", loc); err != nil {
				return err
			}
			scope, err := a.scopePath("")
			if err != nil {
				return err
			}
			_, err = a.arm(cmd.Context(), armCall{method: http.MethodPost, apiVersion: apiKeyVault, noWait: f.noWait,
				path: scope + "/providers/Microsoft.KeyVault/locations/" + loc + "/deletedVaults/" + f.name + "/purge"})
			return err
		},
	}
	cmd.Flags().StringVarP(&f.name, "name", "n", "", "Name of the deleted Vault.")
	cmd.Flags().StringVarP(&f.location, "location", "l", "", "Location of the deleted vault (found when omitted).")
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	return cmd
}

func newVaultListDeletedCmd(a *app) *cobra.Command {
	var resourceType string
	cmd := &cobra.Command{
		Use: "list-deleted", Short: "Get information about the deleted Vaults in a subscription.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := oneOf("--resource-type", resourceType, "vault"); err != nil {
				return err
			}
			scope, err := a.scopePath("")
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), scope+"/providers/Microsoft.KeyVault/deletedVaults", apiKeyVault, nil)
			if err != nil {
				return err
			}
			return a.print(items)
		},
	}
	cmd.Flags().StringVar(&resourceType, "resource-type", "vault", "Only 'vault' is supported.")
	return cmd
}

func newVaultShowDeletedCmd(a *app) *cobra.Command {
	var name, location string
	cmd := &cobra.Command{
		Use: "show-deleted", Short: "Show details of a deleted Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageErrorf("the following arguments are required: --name/-n")
			}
			v, err := a.deletedVault(cmd.Context(), name, location)
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "Name of the deleted Vault.")
	cmd.Flags().StringVarP(&location, "location", "l", "", "Location of the deleted Vault.")
	return cmd
}
