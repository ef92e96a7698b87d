package cli

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// metadata is the subset of /metadata/endpoints the CLI uses; every field
// is optional.
type metadata struct {
	Authentication struct {
		LoginEndpoint string   `json:"loginEndpoint"`
		Audiences     []string `json:"audiences"`
	} `json:"authentication"`
	ResourceManager string `json:"resourceManager"`
	Suffixes        struct {
		KeyVaultDNS string `json:"keyVaultDns"`
	} `json:"suffixes"`
	MicrosoftGraphResourceID string `json:"microsoftGraphResourceId"`
	DefaultTenantID          string `json:"defaultTenantId"` // keyhaven extension
	VaultAudience            string `json:"vaultAudience"`   // keyhaven extension
}

// endpointsFrom derives the CLI's endpoints from the server's metadata,
// falling back to keyhaven's conventions for anything missing.
func endpointsFrom(server string, md *metadata) Endpoints {
	trim := func(s string) string { return strings.TrimRight(s, "/") }
	ep := Endpoints{LoginEndpoint: trim(md.Authentication.LoginEndpoint), ResourceManager: trim(md.ResourceManager)}
	if ep.LoginEndpoint == "" {
		ep.LoginEndpoint = server
	}
	if ep.ResourceManager == "" {
		ep.ResourceManager = server
	}
	ep.ARMAudience = ep.ResourceManager
	if auds := md.Authentication.Audiences; len(auds) > 0 {
		ep.ARMAudience = trim(auds[0])
		for _, au := range auds {
			if sameAudience(au, ep.ResourceManager) {
				ep.ARMAudience = trim(au)
			}
		}
	}
	ep.GraphEndpoint = server
	ep.GraphAudience = ep.ARMAudience
	if g := trim(md.MicrosoftGraphResourceID); g != "" {
		ep.GraphAudience = g
	}
	u, _ := url.Parse(server)
	dns := strings.TrimPrefix(strings.TrimSpace(md.Suffixes.KeyVaultDNS), ".")
	if dns == "" {
		dns = "vault.localhost"
		if u != nil && u.Port() != "" {
			dns += ":" + u.Port()
		}
	}
	if h, p, err := net.SplitHostPort(dns); err == nil {
		ep.VaultDomain, ep.VaultPort = strings.ToLower(h), p
	} else {
		ep.VaultDomain = strings.ToLower(dns)
	}
	if ep.VaultPort == "443" {
		ep.VaultPort = ""
	}
	ep.VaultAudience = "https://" + ep.VaultDomain
	if ep.VaultPort != "" {
		ep.VaultAudience += ":" + ep.VaultPort
	}
	if v := trim(md.VaultAudience); v != "" {
		ep.VaultAudience = v
	}
	return ep
}

func normalizeServer(s string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil || u.Host == "" {
		return "", usageErrorf("argument --server: invalid URL %q (expected https://host[:port])", s)
	}
	if u.Scheme != "https" {
		return "", usageErrorf("argument --server: keyhaven requires https, got %q", u.Scheme)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usageErrorf("argument --server: the URL must not carry credentials, a query or a fragment")
	}
	return "https://" + u.Host + strings.TrimRight(u.Path, "/"), nil
}

func newLoginCmd(a *app) *cobra.Command {
	var server, caFile, username, password, tenant, credFile string
	var sp bool
	var allowNoSubs triBool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to a keyhaven server.",
		Long: `Log in to a keyhaven server with a user name and password, or as a service principal.

The password is read from --password, the KEYHAVEN_PASSWORD environment variable, or
a prompt (no echo). The server URL and CA file are remembered for later commands.`,
		Example: `  keyhaven login --server https://localhost:8443 --ca-file ca.pem -u admin@keyhaven.local
  keyhaven login --credentials-file keyhaven-data/admin-credentials.json
  keyhaven login --service-principal -u APP_ID -p SECRET --tenant TENANT_ID`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			prev, err := a.loadConfig()
			if err != nil {
				prev = &Config{}
			}
			if credFile != "" {
				// The bootstrap administrator's file that keyhaven serve
				// writes on first start; flags given explicitly win.
				b, err := readFileLimited(credFile, 64<<10)
				if err != nil {
					return usageErrorf("argument --credentials-file: %v", err)
				}
				var c struct{ Server, CAFile, Username, Password, TenantID string }
				if err := json.Unmarshal(b, &c); err != nil {
					return usageErrorf("argument --credentials-file: not a keyhaven credentials file: %v", err)
				}
				for _, kv := range []struct {
					dst *string
					v   string
				}{{&server, c.Server}, {&caFile, c.CAFile},
					{&username, c.Username}, {&password, c.Password}, {&tenant, c.TenantID}} {
					if *kv.dst == "" {
						*kv.dst = kv.v
					}
				}
			}
			if server == "" {
				server = a.getenv("KEYHAVEN_SERVER")
			}
			if server == "" {
				server = prev.Server
			}
			if server == "" {
				return usageErrorf("the following arguments are required: --server")
			}
			srv, err := normalizeServer(server)
			if err != nil {
				return err
			}
			if username == "" {
				return usageErrorf("the following arguments are required: --username/-u (interactive browser login is not supported)")
			}
			caPEM, caPath := "", ""
			switch {
			case caFile != "":
				b, err := readFileLimited(caFile, 1<<20)
				if err != nil {
					return usageErrorf("argument --ca-file: %v", err)
				}
				caPEM, caPath = string(b), caFile
			case prev.Server == srv:
				caPEM, caPath = prev.CAPEM, prev.CAFile
			}
			if password == "" {
				password = a.getenv("KEYHAVEN_PASSWORD")
			}
			if password == "" {
				if password, err = a.readPassword("Password: "); err != nil {
					return err
				}
			}
			return a.login(cmd.Context(), loginParams{
				server: srv, caPEM: caPEM, caFile: caPath, username: username, password: password,
				tenant: tenant, sp: sp, allowNoSubs: allowNoSubs.set && allowNoSubs.val,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&server, "server", "", "Base URL of the keyhaven server, e.g. https://localhost:8443 (default: $KEYHAVEN_SERVER or the last server).")
	f.StringVar(&caFile, "ca-file", "", "PEM file of the CA that signed the server's certificate (default: system roots).")
	f.StringVarP(&username, "username", "u", "", "User name, or the application (client) id with --service-principal.")
	f.StringVarP(&password, "password", "p", "", "Password, or the client secret with --service-principal. Prefer KEYHAVEN_PASSWORD or the prompt.")
	f.BoolVar(&sp, "service-principal", false, "The credential is a service principal.")
	f.StringVar(&credFile, "credentials-file", "", "Log in with a credentials file, such as the admin-credentials.json keyhaven serve writes on first start.")
	f.StringVarP(&tenant, "tenant", "t", "", "The tenant (default: the server's default tenant).")
	f.Var(&allowNoSubs, "allow-no-subscriptions", "Allow a login without subscriptions (tenant level account).")
	f.Lookup("allow-no-subscriptions").NoOptDefVal = "true"
	return cmd
}

type loginParams struct {
	server, caPEM, caFile string
	username, password    string
	tenant                string
	sp, allowNoSubs       bool
}

func (a *app) login(ctx context.Context, p loginParams) error {
	hc, err := newHTTPClient(p.server, p.caPEM, "")
	if err != nil {
		return err
	}
	resp, err := a.sendWith(ctx, hc, request{method: http.MethodGet, url: p.server + "/metadata/endpoints?api-version=" + apiMetadata})
	if err != nil {
		return err
	}
	var md metadata
	if err := json.Unmarshal(resp.body, &md); err != nil {
		return &azerr.Error{Message: "the server's /metadata/endpoints answer is not valid JSON"}
	}
	ep := endpointsFrom(p.server, &md)
	tenant := p.tenant
	if tenant == "" {
		tenant = md.DefaultTenantID
	}
	if tenant == "" {
		tenant = "organizations"
	}
	if err := checkName("--tenant", tenant); err != nil {
		return err
	}
	if hc, err = newHTTPClient(p.server, p.caPEM, ep.VaultDomain); err != nil {
		return err
	}
	cfg := &Config{Server: p.server, CAFile: p.caFile, CAPEM: p.caPEM, Endpoint: ep, Username: p.username}
	var form url.Values
	if p.sp {
		cfg.LoginKind, cfg.ClientSecret = loginServicePrincipal, p.password
		form = url.Values{"grant_type": {"client_credentials"}, "client_id": {p.username},
			"client_secret": {p.password}, "scope": {scopeFor(ep.ARMAudience)}}
	} else {
		cfg.LoginKind = loginUser
		form = url.Values{"grant_type": {"password"}, "client_id": {azCLIClientID}, "username": {p.username},
			"password": {p.password}, "scope": {scopeFor(ep.ARMAudience) + " offline_access"}}
	}
	tr, err := a.postToken(ctx, hc, ep.LoginEndpoint, tenant, form)
	if err != nil {
		return err
	}
	cfg.RefreshToken = tr.RefreshToken
	cfg.TenantID = tenant
	if tid := claimString(tr.AccessToken, "tid"); tid != "" {
		cfg.TenantID = tid
	}
	cfg.ObjectID = claimString(tr.AccessToken, "oid")
	cfg.Tokens = map[string]CachedToken{ep.ARMAudience: {AccessToken: tr.AccessToken, ExpiresOn: tr.expiry(a.now().Unix())}}
	if !p.sp && cfg.RefreshToken == "" {
		a.warn("The server issued no refresh token; you will need to log in again when the access token expires.")
	}
	// Use the new login in memory until it is known to work.
	a.cfg, a.client = cfg, hc
	subs, err := a.fetchSubscriptions(ctx)
	if err != nil {
		return err
	}
	cfg.Subscriptions = subs
	if len(subs) == 0 {
		if !p.allowNoSubs {
			return &azerr.Error{Message: "No subscriptions found for " + p.username + ". Use --allow-no-subscriptions to log in to the tenant only."}
		}
		a.warn("No subscriptions found for %s; logged in to tenant %s only.", p.username, cfg.TenantID)
	} else {
		cfg.DefaultSubscription = subs[0].ID
		for _, s := range subs {
			if strings.EqualFold(s.State, "Enabled") {
				cfg.DefaultSubscription = s.ID
				break
			}
		}
	}
	if err := a.saveConfig(cfg); err != nil {
		return err
	}
	return a.print(accountEntries(cfg, p.allowNoSubs))
}

func (a *app) fetchSubscriptions(ctx context.Context) ([]Subscription, error) {
	items, err := a.armList(ctx, "/subscriptions", apiSubscriptions, nil)
	if err != nil {
		return nil, err
	}
	subs := make([]Subscription, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		s := Subscription{}
		s.ID, _ = m["subscriptionId"].(string)
		if s.ID == "" {
			id, _ := m["id"].(string)
			s.ID = id[strings.LastIndexByte(id, '/')+1:]
		}
		s.Name, _ = m["displayName"].(string)
		s.State, _ = m["state"].(string)
		s.TenantID, _ = m["tenantId"].(string)
		if s.ID != "" {
			subs = append(subs, s)
		}
	}
	return subs, nil
}

// accountEntry renders a subscription as az's profile entries do.
func accountEntry(cfg *Config, s Subscription) map[string]any {
	userType := "user"
	if cfg.LoginKind == loginServicePrincipal {
		userType = "servicePrincipal"
	}
	tenant := s.TenantID
	if tenant == "" {
		tenant = cfg.TenantID
	}
	return map[string]any{
		"cloudName":        "keyhaven",
		"environmentName":  "keyhaven",
		"homeTenantId":     tenant,
		"id":               s.ID,
		"isDefault":        strings.EqualFold(s.ID, cfg.DefaultSubscription),
		"managedByTenants": []any{},
		"name":             s.Name,
		"state":            s.State,
		"tenantId":         tenant,
		"user":             map[string]any{"name": cfg.Username, "type": userType},
	}
}

func accountEntries(cfg *Config, tenantLevel bool) []any {
	out := []any{}
	for _, s := range cfg.Subscriptions {
		out = append(out, accountEntry(cfg, s))
	}
	if len(out) == 0 && tenantLevel {
		e := accountEntry(cfg, Subscription{ID: cfg.TenantID, Name: "N/A(tenant level account)", State: "Enabled"})
		e["isDefault"] = true
		out = append(out, e)
	}
	return out
}

func newLogoutCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Log out: forget the credentials and cached tokens (the server URL and CA are kept).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig()
			if err != nil {
				return err
			}
			if cfg.LoginKind == "" {
				return &azerr.Error{Message: "There are no active accounts."}
			}
			return a.saveConfig(&Config{Server: cfg.Server, CAFile: cfg.CAFile, CAPEM: cfg.CAPEM, Endpoint: cfg.Endpoint})
		},
	}
}
