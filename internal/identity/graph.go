package identity

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

const maxGraphBody = 64 << 10

// Graph wire shapes (Microsoft Graph v1.0 names).
type graphUser struct {
	ID                string `json:"id"`
	DisplayName       string `json:"displayName"`
	UserPrincipalName string `json:"userPrincipalName"`
	AccountEnabled    bool   `json:"accountEnabled"`
	CreatedDateTime   string `json:"createdDateTime,omitempty"`
}

type graphPasswordCredential struct {
	KeyID               string  `json:"keyId"`
	DisplayName         *string `json:"displayName"`
	Hint                string  `json:"hint"`
	StartDateTime       string  `json:"startDateTime"`
	EndDateTime         string  `json:"endDateTime"`
	SecretText          *string `json:"secretText"`
	CustomKeyIdentifier *string `json:"customKeyIdentifier"`
}

type graphKeyCredential struct {
	KeyID               string `json:"keyId"`
	DisplayName         string `json:"displayName"`
	Type                string `json:"type"`
	Usage               string `json:"usage"`
	CustomKeyIdentifier string `json:"customKeyIdentifier"`
	StartDateTime       string `json:"startDateTime"`
	EndDateTime         string `json:"endDateTime"`
}

type graphApplication struct {
	ID                  string                    `json:"id"`
	AppID               string                    `json:"appId"`
	DisplayName         string                    `json:"displayName"`
	SignInAudience      string                    `json:"signInAudience"`
	CreatedDateTime     string                    `json:"createdDateTime,omitempty"`
	PasswordCredentials []graphPasswordCredential `json:"passwordCredentials"`
	KeyCredentials      []graphKeyCredential      `json:"keyCredentials"`
}

type graphServicePrincipal struct {
	ID                     string   `json:"id"`
	AppID                  string   `json:"appId"`
	DisplayName            string   `json:"displayName"`
	AccountEnabled         bool     `json:"accountEnabled"`
	ServicePrincipalType   string   `json:"servicePrincipalType"`
	AppOwnerOrganizationID string   `json:"appOwnerOrganizationId"`
	ServicePrincipalNames  []string `json:"servicePrincipalNames"`
	AlternativeNames       []string `json:"alternativeNames,omitempty"`
}

func graphTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toGraphUser(u *User) graphUser {
	return graphUser{ID: u.ObjectID, DisplayName: u.DisplayName, UserPrincipalName: u.UserPrincipalName,
		AccountEnabled: u.Enabled, CreatedDateTime: graphTime(u.Created)}
}

func toGraphPassword(p PasswordCredential) graphPasswordCredential {
	g := graphPasswordCredential{KeyID: p.KeyID, Hint: p.Hint, StartDateTime: graphTime(p.StartDateTime),
		EndDateTime: graphTime(p.EndDateTime)}
	if p.DisplayName != "" {
		g.DisplayName = &p.DisplayName
	}
	if p.SecretText != "" {
		g.SecretText = &p.SecretText
	}
	return g
}

func toGraphApp(a *Application) graphApplication {
	g := graphApplication{ID: a.ObjectID, AppID: a.AppID, DisplayName: a.DisplayName, SignInAudience: "AzureADMyOrg",
		CreatedDateTime: graphTime(a.Created), PasswordCredentials: []graphPasswordCredential{}, KeyCredentials: []graphKeyCredential{}}
	for _, p := range a.PasswordCredentials {
		g.PasswordCredentials = append(g.PasswordCredentials, toGraphPassword(p))
	}
	for _, k := range a.KeyCredentials {
		g.KeyCredentials = append(g.KeyCredentials, graphKeyCredential{KeyID: k.KeyID, DisplayName: k.DisplayName,
			Type: "AsymmetricX509Cert", Usage: "Verify", CustomKeyIdentifier: k.Thumbprint,
			StartDateTime: graphTime(k.StartDateTime), EndDateTime: graphTime(k.EndDateTime)})
	}
	return g
}

func toGraphSP(sp *ServicePrincipal) graphServicePrincipal {
	g := graphServicePrincipal{ID: sp.ObjectID, AppID: sp.AppID, DisplayName: sp.DisplayName, AccountEnabled: sp.Enabled,
		ServicePrincipalType: "Application", AppOwnerOrganizationID: sp.TenantID, ServicePrincipalNames: []string{sp.AppID}}
	if sp.Kind == principal.ManagedIdentity {
		g.ServicePrincipalType = "ManagedIdentity"
		explicit := "isExplicit=True" // user-assigned
		if isSystemMI(sp) {
			explicit = "isExplicit=False"
		}
		g.AlternativeNames = []string{explicit, sp.MIResourceID}
	}
	return g
}

func isSystemMI(sp *ServicePrincipal) bool {
	return !strings.Contains(strings.ToLower(sp.MIResourceID), uaiSegment)
}

// GraphHandler serves a Graph-like directory API under /v1.0/:
//
//	POST/GET   /v1.0/users                          GET/DELETE /v1.0/users/{id}
//	POST/GET   /v1.0/applications                   GET/DELETE /v1.0/applications/{id}
//	POST       /v1.0/applications/{id}/addPassword  POST       /v1.0/applications/{id}/removePassword
//	POST/GET   /v1.0/servicePrincipals              GET        /v1.0/servicePrincipals/{id}
//
// Lists accept $filter "{property} eq '{value}'" (appId, displayName,
// userPrincipalName, id). The caller (principal.From, set by the server's
// authentication) must hold Microsoft.Directory/{users|applications|
// servicePrincipals}/{read|write} at scope "/" per d, and present a token
// for BaseURL (or Options.GraphAudiences). Errors use Graph's
// {"error":{"code","message"}} shape.
func (s *Service) GraphHandler(d authz.Decider) http.Handler {
	g := &graphAPI{s: s, d: d}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1.0/users", g.auth("users", true, g.createUser))
	mux.HandleFunc("GET /v1.0/users", g.auth("users", false, g.listUsers))
	mux.HandleFunc("GET /v1.0/users/{id}", g.auth("users", false, g.getUser))
	mux.HandleFunc("DELETE /v1.0/users/{id}", g.auth("users", true, g.deleteUser))
	mux.HandleFunc("POST /v1.0/applications", g.auth("applications", true, g.createApp))
	mux.HandleFunc("GET /v1.0/applications", g.auth("applications", false, g.listApps))
	mux.HandleFunc("GET /v1.0/applications/{id}", g.auth("applications", false, g.getApp))
	mux.HandleFunc("DELETE /v1.0/applications/{id}", g.auth("applications", true, g.deleteApp))
	mux.HandleFunc("POST /v1.0/applications/{id}/addPassword", g.auth("applications", true, g.addPassword))
	mux.HandleFunc("POST /v1.0/applications/{id}/removePassword", g.auth("applications", true, g.removePassword))
	mux.HandleFunc("POST /v1.0/servicePrincipals", g.auth("servicePrincipals", true, g.createSP))
	mux.HandleFunc("GET /v1.0/servicePrincipals", g.auth("servicePrincipals", false, g.listSPs))
	mux.HandleFunc("GET /v1.0/servicePrincipals/{id}", g.auth("servicePrincipals", false, g.getSP))
	mux.HandleFunc("/v1.0/", func(w http.ResponseWriter, r *http.Request) {
		azerr.Write(w, azerr.New(http.StatusBadRequest, "BadRequest", "Resource not found for the segment '%s'.", truncate(strings.TrimPrefix(r.URL.Path, "/v1.0/"), 64)))
	})
	return mux
}

type graphAPI struct {
	s *Service
	d authz.Decider
}

type graphFunc func(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error

func (g *graphAPI) audienceOK(aud string) bool {
	a := strings.TrimSuffix(strings.TrimSuffix(aud, "/.default"), "/")
	for _, ok := range append([]string{g.s.base}, g.s.opts.GraphAudiences...) {
		if strings.EqualFold(a, strings.TrimRight(ok, "/")) {
			return true
		}
	}
	return false
}

// auth authenticates and authorizes, then runs h; every error renders in
// Graph's shape.
func (g *graphAPI) auth(entity string, write bool, h graphFunc) http.HandlerFunc {
	verb := "read"
	if write {
		verb = "write"
	}
	action := "Microsoft.Directory/" + entity + "/" + verb
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		info := principal.InfoFrom(ctx)
		caller := info.Principal
		if caller == nil {
			msg := "Access token is empty."
			if info.AuthError != "" {
				msg = info.AuthError
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="`+g.s.base+`/common/oauth2/v2.0/authorize"`)
			azerr.Write(w, azerr.New(http.StatusUnauthorized, "InvalidAuthenticationToken", "%s", msg))
			return
		}
		if !g.audienceOK(caller.Audience) {
			azerr.Write(w, azerr.New(http.StatusUnauthorized, "InvalidAuthenticationToken", "Invalid audience."))
			return
		}
		dec, err := g.d.Decide(ctx, authz.Request{Principal: caller, Action: action, Scope: "/"})
		if err != nil {
			azerr.Write(w, err)
			return
		}
		if !dec.Allowed {
			azerr.Write(w, azerr.New(http.StatusForbidden, "Authorization_RequestDenied",
				"Insufficient privileges to complete the operation (%s).", action))
			return
		}
		if err := h(w, r, caller); err != nil {
			azerr.Write(w, graphErr(err))
		}
	}
}

// graphErr maps errors to Graph's codes.
func graphErr(err error) *azerr.Error {
	e := azerr.From(err)
	out := *e
	switch {
	case e.Status == http.StatusNotFound:
		out.Code = "Request_ResourceNotFound"
	case e.Status == http.StatusBadRequest && !strings.HasPrefix(e.Code, "Request_"):
		out.Code = "Request_BadRequest"
	case e.Status == http.StatusConflict:
		out.Code = "Request_BadRequest"
		out.Status = http.StatusBadRequest
	}
	return &out
}

func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxGraphBody+1))
	if err != nil || len(body) > maxGraphBody {
		return azerr.New(http.StatusBadRequest, "Request_BadRequest", "The request body is unreadable or too large.")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return azerr.New(http.StatusBadRequest, "Request_BadRequest", "The request body is not valid JSON.")
	}
	return nil
}

func (g *graphAPI) list(w http.ResponseWriter, entity string, values any) {
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": g.s.base + "/v1.0/$metadata#" + entity,
		"value":          values,
	})
}

var filterRE = regexp.MustCompile(`^\s*(\w+)\s+eq\s+'([^']{0,256})'\s*$`)

// parseFilter accepts "{prop} eq '{value}'" for the given properties.
func parseFilter(r *http.Request, allowed ...string) (prop, value string, err error) {
	f := r.URL.Query().Get("$filter")
	if f == "" {
		return "", "", nil
	}
	m := filterRE.FindStringSubmatch(f)
	if m == nil {
		return "", "", azerr.New(http.StatusBadRequest, "Request_UnsupportedQuery", "Only $filter=<property> eq '<value>' is supported.")
	}
	for _, a := range allowed {
		if strings.EqualFold(a, m[1]) {
			return a, m[2], nil
		}
	}
	return "", "", azerr.New(http.StatusBadRequest, "Request_UnsupportedQuery", "Filtering on '%s' is not supported.", truncate(m[1], 64))
}

func (g *graphAPI) createUser(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	var in struct {
		AccountEnabled    *bool  `json:"accountEnabled"`
		DisplayName       string `json:"displayName"`
		UserPrincipalName string `json:"userPrincipalName"`
		PasswordProfile   struct {
			Password string `json:"password"`
		} `json:"passwordProfile"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	u, err := g.s.CreateUser(r.Context(), CreateUserRequest{TenantID: caller.TenantID, UserPrincipalName: in.UserPrincipalName,
		DisplayName: in.DisplayName, Password: in.PasswordProfile.Password, Disabled: in.AccountEnabled != nil && !*in.AccountEnabled})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toGraphUser(u))
	return nil
}

func (g *graphAPI) listUsers(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	prop, val, err := parseFilter(r, "userPrincipalName", "displayName", "id")
	if err != nil {
		return err
	}
	users, err := g.s.ListUsers(r.Context(), caller.TenantID)
	if err != nil {
		return err
	}
	out := []graphUser{}
	for _, u := range users {
		gu := toGraphUser(u)
		if prop == "" || (prop == "userPrincipalName" && strings.EqualFold(gu.UserPrincipalName, val)) ||
			(prop == "displayName" && gu.DisplayName == val) || (prop == "id" && strings.EqualFold(gu.ID, val)) {
			out = append(out, gu)
		}
	}
	g.list(w, "users", out)
	return nil
}

// inTenant hides objects of other tenants (404, as if absent).
func inTenant(caller *principal.Principal, tenantID, id string) error {
	if caller.TenantID != tenantID {
		return errObjectNotFound(id)
	}
	return nil
}

// userInTenant is the user named by the path, 404 when in another tenant.
func (g *graphAPI) userInTenant(r *http.Request, caller *principal.Principal) (*User, error) {
	id := r.PathValue("id")
	u, err := g.s.GetUser(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if err := inTenant(caller, u.TenantID, id); err != nil {
		return nil, err
	}
	return u, nil
}

func (g *graphAPI) getUser(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	u, err := g.userInTenant(r, caller)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGraphUser(u))
	return nil
}

func (g *graphAPI) deleteUser(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	u, err := g.userInTenant(r, caller)
	if err != nil {
		return err
	}
	if u.ObjectID == caller.ObjectID {
		return azerr.New(http.StatusBadRequest, "Request_BadRequest", "You cannot delete your own account.")
	}
	if err := g.s.DeleteUser(r.Context(), u.ObjectID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *graphAPI) createApp(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	var in struct {
		DisplayName string `json:"displayName"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	app, _, err := g.s.CreateApplication(r.Context(), caller.TenantID, in.DisplayName)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toGraphApp(app))
	return nil
}

func (g *graphAPI) listApps(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	prop, val, err := parseFilter(r, "appId", "displayName", "id")
	if err != nil {
		return err
	}
	apps, err := g.s.ListApplications(r.Context(), caller.TenantID)
	if err != nil {
		return err
	}
	out := []graphApplication{}
	for _, a := range apps {
		if prop == "" || (prop == "appId" && strings.EqualFold(a.AppID, val)) ||
			(prop == "displayName" && a.DisplayName == val) || (prop == "id" && strings.EqualFold(a.ObjectID, val)) {
			out = append(out, toGraphApp(a))
		}
	}
	g.list(w, "applications", out)
	return nil
}

func (g *graphAPI) appInTenant(r *http.Request, caller *principal.Principal) (*Application, error) {
	id := r.PathValue("id")
	app, err := g.s.GetApplication(r.Context(), id)
	if err != nil {
		return nil, err
	}
	if err := inTenant(caller, app.TenantID, id); err != nil {
		return nil, err
	}
	return app, nil
}

func (g *graphAPI) getApp(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	app, err := g.appInTenant(r, caller)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGraphApp(app))
	return nil
}

func (g *graphAPI) deleteApp(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	app, err := g.appInTenant(r, caller)
	if err != nil {
		return err
	}
	if err := g.s.DeleteApplication(r.Context(), app.AppID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (g *graphAPI) addPassword(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	app, err := g.appInTenant(r, caller)
	if err != nil {
		return err
	}
	var in struct {
		PasswordCredential struct {
			DisplayName string `json:"displayName"`
			EndDateTime string `json:"endDateTime"`
		} `json:"passwordCredential"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	var end time.Time
	if s := in.PasswordCredential.EndDateTime; s != "" {
		if end, err = time.Parse(time.RFC3339, s); err != nil {
			return azerr.New(http.StatusBadRequest, "Request_BadRequest", "endDateTime must be an RFC 3339 date-time.")
		}
	}
	cred, err := g.s.AddPassword(r.Context(), app.AppID, in.PasswordCredential.DisplayName, end)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGraphPassword(*cred))
	return nil
}

func (g *graphAPI) removePassword(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	app, err := g.appInTenant(r, caller)
	if err != nil {
		return err
	}
	var in struct {
		KeyID string `json:"keyId"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if err := g.s.RemovePassword(r.Context(), app.AppID, in.KeyID); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createSP returns the application's service principal. Applications get
// theirs when registered, so this is idempotent (201 with the existing one)
// and `az ad sp create --id <appId>` works unchanged.
func (g *graphAPI) createSP(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	var in struct {
		AppID string `json:"appId"`
	}
	if err := decodeBody(r, &in); err != nil {
		return err
	}
	if in.AppID == "" {
		return azerr.New(http.StatusBadRequest, "Request_BadRequest", "appId is required.")
	}
	app, err := g.s.GetApplication(r.Context(), in.AppID)
	if err != nil {
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return azerr.New(http.StatusBadRequest, "Request_BadRequest", "The appId '%s' of the service principal does not reference a valid application object.", truncate(in.AppID, 64))
		}
		return err
	}
	if err := inTenant(caller, app.TenantID, in.AppID); err != nil {
		return err
	}
	sp, err := g.s.GetServicePrincipal(r.Context(), app.ServicePrincipalID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toGraphSP(sp))
	return nil
}

func (g *graphAPI) listSPs(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	prop, val, err := parseFilter(r, "appId", "displayName", "id", "servicePrincipalNames")
	if err != nil {
		return err
	}
	sps, err := g.s.ListServicePrincipals(r.Context(), caller.TenantID)
	if err != nil {
		return err
	}
	out := []graphServicePrincipal{}
	for _, sp := range sps {
		if prop == "" || ((prop == "appId" || prop == "servicePrincipalNames") && strings.EqualFold(sp.AppID, val)) ||
			(prop == "displayName" && sp.DisplayName == val) || (prop == "id" && strings.EqualFold(sp.ObjectID, val)) {
			out = append(out, toGraphSP(sp))
		}
	}
	g.list(w, "servicePrincipals", out)
	return nil
}

func (g *graphAPI) getSP(w http.ResponseWriter, r *http.Request, caller *principal.Principal) error {
	id := r.PathValue("id")
	sp, err := g.s.GetServicePrincipal(r.Context(), id)
	if err != nil {
		return err
	}
	if err := inTenant(caller, sp.TenantID, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toGraphSP(sp))
	return nil
}
