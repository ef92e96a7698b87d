package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

const authzProviders = "/providers/Microsoft.Authorization"

func newRoleCmd(a *app) *cobra.Command {
	cmd := newGroup("role", "Manage RBAC role definitions and assignments.")
	def := newGroup("definition", "Manage role definitions.")
	def.AddCommand(newRoleDefListCmd(a), newRoleDefCreateCmd(a), newRoleDefDeleteCmd(a))
	asg := newGroup("assignment", "Manage role assignments.")
	asg.AddCommand(newRoleAsgCreateCmd(a), newRoleAsgListCmd(a), newRoleAsgDeleteCmd(a))
	cmd.AddCommand(def, asg)
	return cmd
}

// roleScope resolves --scope / --resource-group, defaulting to the current
// subscription; "/" (root) is kept as is.
func (a *app) roleScope(scope, rg string) (string, error) {
	if scope != "" && rg != "" {
		return "", usageErrorf("usage error: --scope and --resource-group are mutually exclusive")
	}
	if scope == "" {
		return a.scopePath(rg)
	}
	if !strings.HasPrefix(scope, "/") || len(scope) > maxIDLength || strings.ContainsAny(scope, "?#\\ ") || strings.Contains(scope, "//") {
		return "", usageErrorf("argument --scope: invalid scope %q", scope)
	}
	for _, seg := range strings.Split(scope, "/") {
		if seg == "." || seg == ".." {
			return "", usageErrorf("argument --scope: invalid scope %q", scope)
		}
	}
	if scope == "/" {
		return "/", nil
	}
	return strings.TrimRight(scope, "/"), nil
}

// underScope joins a scope and a provider path ("/" scope has no prefix).
func underScope(scope, rest string) string {
	if scope == "/" {
		return rest
	}
	return scope + rest
}

func strField(m map[string]any, path ...string) string {
	var cur any = m
	for _, p := range path {
		mm, _ := cur.(map[string]any)
		cur = mm[p]
	}
	s, _ := cur.(string)
	return s
}

func lastSegment(id string) string { return id[strings.LastIndexByte(id, '/')+1:] }

// roleDefinitions lists definitions visible at scope.
func (a *app) roleDefinitions(ctx context.Context, scope, filter string) ([]any, error) {
	var q url.Values
	if filter != "" {
		q = url.Values{"$filter": {filter}}
	}
	return a.armListFiltered(ctx, underScope(scope, authzProviders+"/roleDefinitions"), apiAuthorization, q)
}

// armListFiltered lists with an OData $filter, and without it when the
// server rejects the filter: callers filter client-side as well.
func (a *app) armListFiltered(ctx context.Context, path, apiVersion string, q url.Values) ([]any, error) {
	items, err := a.armList(ctx, path, apiVersion, q)
	var ae *azerr.Error
	if q != nil && errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		a.debugf("the server refused $filter; listing everything")
		return a.armList(ctx, path, apiVersion, nil)
	}
	return items, err
}

// matchRoles keeps definitions named name (role name, GUID or full id).
func matchRoles(items []any, name string, customOnly bool) []any {
	out := []any{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if customOnly && !strings.EqualFold(strField(m, "properties", "type"), "CustomRole") {
			continue
		}
		id := strField(m, "id")
		if name != "" && !strings.EqualFold(strField(m, "properties", "roleName"), name) &&
			!strings.EqualFold(strField(m, "name"), name) && !strings.EqualFold(id, name) {
			continue
		}
		out = append(out, it)
	}
	return out
}

func odataQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func newRoleDefListCmd(a *app) *cobra.Command {
	var name, scope, rg string
	var customOnly triBool
	cmd := &cobra.Command{
		Use: "list", Short: "List role definitions.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sc, err := a.roleScope(scope, rg)
			if err != nil {
				return err
			}
			filter := ""
			if name != "" && !isGUID(name) {
				filter = "roleName eq " + odataQuote(name)
			} else if customOnly.val {
				filter = "type eq 'CustomRole'"
			}
			items, err := a.roleDefinitions(cmd.Context(), sc, filter)
			if err != nil {
				return err
			}
			return a.print(matchRoles(items, name, customOnly.val))
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "A role's name (or GUID), e.g. 'Key Vault Secrets User'.")
	cmd.Flags().StringVar(&scope, "scope", "", "Scope at which the role definitions apply (default: the subscription).")
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "Use the resource group as scope.")
	cmd.Flags().Var(&customOnly, "custom-role-only", "Custom roles only (vs. built-in ones).")
	cmd.Flags().Lookup("custom-role-only").NoOptDefVal = "true"
	return cmd
}

// roleDefinitionBody converts az's role definition JSON (Name, Description,
// Actions, NotActions, DataActions, NotDataActions, AssignableScopes; any
// case) or the ARM shape ({"properties":{...}}) into the ARM body.
func roleDefinitionBody(def map[string]any) (map[string]any, string, error) {
	get := func(keys ...string) any {
		for k, v := range def {
			for _, want := range keys {
				if strings.EqualFold(k, want) {
					return v
				}
			}
		}
		return nil
	}
	if props, ok := get("properties").(map[string]any); ok {
		scopes := toStrings(props["assignableScopes"])
		if len(scopes) == 0 {
			return nil, "", usageErrorf("argument --role-definition: assignableScopes is required")
		}
		id, _ := get("name").(string)
		return map[string]any{"properties": props}, id, nil
	}
	roleName, _ := get("roleName", "Name").(string)
	if roleName == "" {
		return nil, "", usageErrorf("argument --role-definition: 'Name' is required")
	}
	scopes := toStrings(get("AssignableScopes"))
	if len(scopes) == 0 {
		return nil, "", usageErrorf("argument --role-definition: 'AssignableScopes' is required")
	}
	desc, _ := get("Description").(string)
	perm := map[string]any{
		"actions":        orEmpty(toStrings(get("Actions"))),
		"notActions":     orEmpty(toStrings(get("NotActions"))),
		"dataActions":    orEmpty(toStrings(get("DataActions"))),
		"notDataActions": orEmpty(toStrings(get("NotDataActions"))),
	}
	id, _ := get("id").(string)
	id = lastSegment(id)
	body := map[string]any{"properties": map[string]any{
		"roleName": roleName, "description": desc, "type": "CustomRole",
		"permissions": []any{perm}, "assignableScopes": scopes,
	}}
	return body, id, nil
}

func toStrings(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newRoleDefCreateCmd(a *app) *cobra.Command {
	var def string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a custom role definition.",
		Example: `  keyhaven role definition create --role-definition '{"Name": "Secret Reader", "Description": "Reads secrets",
    "Actions": [], "DataActions": ["Microsoft.KeyVault/vaults/secrets/getSecret/action"],
    "AssignableScopes": ["/subscriptions/SUB"]}'
  keyhaven role definition create --role-definition @role.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if def == "" {
				return usageErrorf("the following arguments are required: --role-definition")
			}
			m, err := readJSONArg("--role-definition", def)
			if err != nil {
				return err
			}
			body, id, err := roleDefinitionBody(m)
			if err != nil {
				return err
			}
			if !isGUID(id) {
				id = newGUID()
			}
			props := body["properties"].(map[string]any)
			scope, err := a.roleScope(toStrings(toAny(props["assignableScopes"]))[0], "")
			if err != nil {
				return err
			}
			v, err := a.arm(cmd.Context(), armCall{method: http.MethodPut, apiVersion: apiAuthorization, body: body,
				path: underScope(scope, authzProviders+"/roleDefinitions/"+id)})
			if err != nil {
				return err
			}
			return a.print(v)
		},
	}
	cmd.Flags().StringVar(&def, "role-definition", "", "Description of a role as JSON, or a path to a file containing a JSON description (@file).")
	return cmd
}

// toAny turns a []string (from our own conversion) back into []any.
func toAny(v any) any {
	if s, ok := v.([]string); ok {
		out := make([]any, len(s))
		for i, e := range s {
			out[i] = e
		}
		return out
	}
	return v
}

func newRoleDefDeleteCmd(a *app) *cobra.Command {
	var name, scope, rg string
	var customOnly triBool
	cmd := &cobra.Command{
		Use: "delete", Short: "Delete a role definition.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return usageErrorf("the following arguments are required: --name/-n")
			}
			sc, err := a.roleScope(scope, rg)
			if err != nil {
				return err
			}
			items, err := a.roleDefinitions(cmd.Context(), sc, "")
			if err != nil {
				return err
			}
			matches := matchRoles(items, name, customOnly.val)
			if len(matches) == 0 {
				return &azerr.Error{Status: http.StatusNotFound, Code: "RoleDefinitionDoesNotExist", Message: fmt.Sprintf("Role definition '%s' doesn't exist.", name)}
			}
			for _, it := range matches {
				id := strField(it.(map[string]any), "id")
				r, err := a.roleScope(id, "")
				if err != nil {
					return err
				}
				if _, err := a.arm(cmd.Context(), armCall{method: http.MethodDelete, path: r, apiVersion: apiAuthorization}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "The role's name or GUID.")
	cmd.Flags().StringVar(&scope, "scope", "", "Scope of the role definition (default: the subscription).")
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "Use the resource group as scope.")
	cmd.Flags().Var(&customOnly, "custom-role-only", "Custom roles only.")
	cmd.Flags().Lookup("custom-role-only").NoOptDefVal = "true"
	return cmd
}

// roleDefinitionID resolves --role (name, GUID or full id) to a definition id.
func (a *app) roleDefinitionID(ctx context.Context, role, scope string) (string, error) {
	if strings.HasPrefix(role, "/") {
		if _, err := a.roleScope(role, ""); err != nil {
			return "", usageErrorf("argument --role: invalid role definition id %q", role)
		}
		return role, nil
	}
	if isGUID(role) {
		sub, err := a.subscriptionID()
		if err != nil {
			return "", err
		}
		return "/subscriptions/" + sub + authzProviders + "/roleDefinitions/" + strings.ToLower(role), nil
	}
	items, err := a.roleDefinitions(ctx, scope, "roleName eq "+odataQuote(role))
	if err != nil {
		return "", err
	}
	matches := matchRoles(items, role, false)
	switch len(matches) {
	case 0:
		return "", &azerr.Error{Message: fmt.Sprintf("Role '%s' doesn't exist.", role)}
	case 1:
		return strField(matches[0].(map[string]any), "id"), nil
	}
	return "", &azerr.Error{Message: fmt.Sprintf("More than one role matches the given name '%s'. Please pick an id from '%s'", role, strings.Join(idsOf(matches), ", "))}
}

func idsOf(items []any) []string {
	var out []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		out = append(out, strField(m, "id"))
	}
	return out
}

var principalTypes = []string{"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}

// assigneeFlags are --assignee / --assignee-object-id / --assignee-principal-type.
type assigneeFlags struct{ assignee, objectID, principalType string }

func (f *assigneeFlags) bind(c *cobra.Command, withObjectID bool) {
	c.Flags().StringVar(&f.assignee, "assignee", "", "Represent a user or service principal: object id, user principal name or service principal name/appId.")
	if withObjectID {
		c.Flags().StringVar(&f.objectID, "assignee-object-id", "", "The assignee's object id; skips the directory lookup.")
		c.Flags().StringVar(&f.principalType, "assignee-principal-type", "", "Use with --assignee-object-id: User, Group, ServicePrincipal, ForeignGroup, Device.")
	}
}

// resolve returns the principal's object id and type ("" when no assignee).
func (f *assigneeFlags) resolve(ctx context.Context, a *app) (string, string, error) {
	switch {
	case f.assignee != "" && f.objectID != "":
		return "", "", usageErrorf("usage error: --assignee and --assignee-object-id are mutually exclusive")
	case f.objectID != "":
		if !isGUID(f.objectID) {
			return "", "", usageErrorf("argument --assignee-object-id: expected a GUID")
		}
		pt := ""
		if f.principalType != "" {
			var err error
			if pt, err = oneOf("--assignee-principal-type", f.principalType, principalTypes...); err != nil {
				return "", "", err
			}
		}
		return strings.ToLower(f.objectID), pt, nil
	case f.assignee != "":
		return a.resolveAssignee(ctx, f.assignee)
	}
	return "", "", nil
}

func newRoleAsgCreateCmd(a *app) *cobra.Command {
	var who assigneeFlags
	var role, scope, rg, description string
	cmd := &cobra.Command{
		Use: "create", Short: "Create a new role assignment for a user, group, or service principal.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if role == "" {
				return usageErrorf("the following arguments are required: --role")
			}
			if who.assignee == "" && who.objectID == "" {
				return usageErrorf("usage error: --assignee STRING | --assignee-object-id GUID")
			}
			sc, err := a.roleScope(scope, rg)
			if err != nil {
				return err
			}
			oid, ptype, err := who.resolve(ctx, a)
			if err != nil {
				return err
			}
			defID, err := a.roleDefinitionID(ctx, role, sc)
			if err != nil {
				return err
			}
			props := map[string]any{"roleDefinitionId": defID, "principalId": oid}
			if ptype != "" {
				props["principalType"] = ptype
			}
			if description != "" {
				props["description"] = description
			}
			v, err := a.arm(ctx, armCall{method: http.MethodPut, apiVersion: apiAuthorization, body: map[string]any{"properties": props},
				path: underScope(sc, authzProviders+"/roleAssignments/"+newGUID())})
			if err != nil {
				return err
			}
			return a.print(flattenProps(v))
		},
	}
	who.bind(cmd, true)
	cmd.Flags().StringVar(&role, "role", "", "Role name or id.")
	cmd.Flags().StringVar(&scope, "scope", "", "Scope at which the role assignment applies (default: the subscription).")
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "Use the resource group as scope.")
	cmd.Flags().StringVar(&description, "description", "", "Description of the role assignment.")
	return cmd
}

// assignmentQuery selects role assignments like az's list/delete.
type assignmentQuery struct {
	scope            string
	principalID      string
	roleDefID        string // GUID (last segment) to match, "" for any
	all, inheritance bool
}

func (a *app) roleAssignments(ctx context.Context, q assignmentQuery) ([]any, error) {
	var params url.Values
	if q.principalID != "" {
		params = url.Values{"$filter": {"principalId eq " + odataQuote(q.principalID)}}
	}
	items, err := a.armListFiltered(ctx, underScope(q.scope, authzProviders+"/roleAssignments"), apiAuthorization, params)
	if err != nil {
		return nil, err
	}
	out := []any{}
	for _, it := range items {
		m, _ := it.(map[string]any)
		asgScope := strings.TrimRight(strField(m, "properties", "scope"), "/")
		if asgScope == "" {
			asgScope = "/"
		}
		switch {
		case q.all:
		case strings.EqualFold(asgScope, q.scope):
		case q.inheritance && (asgScope == "/" || strings.HasPrefix(strings.ToLower(q.scope)+"/", strings.ToLower(asgScope)+"/")):
		default:
			continue
		}
		if q.principalID != "" && !strings.EqualFold(strField(m, "properties", "principalId"), q.principalID) {
			continue
		}
		if q.roleDefID != "" && !strings.EqualFold(lastSegment(strField(m, "properties", "roleDefinitionId")), q.roleDefID) {
			continue
		}
		out = append(out, it)
	}
	return out, nil
}

// addRoleNames fills az's roleDefinitionName (best effort).
func (a *app) addRoleNames(ctx context.Context, scope string, items []any) {
	if len(items) == 0 {
		return
	}
	defs, err := a.roleDefinitions(ctx, scope, "")
	if err != nil {
		return
	}
	names := map[string]string{}
	for _, d := range defs {
		m, _ := d.(map[string]any)
		names[strings.ToLower(lastSegment(strField(m, "id")))] = strField(m, "properties", "roleName")
	}
	for _, it := range items {
		m, _ := it.(map[string]any)
		if n := names[strings.ToLower(lastSegment(strField(m, "properties", "roleDefinitionId")))]; n != "" {
			m["roleDefinitionName"] = n
		}
	}
}

// assignmentFilter builds the query shared by list and delete.
func (a *app) assignmentFilter(ctx context.Context, who *assigneeFlags, role, scope, rg string) (assignmentQuery, error) {
	sc, err := a.roleScope(scope, rg)
	if err != nil {
		return assignmentQuery{}, err
	}
	q := assignmentQuery{scope: sc}
	if q.principalID, _, err = who.resolve(ctx, a); err != nil {
		return q, err
	}
	if role != "" {
		id, err := a.roleDefinitionID(ctx, role, sc)
		if err != nil {
			return q, err
		}
		q.roleDefID = lastSegment(id)
	}
	return q, nil
}

func newRoleAsgListCmd(a *app) *cobra.Command {
	var who assigneeFlags
	var role, scope, rg string
	var all, inherited bool
	cmd := &cobra.Command{
		Use: "list", Short: "List role assignments (at the scope; --all for everything below it too).", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := a.assignmentFilter(cmd.Context(), &who, role, scope, rg)
			if err != nil {
				return err
			}
			q.all, q.inheritance = all, inherited
			items, err := a.roleAssignments(cmd.Context(), q)
			if err != nil {
				return err
			}
			a.addRoleNames(cmd.Context(), q.scope, items)
			return a.print(flattenProps(items))
		},
	}
	who.bind(cmd, false)
	cmd.Flags().StringVar(&role, "role", "", "Role name or id.")
	cmd.Flags().StringVar(&scope, "scope", "", "Scope (default: the subscription).")
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "Use the resource group as scope.")
	cmd.Flags().BoolVar(&all, "all", false, "Show all assignments under the scope.")
	cmd.Flags().BoolVar(&inherited, "include-inherited", false, "Include assignments applied on parent scopes.")
	return cmd
}

func newRoleAsgDeleteCmd(a *app) *cobra.Command {
	var who assigneeFlags
	var role, scope, rg string
	var ids []string
	cmd := &cobra.Command{
		Use: "delete", Short: "Delete role assignments.", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var targets []string
			if len(ids) > 0 {
				if who.assignee != "" || role != "" || scope != "" || rg != "" {
					return usageErrorf("usage error: --ids cannot be combined with other filters")
				}
				for _, id := range ids {
					r, err := parseResourceID(id)
					if err != nil {
						if id, err = a.roleScope(id, ""); err != nil {
							return err
						}
					} else {
						id = r.Raw
					}
					if !strings.Contains(strings.ToLower(id), "/providers/microsoft.authorization/roleassignments/") {
						return usageErrorf("argument --ids: %q is not a role assignment id", id)
					}
					targets = append(targets, id)
				}
			} else {
				if who.assignee == "" && role == "" && scope == "" && rg == "" {
					return usageErrorf("usage error: provide at least one of --assignee, --role, --scope, --resource-group or --ids")
				}
				q, err := a.assignmentFilter(ctx, &who, role, scope, rg)
				if err != nil {
					return err
				}
				items, err := a.roleAssignments(ctx, q)
				if err != nil {
					return err
				}
				targets = idsOf(items)
				if len(targets) == 0 {
					a.warn("No matched assignments were found to delete")
					return nil
				}
			}
			for _, id := range targets {
				if _, err := a.arm(ctx, armCall{method: http.MethodDelete, path: id, apiVersion: apiAuthorization}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	who.bind(cmd, false)
	cmd.Flags().StringVar(&role, "role", "", "Role name or id.")
	cmd.Flags().StringVar(&scope, "scope", "", "Scope (default: the subscription).")
	cmd.Flags().StringVarP(&rg, "resource-group", "g", "", "Use the resource group as scope.")
	cmd.Flags().StringArrayVar(&ids, "ids", nil, "Space-separated role assignment ids.")
	return cmd
}
