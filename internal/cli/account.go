package cli

import (
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

func newAccountCmd(a *app) *cobra.Command {
	cmd := newGroup("account", "Manage the signed-in account and its subscriptions.")
	cmd.AddCommand(newAccountShowCmd(a), newAccountListCmd(a), newAccountSetCmd(a),
		newAccountTokenCmd(a), newAccountSubscriptionCmd(a))
	return cmd
}

func newAccountShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show",
		Short: "Get the details of a subscription (default: the current one).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			if len(cfg.Subscriptions) == 0 && a.subscription == "" {
				return a.print(accountEntries(cfg, true)[0])
			}
			id, err := a.subscriptionID()
			if err != nil {
				return err
			}
			s := cfg.findSubscription(id)
			if s == nil {
				s = &Subscription{ID: id, TenantID: cfg.TenantID}
			}
			return a.print(accountEntry(cfg, *s))
		},
	}
}

func newAccountListCmd(a *app) *cobra.Command {
	var refresh, all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Get the subscriptions of the signed-in account.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			if refresh {
				subs, err := a.fetchSubscriptions(cmd.Context())
				if err != nil {
					return err
				}
				cfg.Subscriptions = subs
				if cfg.findSubscription(cfg.DefaultSubscription) == nil && len(subs) > 0 {
					cfg.DefaultSubscription = subs[0].ID
				}
				if err := a.saveConfig(cfg); err != nil {
					return err
				}
			}
			out := []any{}
			for _, e := range accountEntries(cfg, true) {
				m := e.(map[string]any)
				if all || m["state"] == "" || strings.EqualFold(m["state"].(string), "Enabled") {
					out = append(out, e)
				}
			}
			return a.print(out)
		},
	}
	cmd.Flags().BoolVar(&refresh, "refresh", false, "Retrieve up-to-date subscriptions from the server.")
	cmd.Flags().BoolVar(&all, "all", false, "List all subscriptions, not just the enabled ones.")
	return cmd
}

func newAccountSetCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Set a subscription to be the current active subscription.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if a.subscription == "" {
				return usageErrorf("the following arguments are required: --subscription/-s")
			}
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			s := cfg.findSubscription(a.subscription)
			if s == nil {
				// Maybe created since login: refresh once.
				subs, err := a.fetchSubscriptions(cmd.Context())
				if err != nil {
					return err
				}
				cfg.Subscriptions = subs
				if s = cfg.findSubscription(a.subscription); s == nil {
					return &azerr.Error{Message: "The subscription of '" + a.subscription + "' doesn't exist in cloud 'keyhaven'."}
				}
			}
			cfg.DefaultSubscription = s.ID
			return a.saveConfig(cfg)
		},
	}
	cmd.Flags().StringVarP(&a.subscription, "subscription", "s", "", "Name or ID of subscription.")
	return cmd
}

func newAccountTokenCmd(a *app) *cobra.Command {
	var resource, scope, tenant string
	cmd := &cobra.Command{
		Use:   "get-access-token",
		Short: "Get a token for utilities to access keyhaven.",
		Long: `Get a token for utilities to access keyhaven. The default audience is the ARM
control plane; use --resource https://vault.localhost:8443 (the vault audience) for the Key
Vault data plane. The token is printed: treat the output as a secret.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			if resource != "" && scope != "" {
				return usageErrorf("usage error: --resource and --scope are mutually exclusive")
			}
			aud := cfg.Endpoint.ARMAudience
			switch {
			case resource != "":
				aud = resource
			case scope != "":
				if strings.ContainsAny(scope, " ") {
					return usageErrorf("argument --scope: only one scope is supported")
				}
				aud = strings.TrimSuffix(scope, "/.default")
			}
			aud = strings.TrimRight(aud, "/")
			var tok string
			var exp int64
			if tenant != "" && !strings.EqualFold(tenant, cfg.TenantID) {
				if err := checkName("--tenant", tenant); err != nil {
					return err
				}
				tr, err := a.redeem(cmd.Context(), cfg, tenant, aud)
				if err != nil {
					return err
				}
				tok, exp = tr.AccessToken, tr.expiry(a.now().Unix())
			} else {
				if tok, err = a.token(cmd.Context(), aud); err != nil {
					return err
				}
				exp = a.cfg.Tokens[aud].ExpiresOn
				tenant = cfg.TenantID
			}
			out := map[string]any{
				"accessToken": tok,
				"expiresOn":   time.Unix(exp, 0).Local().Format("2006-01-02 15:04:05.000000"),
				"expires_on":  exp,
				"tenant":      tenant,
				"tokenType":   "Bearer",
			}
			if sub, err := a.subscriptionID(); err == nil {
				out["subscription"] = sub
			}
			return a.print(out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&resource, "resource", "", "Audience of the token (default: the ARM audience).")
	f.StringVar(&scope, "scope", "", "Scope of the token, e.g. https://vault.localhost:8443/.default.")
	f.StringVarP(&tenant, "tenant", "t", "", "Tenant to get the token for (default: the login tenant).")
	return cmd
}

func newAccountSubscriptionCmd(a *app) *cobra.Command {
	cmd := newGroup("subscription", "Manage subscriptions (keyhaven extension).")
	var name, id string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a subscription (keyhaven extension).",
		Long: `Create a subscription. This is a keyhaven extension of the ARM API:
PUT /subscriptions/{id}?api-version=2022-12-01 with body {"displayName": NAME}. Azure itself
creates subscriptions through billing aliases; keyhaven keeps it simple. The new subscription
is added to the local account list; make it current with 'keyhaven account set -s NAME'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageErrorf("the following arguments are required: --name/-n")
			}
			if len(name) > 64 {
				return usageErrorf("argument --name/-n: at most 64 characters")
			}
			if id == "" {
				id = newGUID()
			} else if !isGUID(id) {
				return usageErrorf("argument --subscription-id: expected a GUID")
			}
			cfg, err := a.loggedIn()
			if err != nil {
				return err
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, path: "/subscriptions/" + strings.ToLower(id),
				apiVersion: apiSubscriptions, body: map[string]any{"displayName": name}})
			if err != nil {
				return err
			}
			if cfg.findSubscription(id) == nil {
				cfg.Subscriptions = append(cfg.Subscriptions, Subscription{ID: strings.ToLower(id), Name: name, State: "Enabled", TenantID: cfg.TenantID})
				if cfg.DefaultSubscription == "" {
					cfg.DefaultSubscription = strings.ToLower(id)
				}
				if err := a.saveConfig(cfg); err != nil {
					return err
				}
			}
			return a.print(v)
		},
	}
	create.Flags().StringVarP(&name, "name", "n", "", "Display name of the subscription.")
	create.Flags().StringVar(&id, "subscription-id", "", "Subscription id (a GUID; default: a new one).")
	cmd.AddCommand(create)
	return cmd
}
