package cli

import (
	"net/http"

	"github.com/spf13/cobra"
)

const identityType = "Microsoft.ManagedIdentity/userAssignedIdentities"

func newIdentityCmd(a *app) *cobra.Command {
	cmd := newGroup("identity", "Manage user-assigned managed identities.")
	var name, rg, location string
	var ids, tags []string
	target := func(c *cobra.Command, withIDs bool) {
		c.Flags().StringVarP(&name, "name", "n", "", "The name of the identity resource.")
		c.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of the resource group.")
		if withIDs {
			c.Flags().StringArrayVar(&ids, "ids", nil, "One or more resource IDs (space-delimited).")
		}
	}

	create := &cobra.Command{
		Use: "create", Short: "Create an identity.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" || rg == "" {
				return usageErrorf("the following arguments are required: --name/-n, --resource-group/-g")
			}
			p, err := a.resourcePath(rg, "Microsoft.ManagedIdentity", "userAssignedIdentities", name)
			if err != nil {
				return err
			}
			if location == "" {
				if location, err = a.groupLocation(cmd.Context(), rg); err != nil {
					return err
				}
			}
			body := map[string]any{"location": location}
			if cmd.Flags().Changed("tags") {
				t, err := parseTags(tags)
				if err != nil {
					return err
				}
				body["tags"] = t
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: p, apiVersion: apiMSI, body: body})
			if err != nil {
				return err
			}
			return a.print(flattenProps(v))
		},
	}
	target(create, false)
	create.Flags().StringVarP(&location, "location", "l", "", "Location (default: the resource group's).")
	create.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...].")

	show := &cobra.Command{
		Use: "show", Short: "Show an identity.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(ids, rg, name, identityType)
			if err != nil {
				return err
			}
			v, err := eachTarget(paths, func(p string) (any, error) { return a.armGet(cmd.Context(), p, apiMSI) })
			if err != nil {
				return err
			}
			return a.print(flattenProps(v))
		},
	}
	target(show, true)

	list := &cobra.Command{
		Use: "list", Short: "List identities.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			scope, err := a.scopePath(rg)
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), scope+"/providers/"+identityType, apiMSI, nil)
			if err != nil {
				return err
			}
			return a.print(flattenProps(items))
		},
	}
	list.Flags().StringVarP(&rg, "resource-group", "g", "", "Name of the resource group.")

	del := &cobra.Command{
		Use: "delete", Short: "Delete an identity.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			paths, err := a.targets(ids, rg, name, identityType)
			if err != nil {
				return err
			}
			_, err = eachTarget(paths, func(p string) (any, error) {
				return a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiMSI})
			})
			return err
		},
	}
	target(del, true)

	cmd.AddCommand(create, show, list, del)
	return cmd
}
