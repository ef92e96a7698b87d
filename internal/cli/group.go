package cli

import (
	"net/http"

	"github.com/spf13/cobra"
)

func newGroupCmd(a *app) *cobra.Command {
	cmd := newGroup("group", "Manage resource groups.")
	var name, location string
	var tags []string
	var noWait, yes bool

	nameFlag := func(c *cobra.Command) {
		c.Flags().StringVarP(&name, "name", "n", "", "Name of the resource group.")
		c.Flags().StringVarP(&name, "resource-group", "g", "", "Name of the resource group.")
	}
	groupPath := func() (string, error) {
		if name == "" {
			return "", usageErrorf("the following arguments are required: --name/-n/--resource-group/-g")
		}
		return a.scopePath(name)
	}

	create := &cobra.Command{
		Use: "create", Short: "Create a new resource group.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if location == "" {
				return usageErrorf("the following arguments are required: --location/-l")
			}
			p, err := groupPath()
			if err != nil {
				return err
			}
			t, err := parseTags(tags)
			if err != nil {
				return err
			}
			body := map[string]any{"location": location}
			if cmd.Flags().Changed("tags") {
				body["tags"] = t
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: p, apiVersion: apiResources, body: body})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	nameFlag(create)
	create.Flags().StringVarP(&location, "location", "l", "", "Location, e.g. local.")
	create.Flags().StringArrayVar(&tags, "tags", nil, "Space-separated tags: key[=value] [key[=value] ...]. Use \"\" to clear existing tags.")

	show := &cobra.Command{
		Use: "show", Short: "Gets a resource group.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := groupPath()
			if err != nil {
				return err
			}
			v, err := a.armGet(cmd.Context(), p, apiResources)
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	nameFlag(show)

	var tagFilter string
	list := &cobra.Command{
		Use: "list", Short: "List resource groups.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := a.scopePath("")
			if err != nil {
				return err
			}
			items, err := a.armList(cmd.Context(), p+"/resourcegroups", apiResources, nil)
			if err != nil {
				return err
			}
			if tagFilter != "" {
				items = filterByTag(items, tagFilter)
			}
			return a.print(items)
		},
	}
	list.Flags().StringVar(&tagFilter, "tag", "", "A single tag in 'key[=value]' format to filter by.")

	del := &cobra.Command{
		Use: "delete", Short: "Delete a resource group.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := groupPath()
			if err != nil {
				return err
			}
			_, err = a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: p, apiVersion: apiResources, noWait: noWait})
			return err
		},
	}
	nameFlag(del)
	del.Flags().BoolVar(&noWait, "no-wait", false, "Do not wait for the long-running operation to finish.")
	del.Flags().BoolVarP(&yes, "yes", "y", false, "Do not prompt for confirmation.")

	exists := &cobra.Command{
		Use: "exists", Short: "Check if a resource group exists.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := groupPath()
			if err != nil {
				return err
			}
			_, err = a.arm(cmd.Context(), armCall{method: http.MethodHead, path: p, apiVersion: apiResources})
			if isNotFound(err) {
				return a.print(false)
			}
			if err != nil {
				return err
			}
			return a.print(true)
		},
	}
	nameFlag(exists)

	cmd.AddCommand(create, show, list, del, exists)
	return cmd
}

// filterByTag keeps the resources carrying tag key[=value].
func filterByTag(items []any, filter string) []any {
	k, v, hasValue := cutTag(filter)
	out := []any{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		tags, _ := m["tags"].(map[string]any)
		tv, ok := tags[k]
		if ok && (!hasValue || tv == v) {
			out = append(out, it)
		}
	}
	return out
}

func cutTag(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
