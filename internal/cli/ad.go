package cli

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

func newADCmd(a *app) *cobra.Command {
	cmd := newGroup("ad", "Manage directory users and service principals (Graph-like /v1.0 API).")
	user := newGroup("user", "Manage users.")
	user.AddCommand(newADUserCreateCmd(a), newADUserShowCmd(a), newADUserListCmd(a), newADUserDeleteCmd(a))
	sp := newGroup("sp", "Manage service principals.")
	sp.AddCommand(newADSPCreateForRBACCmd(a), newADSPShowCmd(a), newADSPListCmd(a), newADSPDeleteCmd(a))
	cmd.AddCommand(user, sp)
	return cmd
}

func newADUserCreateCmd(a *app) *cobra.Command {
	var displayName, upn, password, nickname string
	var forceChange bool
	cmd := &cobra.Command{
		Use: "create", Short: "Create a user.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if displayName == "" || upn == "" {
				return usageErrorf("the following arguments are required: --display-name, --user-principal-name")
			}
			if len(displayName) > 256 || len(upn) > 113 || !strings.Contains(upn, "@") {
				return usageErrorf("argument --user-principal-name: expected user@domain")
			}
			if password == "" {
				var err error
				if password, err = a.readPassword("Password for the new user: "); err != nil {
					return err
				}
			}
			if nickname == "" {
				nickname = upn[:strings.IndexByte(upn, '@')]
			}
			body := map[string]any{
				"accountEnabled": true, "displayName": displayName, "mailNickname": nickname, "userPrincipalName": upn,
				"passwordProfile": map[string]any{"password": password, "forceChangePasswordNextSignIn": forceChange},
			}
			v, err := a.graph(cmd.Context(), http.MethodPost, "/users", body)
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&displayName, "display-name", "", "Object's display name or its prefix.")
	f.StringVar(&upn, "user-principal-name", "", "The user principal name (someuser@contoso.com).")
	f.StringVar(&password, "password", "", "The password for the user (prompted when omitted).")
	f.StringVar(&nickname, "mail-nickname", "", "Mail alias (default: the UPN's user part).")
	f.BoolVar(&forceChange, "force-change-password-next-sign-in", false, "The user must change the password on next login.")
	return cmd
}

// adIDCmd is an `ad` verb on one object named by a required --id.
func adIDCmd(use, short, idHelp string, run func(cmd *cobra.Command, id string) error) *cobra.Command {
	var id string
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageErrorf("the following arguments are required: --id")
			}
			return run(cmd, id)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", idHelp)
	return cmd
}

const (
	userIDHelp = "The user's object id or principal name."
	spIDHelp   = "Service principal name, appId or object id."
)

func newADUserShowCmd(a *app) *cobra.Command {
	return adIDCmd("show", "Get the details of a user.", userIDHelp, func(cmd *cobra.Command, id string) error {
		u, err := a.user(cmd.Context(), id)
		if err != nil {
			return err
		}
		return a.print(u)
	})
}

// filterObjects keeps directory objects whose field equals (or, for display
// names, starts with) the wanted value.
func filterObjects(items []any, field, want string, prefix bool) []any {
	if want == "" {
		return items
	}
	out := []any{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		v, _ := m[field].(string)
		if strings.EqualFold(v, want) || (prefix && strings.HasPrefix(strings.ToLower(v), strings.ToLower(want))) {
			out = append(out, it)
		}
	}
	return out
}

func newADUserListCmd(a *app) *cobra.Command {
	var upn, displayName string
	cmd := &cobra.Command{
		Use: "list", Short: "List users.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, err := a.graphList(cmd.Context(), "/users")
			if err != nil {
				return err
			}
			items = filterObjects(items, "userPrincipalName", upn, false)
			items = filterObjects(items, "displayName", displayName, true)
			return a.print(items)
		},
	}
	cmd.Flags().StringVar(&upn, "upn", "", "User principal name.")
	cmd.Flags().StringVar(&displayName, "display-name", "", "Object's display name or its prefix.")
	return cmd
}

func newADUserDeleteCmd(a *app) *cobra.Command {
	return adIDCmd("delete", "Delete a user.", userIDHelp, func(cmd *cobra.Command, id string) error {
		k, err := graphKey(id)
		if err != nil {
			return err
		}
		_, err = a.graph(cmd.Context(), http.MethodDelete, "/users/"+k, nil)
		return err
	})
}

func newADSPCreateForRBACCmd(a *app) *cobra.Command {
	var name, role string
	var scopes []string
	cmd := &cobra.Command{
		Use:   "create-for-rbac",
		Short: "Create an application and its service principal, with a client secret and optional role assignments.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if role != "" && len(scopes) == 0 {
				return usageErrorf("usage error: --scopes is required when --role is given")
			}
			if len(scopes) > 0 && role == "" {
				return usageErrorf("usage error: --role is required when --scopes is given")
			}
			if name == "" {
				name = "azure-cli-" + a.now().UTC().Format("2006-01-02-15-04-05")
			}
			if len(name) > 120 {
				return usageErrorf("argument --name/-n: at most 120 characters")
			}
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			out, err := a.createForRBAC(cmd.Context(), name, role, scopes)
			if err != nil {
				return err
			}
			out["tenant"] = cfg.TenantID
			a.warn("The output includes credentials that you must protect. Be sure that you do not include these credentials in your code or check the credentials into your source control.")
			return a.print(out)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "Display name of the service principal (an existing application of that name is reused).")
	cmd.Flags().StringVar(&role, "role", "", "Role of the service principal.")
	cmd.Flags().StringArrayVar(&scopes, "scopes", nil, "Space-separated list of scopes the role assignment applies to.")
	return cmd
}

func (a *app) createForRBAC(ctx context.Context, name, role string, scopes []string) (map[string]any, error) {
	apps, err := a.graphList(ctx, "/applications")
	if err != nil {
		return nil, err
	}
	var app map[string]any
	if found := filterObjects(apps, "displayName", name, false); len(found) > 0 {
		app, _ = found[0].(map[string]any)
		a.warn("Found an existing application instance: (id) %s. We will patch it.", strField(app, "appId"))
	} else {
		v, err := a.graph(ctx, http.MethodPost, "/applications", map[string]any{"displayName": name})
		if err != nil {
			return nil, err
		}
		app, _ = v.(map[string]any)
	}
	appObjID, appID := strField(app, "id"), strField(app, "appId")
	if appObjID == "" || appID == "" {
		return nil, &azerr.Error{Message: "the server returned an application without id or appId"}
	}
	sp, err := a.servicePrincipal(ctx, appID)
	if isNotFound(err) {
		var v any
		v, err = a.graph(ctx, http.MethodPost, "/servicePrincipals", map[string]any{"appId": appID})
		sp, _ = v.(map[string]any)
	}
	if err != nil {
		return nil, err
	}
	k, err := graphKey(appObjID)
	if err != nil {
		return nil, err
	}
	v, err := a.graph(ctx, http.MethodPost, "/applications/"+k+"/addPassword",
		map[string]any{"passwordCredential": map[string]any{"displayName": "rbac"}})
	if err != nil {
		return nil, err
	}
	cred, _ := v.(map[string]any)
	secret := strField(cred, "secretText")
	if secret == "" {
		return nil, &azerr.Error{Message: "the server returned no client secret"}
	}
	if role != "" {
		spID := strField(sp, "id")
		for _, s := range scopes {
			sc, err := a.roleScope(s, "")
			if err != nil {
				return nil, err
			}
			defID, err := a.roleDefinitionID(ctx, role, sc)
			if err != nil {
				return nil, err
			}
			body := map[string]any{"properties": map[string]any{"roleDefinitionId": defID, "principalId": spID, "principalType": "ServicePrincipal"}}
			if _, err := a.arm(ctx, armCall{method: http.MethodPut, apiVersion: apiAuthorization, body: body,
				path: underScope(sc, authzProviders+"/roleAssignments/"+newGUID())}); err != nil {
				return nil, err
			}
		}
	}
	return map[string]any{"appId": appID, "displayName": name, "password": secret}, nil
}

func newADSPShowCmd(a *app) *cobra.Command {
	return adIDCmd("show", "Get the details of a service principal.", spIDHelp, func(cmd *cobra.Command, id string) error {
		sp, err := a.servicePrincipal(cmd.Context(), id)
		if err != nil {
			return err
		}
		return a.print(sp)
	})
}

func newADSPListCmd(a *app) *cobra.Command {
	var displayName, spn string
	cmd := &cobra.Command{
		Use: "list", Short: "List service principals.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, err := a.graphList(cmd.Context(), "/servicePrincipals")
			if err != nil {
				return err
			}
			items = filterObjects(items, "displayName", displayName, true)
			if spn != "" {
				var keep []any
				for _, it := range items {
					m, _ := it.(map[string]any)
					for _, n := range toStrings(m["servicePrincipalNames"]) {
						if strings.EqualFold(n, spn) {
							keep = append(keep, it)
							break
						}
					}
				}
				items = orEmptyAny(keep)
			}
			return a.print(items)
		},
	}
	cmd.Flags().StringVar(&displayName, "display-name", "", "Object's display name or its prefix.")
	cmd.Flags().StringVar(&spn, "spn", "", "Service principal name.")
	return cmd
}

func orEmptyAny(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func newADSPDeleteCmd(a *app) *cobra.Command {
	return adIDCmd("delete", "Delete a service principal.", spIDHelp, func(cmd *cobra.Command, id string) error {
		sp, err := a.servicePrincipal(cmd.Context(), id)
		if err != nil {
			return err
		}
		k, err := graphKey(strField(sp, "id"))
		if err != nil {
			return err
		}
		_, err = a.graph(cmd.Context(), http.MethodDelete, "/servicePrincipals/"+k, nil)
		var ae *azerr.Error
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusMethodNotAllowed) {
			// keyhaven ties a service principal to its application; a
			// server without the service-principal delete route removes both.
			appID, err := graphKey(strField(sp, "appId"))
			if err != nil {
				return err
			}
			a.warn("The server cannot delete a service principal alone; deleting its application %s.", strField(sp, "appId"))
			_, err = a.graph(cmd.Context(), http.MethodDelete, "/applications/"+appID, nil)
			return err
		}
		return err
	})
}
