package cli

import (
	"net/http"
	"strings"

	"github.com/spf13/cobra"
)

// lockTarget holds the flags that locate a lock's scope.
type lockTarget struct {
	rg, resource, resourceType, namespace, parent string
}

func (t *lockTarget) bind(c *cobra.Command) {
	c.Flags().StringVarP(&t.rg, "resource-group", "g", "", "Name of the resource group.")
	c.Flags().StringVar(&t.resource, "resource", "", "Name or ID of the resource being locked. If an ID is given, other resource arguments should not be given.")
	c.Flags().StringVar(&t.resourceType, "resource-type", "", "The resource type, e.g. Microsoft.KeyVault/vaults (or vaults with --namespace).")
	c.Flags().StringVar(&t.namespace, "namespace", "", "Provider namespace (Ex: 'Microsoft.Provider').")
	c.Flags().StringVar(&t.parent, "parent", "", "The parent path (Ex: 'resA/myA/resB/myB').")
}

// scope is the id the lock applies to: a resource, a group or the subscription.
func (t *lockTarget) scope(a *app) (string, error) {
	if t.resource == "" {
		if t.resourceType != "" || t.namespace != "" || t.parent != "" {
			return "", usageErrorf("usage error: --resource-type, --namespace and --parent need --resource")
		}
		return a.scopePath(t.rg)
	}
	if strings.HasPrefix(t.resource, "/") {
		if t.rg != "" || t.resourceType != "" || t.namespace != "" || t.parent != "" {
			return "", usageErrorf("usage error: --resource as an ID cannot be combined with other resource arguments")
		}
		r, err := parseResourceID(t.resource)
		if err != nil {
			return "", err
		}
		return r.Raw, nil
	}
	if t.rg == "" || t.resourceType == "" {
		return "", usageErrorf("usage error: --resource NAME needs --resource-group and --resource-type")
	}
	ns, typ := t.namespace, t.resourceType
	if ns == "" {
		var ok bool
		if ns, typ, ok = strings.Cut(t.resourceType, "/"); !ok {
			return "", usageErrorf("argument --resource-type: expected Namespace/type, or use --namespace")
		}
	}
	for flag, v := range map[string]string{"--namespace": ns, "--resource-type": typ, "--resource": t.resource} {
		for _, seg := range strings.Split(v, "/") {
			if err := checkName(flag, seg); err != nil {
				return "", err
			}
		}
	}
	p, err := a.scopePath(t.rg)
	if err != nil {
		return "", err
	}
	p += "/providers/" + ns
	if t.parent != "" {
		for _, seg := range strings.Split(t.parent, "/") {
			if err := checkName("--parent", seg); err != nil {
				return "", err
			}
		}
		p += "/" + t.parent
	}
	return p + "/" + typ + "/" + t.resource, nil
}

func newLockCmd(a *app) *cobra.Command {
	cmd := newGroup("lock", "Manage management locks (CanNotDelete, ReadOnly).")

	var t lockTarget
	var name, lockType, notes string
	create := &cobra.Command{
		Use: "create", Short: "Create a lock on a subscription, resource group or resource.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || lockType == "" {
				return usageErrorf("the following arguments are required: --name/-n, --lock-type/-t")
			}
			if err := checkName("--name/-n", name); err != nil {
				return err
			}
			level, err := oneOf("--lock-type/-t", lockType, "CanNotDelete", "ReadOnly")
			if err != nil {
				return err
			}
			if len(notes) > 512 {
				return usageErrorf("argument --notes: at most 512 characters")
			}
			scope, err := t.scope(a)
			if err != nil {
				return err
			}
			props := map[string]any{"level": level}
			if notes != "" {
				props["notes"] = notes
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, apiVersion: apiLocks, body: map[string]any{"properties": props},
				path: scope + authzProviders + "/locks/" + name})
			if err != nil {
				return err
			}
			return a.print(flattenLock(v))
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "Name of the lock.")
	create.Flags().StringVarP(&lockType, "lock-type", "t", "", "The type of lock restriction: CanNotDelete, ReadOnly.")
	create.Flags().StringVar(&notes, "notes", "", "Notes about this lock.")
	t.bind(create)

	list := &cobra.Command{
		Use: "list", Short: "List lock information.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, err := t.scope(a)
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), scope+authzProviders+"/locks", apiLocks, nil)
			if err != nil {
				return err
			}
			for i := range items {
				items[i] = flattenLock(items[i])
			}
			return a.print(items)
		},
	}
	t.bind(list)

	var ids []string
	del := &cobra.Command{
		Use: "delete", Short: "Delete a lock.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var paths []string
			if len(ids) > 0 {
				if name != "" || t.rg != "" || t.resource != "" {
					return usageErrorf("usage error: --ids cannot be combined with --name or resource arguments")
				}
				for _, id := range ids {
					r, err := parseResourceID(id)
					if err != nil {
						return err
					}
					if !strings.EqualFold(r.Provider+"/"+strings.Join(r.Types, "/"), "Microsoft.Authorization/locks") {
						return usageErrorf("argument --ids: %q is not a lock id", id)
					}
					paths = append(paths, r.Raw)
				}
			} else {
				if err := checkName("--name/-n", name); err != nil {
					return err
				}
				scope, err := t.scope(a)
				if err != nil {
					return err
				}
				paths = []string{scope + authzProviders + "/locks/" + name}
			}
			for _, p := range paths {
				if _, err := a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiLocks}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	del.Flags().StringVarP(&name, "name", "n", "", "Name of the lock.")
	del.Flags().StringArrayVar(&ids, "ids", nil, "One or more lock IDs (space-delimited).")
	t.bind(del)

	cmd.AddCommand(create, list, del)
	return cmd
}

// flattenLock shows a lock as az does: level, notes and owners beside id,
// name and type, plus the resource group the lock's scope is in.
func flattenLock(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{"id": m["id"], "name": m["name"], "type": m["type"], "level": nil, "notes": nil, "owners": nil}
	if p, ok := m["properties"].(map[string]any); ok {
		for _, k := range []string{"level", "notes", "owners"} {
			if p[k] != nil {
				out[k] = p[k]
			}
		}
	}
	if id, ok := m["id"].(string); ok {
		if r, err := parseResourceID(id); err == nil && r.ResourceGroup != "" {
			out["resourceGroup"] = r.ResourceGroup
		}
	}
	return out
}
