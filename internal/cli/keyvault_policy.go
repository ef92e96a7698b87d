package cli

import (
	"context"
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// Permission names Key Vault accepts in access policies.
var (
	secretPerms  = []string{"all", "get", "list", "set", "delete", "backup", "restore", "recover", "purge"}
	keyPerms     = []string{"all", "encrypt", "decrypt", "wrapkey", "unwrapkey", "sign", "verify", "get", "list", "create", "update", "import", "delete", "backup", "restore", "recover", "purge", "release", "rotate", "getrotationpolicy", "setrotationpolicy"}
	certPerms    = []string{"all", "get", "list", "delete", "create", "import", "update", "managecontacts", "getissuers", "listissuers", "setissuers", "deleteissuers", "manageissuers", "recover", "purge", "backup", "restore"}
	storagePerms = []string{"all", "get", "list", "delete", "set", "update", "regeneratekey", "recover", "purge", "backup", "restore", "setsas", "listsas", "getsas", "deletesas"}
)

func checkPerms(flag string, given, valid []string) ([]string, error) {
	if len(given) > len(valid) {
		return nil, usageErrorf("argument %s: too many permissions", flag)
	}
	out := make([]string, 0, len(given))
	for _, g := range given {
		ok := false
		for _, v := range valid {
			if strings.EqualFold(g, v) {
				out, ok = append(out, v), true
				break
			}
		}
		if !ok {
			return nil, usageErrorf("argument %s: invalid choice: %q (choose from %s)", flag, g, strings.Join(valid, ", "))
		}
	}
	return out, nil
}

// policyPrincipal holds --object-id / --upn / --spn.
type policyPrincipal struct{ objectID, upn, spn string }

func (p *policyPrincipal) bind(c *cobra.Command) {
	c.Flags().StringVar(&p.objectID, "object-id", "", "A GUID that identifies the principal that will receive permissions.")
	c.Flags().StringVar(&p.upn, "upn", "", "Name of a user principal that will receive permissions.")
	c.Flags().StringVar(&p.spn, "spn", "", "Name (or appId) of a service principal that will receive permissions.")
}

func (p *policyPrincipal) resolve(ctx context.Context, a *app) (string, error) {
	n := 0
	for _, s := range []string{p.objectID, p.upn, p.spn} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return "", usageErrorf("usage error: specify exactly one of --object-id, --spn, --upn")
	}
	switch {
	case p.objectID != "":
		if !isGUID(p.objectID) {
			return "", usageErrorf("argument --object-id: expected a GUID")
		}
		return p.objectID, nil
	case p.upn != "":
		u, err := a.user(ctx, p.upn)
		if err != nil {
			return "", err
		}
		id, _ := u["id"].(string)
		return id, nil
	}
	sp, err := a.servicePrincipal(ctx, p.spn)
	if err != nil {
		return "", err
	}
	id, _ := sp["id"].(string)
	return id, nil
}

// changePolicy PUTs .../accessPolicies/{add|remove} and prints the vault.
func (a *app) changePolicy(cmd *cobra.Command, f *vaultFlags, op string, policy func(tenant string) (map[string]any, error)) error {
	ctx := cmd.Context()
	paths, err := a.vaultPaths(ctx, f)
	if err != nil {
		return err
	}
	cfg, err := a.loggedIn()
	if err != nil {
		return err
	}
	v, err := eachTarget(paths, func(p string) (any, error) {
		vault, err := a.armGet(ctx, p, apiKeyVault)
		if err != nil {
			return nil, err
		}
		vm, _ := vault.(map[string]any)
		tenant := deletedProp(vm, "tenantId")
		if tenant == "" {
			tenant = cfg.TenantID
		}
		pol, err := policy(tenant)
		if err != nil {
			return nil, err
		}
		body := map[string]any{"properties": map[string]any{"accessPolicies": []any{pol}}}
		if _, err := a.arm(ctx, armCall{method: http.MethodPut, path: p + "/accessPolicies/" + op, apiVersion: apiKeyVault, body: body}); err != nil {
			return nil, err
		}
		if f.noWait {
			return nil, nil
		}
		return a.armGet(ctx, p, apiKeyVault)
	})
	if err != nil {
		return err
	}
	return a.print(v)
}

func newVaultSetPolicyCmd(a *app) *cobra.Command {
	var f vaultFlags
	var who policyPrincipal
	var secrets, keys, certs, storage []string
	cmd := &cobra.Command{
		Use:   "set-policy",
		Short: "Update security policy settings for a Key Vault (adds the permissions given).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := checkPerms("--secret-permissions", secrets, secretPerms)
			if err != nil {
				return err
			}
			k, err := checkPerms("--key-permissions", keys, keyPerms)
			if err != nil {
				return err
			}
			c, err := checkPerms("--certificate-permissions", certs, certPerms)
			if err != nil {
				return err
			}
			st, err := checkPerms("--storage-permissions", storage, storagePerms)
			if err != nil {
				return err
			}
			if len(s)+len(k)+len(c)+len(st) == 0 {
				return usageErrorf("usage error: specify at least one of --secret-permissions, --key-permissions, --certificate-permissions, --storage-permissions")
			}
			oid, err := who.resolve(cmd.Context(), a)
			if err != nil {
				return err
			}
			return a.changePolicy(cmd, &f, "add", func(tenant string) (map[string]any, error) {
				return accessPolicy(tenant, oid, k, s, c, st), nil
			})
		},
	}
	f.bindTarget(cmd, false)
	who.bind(cmd)
	cmd.Flags().StringArrayVar(&secrets, "secret-permissions", nil, "Space-separated secret permissions: "+strings.Join(secretPerms, ", "))
	cmd.Flags().StringArrayVar(&keys, "key-permissions", nil, "Space-separated key permissions.")
	cmd.Flags().StringArrayVar(&certs, "certificate-permissions", nil, "Space-separated certificate permissions.")
	cmd.Flags().StringArrayVar(&storage, "storage-permissions", nil, "Space-separated storage permissions.")
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the operation to finish.")
	return cmd
}

func newVaultDeletePolicyCmd(a *app) *cobra.Command {
	var f vaultFlags
	var who policyPrincipal
	cmd := &cobra.Command{
		Use:   "delete-policy",
		Short: "Delete security policy settings for a Key Vault.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			oid, err := who.resolve(cmd.Context(), a)
			if err != nil {
				return err
			}
			return a.changePolicy(cmd, &f, "remove", func(tenant string) (map[string]any, error) {
				return accessPolicy(tenant, oid, nil, nil, nil, nil), nil
			})
		},
	}
	f.bindTarget(cmd, false)
	who.bind(cmd)
	cmd.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the operation to finish.")
	return cmd
}

func newVaultNetworkRuleCmd(a *app) *cobra.Command {
	cmd := newGroup("network-rule", "Manage vault network ACLs.")
	var f vaultFlags
	var ips []string

	normIP := func(s string) string { return strings.TrimSuffix(strings.TrimSpace(s), "/32") }
	edit := func(add bool) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, _ []string) error {
			if len(ips) == 0 {
				return usageErrorf("the following arguments are required: --ip-address")
			}
			for _, ip := range ips {
				if ip == "" || len(ip) > 64 || strings.ContainsAny(ip, " \t\"") {
					return usageErrorf("argument --ip-address: invalid value %q", ip)
				}
			}
			v, err := a.updateVault(cmd.Context(), &f, func(_, props map[string]any) error {
				acls, _ := props["networkAcls"].(map[string]any)
				if acls == nil {
					acls = map[string]any{"defaultAction": "Allow", "bypass": "AzureServices"}
				}
				rules, _ := acls["ipRules"].([]any)
				var out []any
				seen := map[string]bool{}
				for _, r := range rules {
					m, _ := r.(map[string]any)
					val, _ := m["value"].(string)
					remove := false
					for _, ip := range ips {
						if normIP(ip) == normIP(val) {
							remove = !add
							seen[normIP(ip)] = true
						}
					}
					if !remove {
						out = append(out, r)
					}
				}
				if add {
					for _, ip := range ips {
						if !seen[normIP(ip)] {
							out = append(out, map[string]any{"value": ip})
							seen[normIP(ip)] = true
						}
					}
				}
				if out == nil {
					out = []any{}
				}
				acls["ipRules"] = out
				props["networkAcls"] = acls
				return nil
			})
			if err != nil {
				return err
			}
			return a.print(v)
		}
	}
	add := &cobra.Command{Use: "add", Short: "Add a network rule to the network ACLs for a Key Vault.", Args: cobra.NoArgs, RunE: edit(true)}
	remove := &cobra.Command{Use: "remove", Short: "Remove a network rule from the network ACLs for a Key Vault.", Args: cobra.NoArgs, RunE: edit(false)}
	for _, c := range []*cobra.Command{add, remove} {
		f.bindTarget(c, false)
		c.Flags().StringArrayVar(&ips, "ip-address", nil, "IPv4 address or CIDR range.")
		c.Flags().BoolVar(&f.noWait, "no-wait", false, "Do not wait for the operation to finish.")
	}
	list := &cobra.Command{
		Use: "list", Short: "List the network rules from the network ACLs for a Key Vault.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.vaultPaths(cmd.Context(), &f)
			if err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) {
				vault, err := a.armGet(cmd.Context(), p, apiKeyVault)
				if err != nil {
					return nil, err
				}
				m, _ := vault.(map[string]any)
				props, _ := m["properties"].(map[string]any)
				acls, _ := props["networkAcls"].(map[string]any)
				out := map[string]any{"ipRules": []any{}, "virtualNetworkRules": []any{}}
				if r, ok := acls["ipRules"].([]any); ok {
					out["ipRules"] = r
				}
				if r, ok := acls["virtualNetworkRules"].([]any); ok {
					out["virtualNetworkRules"] = r
				}
				return out, nil
			})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f.bindTarget(list, false)
	cmd.AddCommand(add, remove, list)
	return cmd
}
