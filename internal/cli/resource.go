package cli

import (
	"strings"

	"github.com/spf13/cobra"
)

func newResourceCmd(a *app) *cobra.Command {
	cmd := newGroup("resource", "Generic ARM resource commands.")
	var ids []string
	var apiVersion string
	show := &cobra.Command{
		Use: "show", Short: "Get the details of resources by ID.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(ids) == 0 {
				return usageErrorf("the following arguments are required: --ids")
			}
			if len(ids) > maxIDsPerCall {
				return usageErrorf("argument --ids: at most %d ids", maxIDsPerCall)
			}
			var paths, versions []string
			for _, id := range ids {
				r, err := parseResourceID(id)
				if err != nil {
					return err
				}
				ver := apiVersion
				if ver == "" {
					ver = apiVersionByType[strings.ToLower(r.FullType())]
				}
				if ver == "" {
					return usageErrorf("argument --api-version: required for resource type %s", r.FullType())
				}
				paths, versions = append(paths, r.Raw), append(versions, ver)
			}
			i := 0
			v, err := eachTarget(paths, func(p string) (any, error) {
				ver := versions[i]
				i++
				return a.armGet(cmd.Context(), p, ver)
			})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	show.Flags().StringArrayVar(&ids, "ids", nil, "One or more resource IDs (space-delimited).")
	show.Flags().StringVar(&apiVersion, "api-version", "", "The api version of the resource (default: the one keyhaven's CLI knows for the type).")
	cmd.AddCommand(show)
	return cmd
}
