package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

// azCLIClientID is the Azure CLI's public client id; keyhaven's token
// endpoint knows it as the first-party public client for password and
// refresh-token grants.
const azCLIClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	ExpiresOn    json.RawMessage `json:"expires_on"`
	RefreshToken string          `json:"refresh_token"`
}

// expiry returns the token's expiry in unix seconds, from expires_on,
// expires_in or the JWT's exp claim, whichever the server gave.
func (t *tokenResponse) expiry(now int64) int64 {
	if n, ok := jsonInt(t.ExpiresOn); ok {
		return n
	}
	if n, ok := jsonInt(t.ExpiresIn); ok {
		return now + n
	}
	if exp, ok := jwtClaims(t.AccessToken)["exp"].(float64); ok {
		return int64(exp)
	}
	return now + 300
}

// jsonInt reads a number that may arrive as a JSON number or string.
func jsonInt(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// jwtClaims reads a JWT's payload without verifying it: the CLI only wants
// informational claims (tid, oid, exp); the server verifies every token.
func jwtClaims(tok string) map[string]any {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || len(parts[1]) > 64<<10 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

func claimString(tok, name string) string {
	s, _ := jwtClaims(tok)[name].(string)
	return s
}

func scopeFor(aud string) string { return strings.TrimRight(aud, "/") + "/.default" }

// postToken redeems a grant at {loginEndpoint}/{tenant}/oauth2/v2.0/token.
func (a *app) postToken(ctx context.Context, hc *http.Client, loginEndpoint, tenant string, form url.Values) (*tokenResponse, error) {
	u := strings.TrimRight(loginEndpoint, "/") + "/" + url.PathEscape(tenant) + "/oauth2/v2.0/token"
	resp, err := a.sendWith(ctx, hc, request{method: http.MethodPost, url: u, form: form})
	if err != nil {
		return nil, err
	}
	var tr tokenResponse
	if err := json.Unmarshal(resp.body, &tr); err != nil || tr.AccessToken == "" {
		return nil, &azerr.Error{Message: "the token endpoint returned no access token"}
	}
	return &tr, nil
}

// grantForm is the token request that renews the signed-in principal's
// access to aud: a refresh-token grant for users, client credentials for
// service principals.
func grantForm(cfg *Config, aud string) (url.Values, error) {
	switch cfg.LoginKind {
	case loginUser:
		if cfg.RefreshToken == "" {
			return nil, errNotLoggedIn
		}
		return url.Values{
			"grant_type":    {"refresh_token"},
			"client_id":     {azCLIClientID},
			"refresh_token": {cfg.RefreshToken},
			"scope":         {scopeFor(aud) + " offline_access"},
		}, nil
	case loginServicePrincipal:
		return url.Values{
			"grant_type":    {"client_credentials"},
			"client_id":     {cfg.Username},
			"client_secret": {cfg.ClientSecret},
			"scope":         {scopeFor(aud)},
		}, nil
	}
	return nil, errNotLoggedIn
}

// token returns a valid access token for aud, from the cache or renewed
// (and cached) through the login's grant.
func (a *app) token(ctx context.Context, aud string) (string, error) {
	cfg, err := a.loggedIn()
	if err != nil {
		return "", err
	}
	aud = strings.TrimRight(aud, "/")
	if tok, ok := cfg.validToken(aud, a.now()); ok {
		return tok, nil
	}
	tr, err := a.redeem(ctx, cfg, cfg.TenantID, aud)
	if err != nil {
		return "", err
	}
	if cfg.Tokens == nil {
		cfg.Tokens = map[string]CachedToken{}
	}
	cfg.Tokens[aud] = CachedToken{AccessToken: tr.AccessToken, ExpiresOn: tr.expiry(a.now().Unix())}
	if tr.RefreshToken != "" {
		cfg.RefreshToken = tr.RefreshToken // refresh tokens rotate
	}
	if err := a.saveConfig(cfg); err != nil {
		return "", err
	}
	return tr.AccessToken, nil
}

// redeem runs the login's grant for aud in tenant.
func (a *app) redeem(ctx context.Context, cfg *Config, tenant, aud string) (*tokenResponse, error) {
	form, err := grantForm(cfg, aud)
	if err != nil {
		return nil, err
	}
	hc, err := a.httpClient()
	if err != nil {
		return nil, err
	}
	a.debugf("acquiring a token for %s", aud)
	tr, err := a.postToken(ctx, hc, cfg.Endpoint.LoginEndpoint, tenant, form)
	if err != nil {
		var ae *azerr.Error
		if errors.As(err, &ae) && (ae.Code == "invalid_grant" || ae.Code == "invalid_client") {
			ae.Message += " Please run 'keyhaven login' to setup account."
		}
		return nil, err
	}
	return tr, nil
}

// dropToken forgets a cached token (the server refused it); it reports
// whether there was one, so the caller retries only once.
func (a *app) dropToken(aud string) bool {
	cfg, err := a.loadConfig()
	if err != nil {
		return false
	}
	aud = strings.TrimRight(aud, "/")
	if _, ok := cfg.Tokens[aud]; !ok {
		return false
	}
	delete(cfg.Tokens, aud)
	_ = a.saveConfig(cfg)
	return true
}
