package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Token endpoint limits.
const (
	maxTokenBody     = 64 << 10
	maxFormFields    = 32
	maxFieldLen      = 4 << 10
	maxAssertionLen  = 16 << 10
	maxScopeLen      = 2 << 10
	maxScopeTokens   = 20
	pwWaitLimit      = 2 * time.Second
	assertionTypeJWT = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

// Handler serves the OAuth2/OIDC endpoints:
//
//	GET  /{tenant}/v2.0/.well-known/openid-configuration
//	GET  /{tenant}/discovery/v2.0/keys
//	POST /{tenant}/oauth2/v2.0/token
//	GET  /{tenant}/oauth2/v2.0/authorize   (refused: no interactive sign-in)
//	GET  /common/userrealm/{user}          (MSAL's realm discovery for ROPC)
//	GET  /common/discovery/instance        (MSAL's instance discovery)
//
// {tenant} is a tenant GUID or domain, or "organizations"/"common".
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.serveDiscovery)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.serveKeys)
	mux.HandleFunc("/{tenant}/oauth2/v2.0/token", s.serveToken)
	mux.HandleFunc("GET /{tenant}/oauth2/v2.0/authorize", func(w http.ResponseWriter, r *http.Request) {
		s.writeOAuthError(w, r, &oauthError{status: 400, code: "unsupported_response_type", aadsts: 900561,
			desc: "Interactive sign-in is not supported by keyhaven. Use client credentials, a certificate or username and password."})
	})
	mux.HandleFunc("GET /common/userrealm/{user}", s.serveUserRealm)
	mux.HandleFunc("GET /common/UserRealm/{user}", s.serveUserRealm)
	mux.HandleFunc("GET /common/discovery/instance", s.serveInstanceDiscovery)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		azerr.Write(w, azerr.NotFound("NotFound", "The requested path was not found."))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		mux.ServeHTTP(w, r)
	})
}

// oauthError is an OAuth2 error in Entra's shape.
type oauthError struct {
	status     int
	code       string // OAuth2 error, e.g. invalid_client
	aadsts     int
	desc       string
	retryAfter int
}

func (s *Service) writeOAuthError(w http.ResponseWriter, r *http.Request, e *oauthError) {
	info := principal.InfoFrom(r.Context())
	trace := info.RequestID
	if trace == "" {
		trace = newGUID()
	}
	corr := r.Header.Get("client-request-id")
	if !isGUID(corr) {
		corr = info.CorrelationID
	}
	if corr == "" {
		corr = newGUID()
	}
	ts := s.now().Format("2006-01-02 15:04:05Z")
	body := map[string]any{
		"error": e.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
			e.aadsts, e.desc, trace, corr, ts),
		"error_codes":    []int{e.aadsts},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
	}
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(e.retryAfter))
	}
	s.log.Info("identity: token request refused", "error", e.code, "aadsts", e.aadsts, "trace_id", trace)
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// tenantFromPath resolves the tenant segment of a path: a specific tenant,
// or (nil, true) for "organizations"/"common" (resolved from the principal).
func (s *Service) tenantFromPath(ctx context.Context, seg string) (*Tenant, bool, *oauthError) {
	switch strings.ToLower(seg) {
	case "organizations", "common":
		return nil, true, nil
	}
	t, err := s.GetTenant(ctx, seg)
	if err != nil {
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, false, &oauthError{status: 400, code: "invalid_tenant", aadsts: 90002,
				desc: fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", truncate(seg, 100))}
		}
		return nil, false, &oauthError{status: 500, code: "temporarily_unavailable", aadsts: 90033, desc: "A transient error has occurred. Please try again."}
	}
	return t, false, nil
}

func (s *Service) serveDiscovery(w http.ResponseWriter, r *http.Request) {
	t, multi, oe := s.tenantFromPath(r.Context(), r.PathValue("tenant"))
	if oe != nil {
		s.writeOAuthError(w, r, oe)
		return
	}
	seg, issuer := strings.ToLower(r.PathValue("tenant")), s.base+"/{tenantid}/v2.0"
	if !multi {
		seg, issuer = t.ID, s.Issuer(t.ID)
	}
	host := hostOf(s.base)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        s.base + "/" + seg + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              s.base + "/" + seg + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"grant_types_supported":                 []string{"client_credentials", "password", "refresh_token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                issuer,
		"request_uri_parameter_supported":       false,
		"authorization_endpoint":                s.base + "/" + seg + "/oauth2/v2.0/authorize",
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "ver",
			"preferred_username", "upn", "appid", "azp", "idtyp", "xms_mirid"},
		"tenant_region_scope":   nil,
		"cloud_instance_name":   host,
		"cloud_graph_host_name": host,
		"msgraph_host":          host,
		"rbac_url":              s.base,
	})
}

func hostOf(base string) string {
	if u, err := url.Parse(base); err == nil {
		return u.Host
	}
	return base
}

func (s *Service) serveKeys(w http.ResponseWriter, r *http.Request) {
	if _, _, oe := s.tenantFromPath(r.Context(), r.PathValue("tenant")); oe != nil {
		s.writeOAuthError(w, r, oe)
		return
	}
	set, err := s.JWKS(r.Context())
	if err != nil {
		s.log.Error("identity: load signing keys", "err", err)
		s.writeOAuthError(w, r, &oauthError{status: 500, code: "temporarily_unavailable", aadsts: 90033, desc: "A transient error has occurred. Please try again."})
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeJSON(w, http.StatusOK, set)
}

func (s *Service) serveUserRealm(w http.ResponseWriter, r *http.Request) {
	user := r.PathValue("user")
	domain := ""
	if i := strings.LastIndexByte(user, '@'); i >= 0 && len(user) <= maxUPNLen {
		domain = strings.ToLower(user[i+1:])
	}
	// Always "Managed": the answer must not reveal whether a user exists.
	writeJSON(w, http.StatusOK, map[string]string{"ver": "1.0", "account_type": "Managed", "domain_name": domain,
		"cloud_instance_name": hostOf(s.base), "cloud_audience_urn": "urn:federation:MicrosoftOnline"})
}

func (s *Service) serveInstanceDiscovery(w http.ResponseWriter, r *http.Request) {
	tenant := "common"
	if ae := r.URL.Query().Get("authorization_endpoint"); ae != "" && len(ae) < 1024 {
		if u, err := url.Parse(ae); err == nil {
			if seg := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")[0]; validTenantSegment(seg) {
				tenant = seg
			}
		}
	}
	host := hostOf(s.base)
	writeJSON(w, http.StatusOK, map[string]any{
		"tenant_discovery_endpoint": s.base + "/" + tenant + "/v2.0/.well-known/openid-configuration",
		"api-version":               "1.1",
		"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
	})
}

func validTenantSegment(seg string) bool {
	if seg == "" || len(seg) > maxDomainLen {
		return false
	}
	for _, c := range seg {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// tokenRequest is a parsed, size-checked token request.
type tokenRequest struct {
	form       url.Values
	tenantSeg  string
	tenant     *Tenant // nil for organizations/common
	clientID   string
	secret     string // client_secret, from the form or HTTP Basic
	hasSecret  bool
	assertion  string
	assertType string
}

func (tr *tokenRequest) get(k string) string { return tr.form.Get(k) }

func errMissing(param string) *oauthError {
	return &oauthError{status: 400, code: "invalid_request", aadsts: 900144,
		desc: fmt.Sprintf("The request body must contain the following parameter: '%s'.", param)}
}

// parseTokenRequest enforces method, content type, body size and field
// limits, and reads the client's credentials.
func (s *Service) parseTokenRequest(w http.ResponseWriter, r *http.Request) (*tokenRequest, *oauthError) {
	if r.Method != http.MethodPost {
		return nil, &oauthError{status: 400, code: "invalid_request", aadsts: 900561,
			desc: fmt.Sprintf("The endpoint only accepts POST, OPTIONS requests. Received a %s request.", truncate(r.Method, 16))}
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, &oauthError{status: 400, code: "invalid_request", aadsts: 900144,
			desc: "The request body must be application/x-www-form-urlencoded."}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenBody)
	if err := r.ParseForm(); err != nil {
		return nil, &oauthError{status: 400, code: "invalid_request", aadsts: 900144,
			desc: "The request body is malformed or larger than allowed."}
	}
	form := r.PostForm
	if len(form) > maxFormFields {
		return nil, &oauthError{status: 400, code: "invalid_request", aadsts: 900144, desc: "Too many request parameters."}
	}
	for k, vs := range form {
		limit := maxFieldLen
		if k == "client_assertion" {
			limit = maxAssertionLen
		}
		if len(vs) > 1 {
			return nil, &oauthError{status: 400, code: "invalid_request", aadsts: 900144,
				desc: fmt.Sprintf("The parameter '%s' is duplicated.", truncate(k, 64))}
		}
		if len(vs[0]) > limit {
			return nil, &oauthError{status: 400, code: "invalid_request", aadsts: 900144,
				desc: fmt.Sprintf("The parameter '%s' is too long.", truncate(k, 64))}
		}
	}
	tr := &tokenRequest{form: form, tenantSeg: r.PathValue("tenant"), clientID: strings.ToLower(form.Get("client_id")),
		assertion: form.Get("client_assertion"), assertType: form.Get("client_assertion_type")}
	if v, ok := form["client_secret"]; ok {
		tr.secret, tr.hasSecret = v[0], true
	}
	if id, sec, ok := r.BasicAuth(); ok {
		// client_secret_basic: both parts are form-urlencoded (RFC 6749 2.3.1).
		uid, err1 := url.QueryUnescape(id)
		usec, err2 := url.QueryUnescape(sec)
		if err1 != nil || err2 != nil || len(uid) > maxFieldLen || len(usec) > maxFieldLen ||
			(tr.clientID != "" && !strings.EqualFold(uid, tr.clientID)) {
			return nil, &oauthError{status: 401, code: "invalid_client", aadsts: 7000215, desc: "Invalid client credentials in the Authorization header."}
		}
		tr.clientID, tr.secret, tr.hasSecret = strings.ToLower(uid), usec, true
	}
	var oe *oauthError
	tr.tenant, _, oe = s.tenantFromPath(r.Context(), tr.tenantSeg)
	if oe != nil {
		return nil, oe
	}
	return tr, nil
}

// scopeReq is a parsed scope parameter.
type scopeReq struct {
	resource   string // the audience
	scp        string // delegated scopes for users ("user_impersonation" for .default)
	isDefault  bool
	offline    bool
	openid     bool
	requested  string
	hasPerUser bool
}

func parseScope(scope string) (*scopeReq, *oauthError) {
	if len(scope) > maxScopeLen {
		return nil, &oauthError{status: 400, code: "invalid_scope", aadsts: 70011, desc: "The provided value for the input parameter 'scope' is too long."}
	}
	fields := strings.Fields(scope)
	if len(fields) > maxScopeTokens {
		return nil, &oauthError{status: 400, code: "invalid_scope", aadsts: 70011, desc: "The provided value for the input parameter 'scope' has too many scopes."}
	}
	sr := &scopeReq{requested: strings.Join(fields, " ")}
	var scps []string
	for _, f := range fields {
		switch strings.ToLower(f) {
		case "openid":
			sr.openid = true
			continue
		case "offline_access":
			sr.offline = true
			continue
		case "profile", "email":
			continue
		}
		var res, name string
		if strings.HasSuffix(f, "/.default") {
			res, sr.isDefault = strings.TrimSuffix(f, "/.default"), true
		} else if i := strings.LastIndexByte(f, '/'); i > 0 && i < len(f)-1 {
			res, name = f[:i], f[i+1:]
			sr.hasPerUser = true
		}
		if res == "" || validAudience(res) != nil {
			return nil, &oauthError{status: 400, code: "invalid_scope", aadsts: 70011,
				desc: fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", truncate(f, 200))}
		}
		if sr.resource != "" && sr.resource != res {
			return nil, &oauthError{status: 400, code: "invalid_scope", aadsts: 28000,
				desc: "Provided value for the input parameter scope is not valid because it contains more than one resource."}
		}
		sr.resource = res
		if name != "" {
			scps = append(scps, name)
		}
	}
	if sr.isDefault && sr.hasPerUser {
		return nil, &oauthError{status: 400, code: "invalid_scope", aadsts: 70011,
			desc: "The scope /.default cannot be combined with other scopes of the same resource."}
	}
	sr.scp = strings.Join(scps, " ")
	if sr.isDefault || sr.scp == "" {
		sr.scp = "user_impersonation"
	}
	return sr, nil
}

type tokenResponse struct {
	TokenType    string `json:"token_type"`
	Scope        string `json:"scope,omitempty"`
	ExpiresIn    int64  `json:"expires_in"`
	ExtExpiresIn int64  `json:"ext_expires_in"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	ClientInfo   string `json:"client_info,omitempty"`
}

func (s *Service) serveToken(w http.ResponseWriter, r *http.Request) {
	tr, oe := s.parseTokenRequest(w, r)
	if oe != nil {
		s.writeOAuthError(w, r, oe)
		return
	}
	var resp *tokenResponse
	switch gt := tr.get("grant_type"); gt {
	case "client_credentials":
		resp, oe = s.grantClientCredentials(r.Context(), tr)
	case "password":
		resp, oe = s.grantPassword(r.Context(), tr)
	case "refresh_token":
		resp, oe = s.grantRefresh(r.Context(), tr)
	case "":
		oe = errMissing("grant_type")
	default:
		oe = &oauthError{status: 400, code: "unsupported_grant_type", aadsts: 70003,
			desc: fmt.Sprintf("The app requested an unsupported grant type '%s'.", truncate(gt, 64))}
	}
	if oe != nil {
		s.writeOAuthError(w, r, oe)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func serverError() *oauthError {
	return &oauthError{status: 500, code: "temporarily_unavailable", aadsts: 90033, desc: "A transient error has occurred. Please try again."}
}

// oauthFromErr turns an internal failure into a 500 without detail.
func (s *Service) oauthFromErr(err error) *oauthError {
	s.log.Error("identity: token request failed", "err", err)
	return serverError()
}

func errAppNotFound(clientID, tenant string) *oauthError {
	return &oauthError{status: 400, code: "unauthorized_client", aadsts: 700016,
		desc: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", truncate(clientID, 64), truncate(tenant, 100))}
}

// authenticateClient checks the client's secret or certificate assertion
// and returns its application, service principal and azpacr ("1" secret,
// "2" certificate).
func (s *Service) authenticateClient(ctx context.Context, tr *tokenRequest) (*appRecord, *principalRecord, string, *oauthError) {
	if tr.clientID == "" {
		return nil, nil, "", errMissing("client_id")
	}
	var app appRecord
	var err error
	if validID(tr.clientID) {
		_, err = store.LoadJSON(ctx, s.st, kApp+tr.clientID, &app)
	} else {
		err = store.ErrNotFound
	}
	if isNotFound(err) || (err == nil && tr.tenant != nil && app.TenantID != tr.tenant.ID) {
		return nil, nil, "", errAppNotFound(tr.clientID, tr.tenantSeg)
	} else if err != nil {
		return nil, nil, "", s.oauthFromErr(err)
	}
	var acr string
	switch {
	case tr.assertion != "" || tr.assertType != "":
		if oe := s.verifyAssertion(ctx, tr, &app); oe != nil {
			return nil, nil, "", oe
		}
		acr = "2"
	case tr.hasSecret:
		if oe := s.verifySecret(ctx, tr, &app); oe != nil {
			return nil, nil, "", oe
		}
		acr = "1"
	default:
		return nil, nil, "", &oauthError{status: 401, code: "invalid_client", aadsts: 7000218,
			desc: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
	}
	sp, _, err := s.getPrincipal(ctx, s.st, app.SPObjectID)
	if err != nil {
		return nil, nil, "", errAppNotFound(tr.clientID, tr.tenantSeg)
	}
	if !sp.Enabled {
		return nil, nil, "", &oauthError{status: 400, code: "unauthorized_client", aadsts: 7000112,
			desc: fmt.Sprintf("Application '%s'(%s) is disabled.", app.AppID, truncate(app.DisplayName, 100))}
	}
	return &app, sp, acr, nil
}

func (s *Service) verifySecret(ctx context.Context, tr *tokenRequest, app *appRecord) *oauthError {
	bad := &oauthError{status: 401, code: "invalid_client", aadsts: 7000215,
		desc: fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", app.AppID)}
	if tr.secret == "" || len(tr.secret) > 256 {
		return bad
	}
	h, err := s.secretHash(ctx, tr.secret)
	if err != nil {
		return s.oauthFromErr(err)
	}
	var match *passwordCredRecord
	for i := range app.Passwords {
		if equalHash(app.Passwords[i].Hash, h) { // every entry is compared: no early exit
			match = &app.Passwords[i]
		}
	}
	if match == nil {
		return bad
	}
	if now := s.now(); now.After(match.End) || now.Before(match.Start.Add(-s.opts.ClockSkew)) {
		return &oauthError{status: 401, code: "invalid_client", aadsts: 7000222,
			desc: fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app.", app.AppID)}
	}
	return nil
}

// scopeForApp parses scope for client_credentials: one resource with /.default.
func scopeForApp(scope string) (*scopeReq, *oauthError) {
	if scope == "" {
		return nil, errMissing("scope")
	}
	sr, oe := parseScope(scope)
	if oe != nil {
		return nil, oe
	}
	if sr.resource == "" || !sr.isDefault {
		return nil, &oauthError{status: 400, code: "invalid_scope", aadsts: 1002012,
			desc: fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", truncate(scope, 200))}
	}
	return sr, nil
}

func (s *Service) grantClientCredentials(ctx context.Context, tr *tokenRequest) (*tokenResponse, *oauthError) {
	_, sp, acr, oe := s.authenticateClient(ctx, tr)
	if oe != nil {
		return nil, oe
	}
	sr, oe := scopeForApp(tr.get("scope"))
	if oe != nil {
		return nil, oe
	}
	tok, exp, err := s.issueAccess(ctx, sp, issueParams{audience: sr.resource, azpacr: acr})
	if err != nil {
		return nil, s.oauthFromErr(err)
	}
	return s.response(tok, exp), nil
}

func (s *Service) response(tok string, exp time.Time) *tokenResponse {
	secs := int64(exp.Sub(s.now()).Round(time.Second) / time.Second)
	return &tokenResponse{TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: tok}
}

func errBadUserCredentials() *oauthError {
	return &oauthError{status: 400, code: "invalid_grant", aadsts: 50126,
		desc: "Error validating credentials due to invalid username or password."}
}

func (s *Service) grantPassword(ctx context.Context, tr *tokenRequest) (*tokenResponse, *oauthError) {
	username, password := tr.get("username"), tr.get("password")
	switch {
	case tr.clientID == "":
		return nil, errMissing("client_id")
	case username == "":
		return nil, errMissing("username")
	case password == "":
		return nil, errMissing("password")
	}
	if !validID(tr.clientID) {
		return nil, errAppNotFound(tr.clientID, tr.tenantSeg)
	}
	acr := "0"
	if tr.hasSecret || tr.assertion != "" {
		// A confidential client doing ROPC must authenticate itself too.
		_, _, a, oe := s.authenticateClient(ctx, tr)
		if oe != nil {
			return nil, oe
		}
		acr = a
	}
	sr, oe := parseScope(tr.get("scope"))
	if oe != nil {
		return nil, oe
	}
	p, oe := s.checkUserPassword(ctx, tr, username, password)
	if oe != nil {
		return nil, oe
	}
	return s.userTokens(ctx, tr, p, sr, acr)
}

// checkUserPassword verifies a user's password, bounding concurrent argon2id
// work and spending the same effort whether or not the user exists.
func (s *Service) checkUserPassword(ctx context.Context, tr *tokenRequest, username, password string) (*principalRecord, *oauthError) {
	if len(username) > maxUPNLen || len(password) > maxPasswordLen {
		return nil, errBadUserCredentials()
	}
	timer := time.NewTimer(pwWaitLimit)
	defer timer.Stop()
	select {
	case s.pwSem <- struct{}{}:
		defer func() { <-s.pwSem }()
	case <-timer.C:
		return nil, &oauthError{status: http.StatusTooManyRequests, code: "temporarily_unavailable", aadsts: 90033,
			desc: "Too many sign-in requests are being processed. Please retry after a second.", retryAfter: 1}
	case <-ctx.Done():
		return nil, serverError()
	}
	var p *principalRecord
	hash := dummyHash
	if rec, _, err := s.userByIDOrUPN(ctx, s.st, username); err == nil && strings.Contains(username, "@") {
		p, hash = rec, rec.PasswordHash
	}
	ok, err := checkPassword(hash, password)
	if err != nil {
		return nil, s.oauthFromErr(err)
	}
	if !ok || p == nil || (tr.tenant != nil && p.TenantID != tr.tenant.ID) {
		return nil, errBadUserCredentials()
	}
	if !p.Enabled {
		return nil, &oauthError{status: 400, code: "invalid_grant", aadsts: 50057,
			desc: "The user account is disabled."}
	}
	return p, nil
}

// userTokens issues a user's access token and, as requested, a refresh
// token (offline_access), an ID token (openid) and client_info.
func (s *Service) userTokens(ctx context.Context, tr *tokenRequest, p *principalRecord, sr *scopeReq, acr string) (*tokenResponse, *oauthError) {
	aud := sr.resource
	if aud == "" {
		aud = s.base // as Entra defaults to Graph, keyhaven defaults to itself
	}
	tok, exp, err := s.issueAccess(ctx, p, issueParams{audience: aud, clientID: tr.clientID, scp: sr.scp, azpacr: acr})
	if err != nil {
		return nil, s.oauthFromErr(err)
	}
	resp := s.response(tok, exp)
	resp.Scope = sr.requested
	if sr.offline {
		if resp.RefreshToken, err = s.newRefreshToken(ctx, p, tr.clientID); err != nil {
			return nil, s.oauthFromErr(err)
		}
	}
	if sr.openid {
		if resp.IDToken, err = s.issueID(ctx, p, tr.clientID); err != nil {
			return nil, s.oauthFromErr(err)
		}
	}
	if tr.get("client_info") == "1" {
		ci, _ := json.Marshal(map[string]string{"uid": p.ObjectID, "utid": p.TenantID})
		resp.ClientInfo = base64.RawURLEncoding.EncodeToString(ci)
	}
	return resp, nil
}

// refreshRecord is a stored refresh token (keyed by its HMAC).
type refreshRecord struct {
	ObjectID string    `json:"objectId"`
	TenantID string    `json:"tenantId"`
	ClientID string    `json:"clientId"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires"`
}

func (s *Service) newRefreshToken(ctx context.Context, p *principalRecord, clientID string) (string, error) {
	rt := randomToken(48)
	h, err := s.secretHash(ctx, rt)
	if err != nil {
		return "", err
	}
	now := s.now()
	rec := refreshRecord{ObjectID: p.ObjectID, TenantID: p.TenantID, ClientID: clientID, Created: now,
		Expires: now.Add(s.opts.RefreshTokenLifetime)}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		_, err := store.PutJSON(ctx, tx, kRefresh+h, rec, store.Absent)
		return err
	})
	return rt, err
}

func (s *Service) grantRefresh(ctx context.Context, tr *tokenRequest) (*tokenResponse, *oauthError) {
	rt := tr.get("refresh_token")
	switch {
	case tr.clientID == "":
		return nil, errMissing("client_id")
	case rt == "":
		return nil, errMissing("refresh_token")
	}
	invalid := &oauthError{status: 400, code: "invalid_grant", aadsts: 70000,
		desc: "The provided value for the 'refresh_token' is not valid or has been used or revoked."}
	if len(rt) > 256 {
		return nil, invalid
	}
	acr := "0"
	if tr.hasSecret || tr.assertion != "" {
		_, _, a, oe := s.authenticateClient(ctx, tr)
		if oe != nil {
			return nil, oe
		}
		acr = a
	}
	sr, oe := parseScope(tr.get("scope"))
	if oe != nil {
		return nil, oe
	}
	h, err := s.secretHash(ctx, rt)
	if err != nil {
		return nil, s.oauthFromErr(err)
	}
	var rec refreshRecord
	var expired bool
	// Redeeming deletes the token: each refresh token works once (rotation).
	err = s.st.Update(ctx, func(tx store.Tx) error {
		expired = false
		ver, err := store.LoadJSON(ctx, tx, kRefresh+h, &rec)
		if err != nil {
			return err
		}
		if err := tx.Delete(ctx, kRefresh+h, ver); err != nil {
			return err
		}
		expired = s.now().After(rec.Expires)
		return nil
	})
	if isNotFound(err) {
		return nil, invalid
	} else if err != nil {
		return nil, s.oauthFromErr(err)
	}
	if expired {
		return nil, &oauthError{status: 400, code: "invalid_grant", aadsts: 700082,
			desc: "The refresh token has expired due to inactivity."}
	}
	if rec.ClientID != tr.clientID || (tr.tenant != nil && tr.tenant.ID != rec.TenantID) {
		return nil, invalid
	}
	p, _, err := s.getPrincipal(ctx, s.st, rec.ObjectID)
	if err != nil || p.TenantID != rec.TenantID {
		return nil, invalid
	}
	if !p.Enabled {
		return nil, &oauthError{status: 400, code: "invalid_grant", aadsts: 50057, desc: "The user account is disabled."}
	}
	sr.offline = true // the client keeps a refresh token
	return s.userTokens(ctx, tr, p, sr, acr)
}

// Sweep deletes expired refresh tokens; run it periodically.
func (s *Service) Sweep(ctx context.Context) error {
	recs, err := listAll(ctx, s.st, kRefresh)
	if err != nil {
		return err
	}
	now := s.now()
	for _, rec := range recs {
		var r refreshRecord
		if json.Unmarshal(rec.Value, &r) == nil && now.Before(r.Expires) {
			continue
		}
		key, ver := rec.Key, rec.Version
		err := s.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, key, ver) })
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}
