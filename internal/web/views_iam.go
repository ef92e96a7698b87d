package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/google/uuid"
)

// Access control (IAM): the role assignments that apply to a resource (made
// at it or inherited from above) and the guides' "Add role assignment" (the
// Nexus guide grants the writer role on a vault and Managed Identity
// Operator on a user-assigned identity this way). Both are calls to the
// Microsoft.Authorization API with the user's token, so adding one needs
// roleAssignments/write at the resource like any client.

const (
	typeIdentities   = "Microsoft.ManagedIdentity/userAssignedIdentities"
	apiMSI           = "2023-01-31"
	apiAuthorization = "2022-04-01"
	maxAssignments   = 200
	maxMemberLen     = 256
)

// roleAssignment is a role assignment at a resource or inherited from above.
type roleAssignment struct {
	ID         string `json:"id"`
	Properties struct {
		RoleDefinitionID string `json:"roleDefinitionId"`
		PrincipalID      string `json:"principalId"`
		PrincipalType    string `json:"principalType"`
		Scope            string `json:"scope"`
	} `json:"properties"`
}

// RoleGUID is the role definition's name (its last segment).
func (a roleAssignment) RoleGUID() string {
	id := a.Properties.RoleDefinitionID
	return id[strings.LastIndex(id, "/")+1:]
}

// At reports whether the assignment is made at id (else it is inherited).
func (a roleAssignment) At(id string) bool { return strings.EqualFold(a.Properties.Scope, id) }

type roleDefinition struct {
	Name       string `json:"name"`
	Properties struct {
		RoleName string `json:"roleName"`
	} `json:"properties"`
}

// iamView is a resource page's Access control (IAM) section.
type iamView struct {
	Scope   string // the resource ID
	Action  string // the Add role assignment form's portal path
	CSRF    string // the session's form token
	Access  section[roleAssignment]
	Roles   map[string]string // role definition name (GUID) → role name
	Choices []roleDefinition  // the roles the form offers, by name
	// Names are the directory's display names of the principals (and of
	// extra, such as a vault's access policies), where the user may read
	// them.
	Names map[string]string
}

// iam reads the IAM section of the resource id; extra are more object ids
// to name.
func (p *Portal) iam(ctx context.Context, s *session, id string, extra []string) iamView {
	v := iamView{Scope: id, Action: link(id) + "/roleassignments", CSRF: s.csrf, Roles: map[string]string{}}
	access, err := list[roleAssignment](ctx, p, s, p.arm(id+"/providers/Microsoft.Authorization/roleAssignments", apiAuthorization,
		url.Values{"$filter": {"atScope()"}}), p.opts.BaseURL, maxAssignments)
	// Made at the resource first, then from the nearest scope up.
	sort.SliceStable(access, func(i, j int) bool { return len(access[i].Properties.Scope) > len(access[j].Properties.Scope) })
	v.Access = fill(p, access, err)
	if defs, err := armList[roleDefinition](ctx, p, s, id+"/providers/Microsoft.Authorization/roleDefinitions", apiAuthorization); err == nil {
		for _, d := range defs {
			v.Roles[d.Name] = d.Properties.RoleName
		}
		sort.Slice(defs, func(i, j int) bool { return defs[i].Properties.RoleName < defs[j].Properties.RoleName })
		v.Choices = defs
	}
	ids := extra
	for _, a := range access {
		ids = append(ids, a.Properties.PrincipalID)
	}
	v.Names = p.principalNames(ctx, s, ids)
	return v
}

type identityRes struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		TenantID    string `json:"tenantId"`
		PrincipalID string `json:"principalId"`
		ClientID    string `json:"clientId"`
	} `json:"properties"`
}

func (i identityRes) Link() string { return link(i.ID) }

type identityData struct {
	Identity identityRes
	IAM      iamView
}

// serveIdentity is a user-assigned identity's page: its ids and its Access
// control (IAM), where the Nexus guide grants the platform Managed Identity
// Operator.
func (p *Portal) serveIdentity(w http.ResponseWriter, r *http.Request, s *session) {
	n, ok := pathNames(r, "sub", "rg", "name")
	if !ok {
		p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a managed identity.")
		return
	}
	var d identityData
	if err := p.armGet(r.Context(), s, resPath(n[0], n[1], typeIdentities, n[2]), apiMSI, &d.Identity); err != nil {
		p.fail(w, r, s, err)
		return
	}
	d.IAM = p.iam(r.Context(), s, d.Identity.ID, nil)
	p.render(w, s, http.StatusOK, "identity", "Managed identity "+d.Identity.Name, []crumb{
		{"Subscriptions", Prefix + "/subscriptions"},
		{n[0], Prefix + "/subscriptions/" + url.PathEscape(n[0])},
		{n[1], Prefix + "/subscriptions/" + url.PathEscape(n[0]) + "/resourcegroups/" + url.PathEscape(n[1])}}, d)
}

// roleGUIDRE is a role definition name.
var roleGUIDRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// addRoleAssignment serves the Add role assignment form of a resource of
// type typ: the role (a role definition name) and the member (an object id,
// a user principal name, or a service principal's display name or
// application id), assigned at the resource.
func (p *Portal) addRoleAssignment(typ string) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		n, ok := pathNames(r, "sub", "rg", "name")
		if !ok {
			p.renderError(w, r, s, http.StatusNotFound, "Not found", "That is not a resource.")
			return
		}
		scope := resPath(n[0], n[1], typ, n[2])
		back := link(scope) + "#access-control"
		role, member := r.PostForm.Get("role"), strings.TrimSpace(r.PostForm.Get("member"))
		if !roleGUIDRE.MatchString(role) {
			p.renderError(w, r, s, http.StatusBadRequest, "Choose a role", "Select the role to assign.")
			return
		}
		ctx := r.Context()
		oid, ptype, label, err := p.resolveMember(ctx, s, member)
		var em errMember
		if errors.As(err, &em) {
			s.setFlash("Add role assignment: " + em.Error() + ".")
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		body := map[string]any{"properties": map[string]string{
			"roleDefinitionId": "/subscriptions/" + n[0] + "/providers/Microsoft.Authorization/roleDefinitions/" + strings.ToLower(role),
			"principalId":      oid, "principalType": ptype}}
		err = p.call(ctx, s, http.MethodPut, p.arm(scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString(), apiAuthorization, nil),
			p.opts.BaseURL, body, nil)
		var ae *apiError
		switch {
		case err == nil:
			s.setFlash("Role assignment added for " + label + ".")
		case errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500:
			// Refused (no right to assign roles here, an unknown role, the
			// assignment exists): say why on the page.
			s.setFlash("Add role assignment was refused: " + ae.Message)
		default:
			p.fail(w, r, s, err)
			return
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
}

// errMember is a member the directory cannot name unambiguously; its
// message is shown to the user.
type errMember string

func (e errMember) Error() string { return string(e) }

// resolveMember finds the principal a form names: an object id (a service
// principal, then a user), a user principal name, or a service principal's
// display name or application id. It returns its object id, principal type
// and a label for messages.
func (p *Portal) resolveMember(ctx context.Context, s *session, member string) (oid, ptype, label string, err error) {
	if member == "" || len(member) > maxMemberLen || strings.ContainsAny(member, "'\"\\\n\r") {
		return "", "", "", errMember("name the member by object ID, user principal name, or application name or ID")
	}
	graph := p.opts.BaseURL + "/v1.0/"
	type entry struct {
		ID                string `json:"id"`
		DisplayName       string `json:"displayName"`
		UserPrincipalName string `json:"userPrincipalName"`
	}
	if roleGUIDRE.MatchString(member) {
		var e entry
		if err := p.call(ctx, s, http.MethodGet, graph+"servicePrincipals/"+url.PathEscape(member), p.opts.BaseURL, nil, &e); err == nil {
			return e.ID, "ServicePrincipal", e.DisplayName, nil
		}
		if err := p.call(ctx, s, http.MethodGet, graph+"users/"+url.PathEscape(member), p.opts.BaseURL, nil, &e); err == nil {
			return e.ID, "User", e.UserPrincipalName, nil
		}
	}
	find := func(coll, filter string) ([]entry, error) {
		return list[entry](ctx, p, s, graph+coll+"?"+url.Values{"$filter": {filter}}.Encode(), p.opts.BaseURL, 10)
	}
	if strings.Contains(member, "@") {
		users, err := find("users", "userPrincipalName eq '"+member+"'")
		if err != nil {
			return "", "", "", err
		}
		if len(users) == 1 {
			return users[0].ID, "User", users[0].UserPrincipalName, nil
		}
		return "", "", "", errMember("no user " + member + " in the directory")
	}
	for _, f := range []string{"displayName eq '" + member + "'", "appId eq '" + member + "'"} {
		sps, err := find("servicePrincipals", f)
		if err != nil {
			return "", "", "", err
		}
		switch len(sps) {
		case 0:
			continue
		case 1:
			return sps[0].ID, "ServicePrincipal", sps[0].DisplayName, nil
		default:
			return "", "", "", errMember("several service principals are named " + member + "; give the object ID")
		}
	}
	return "", "", "", errMember("no service principal, managed identity or user " + member + " in the directory")
}
