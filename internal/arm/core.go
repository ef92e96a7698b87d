package arm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

const (
	subPrefix   = "arm/subscriptions/"
	groupPrefix = "arm/groups/"
)

// Subscription is a subscription as ARM renders it.
type Subscription struct {
	ID                   string               `json:"id"`
	SubscriptionID       string               `json:"subscriptionId"`
	TenantID             string               `json:"tenantId"`
	DisplayName          string               `json:"displayName"`
	State                string               `json:"state"`
	AuthorizationSource  string               `json:"authorizationSource"`
	ManagedByTenants     []any                `json:"managedByTenants"`
	SubscriptionPolicies subscriptionPolicies `json:"subscriptionPolicies"`
}

type subscriptionPolicies struct {
	LocationPlacementID string `json:"locationPlacementId"`
	QuotaID             string `json:"quotaId"`
	SpendingLimit       string `json:"spendingLimit"`
}

// ResourceGroup is a resource group as ARM renders it.
type ResourceGroup struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	ManagedBy  string            `json:"managedBy,omitempty"`
	Tags       map[string]string `json:"tags"`
	Properties groupProperties   `json:"properties"`
	SystemData *SystemData       `json:"systemData,omitempty"`
}

type groupProperties struct {
	ProvisioningState string `json:"provisioningState"`
}

func subKey(sub string) string { return subPrefix + strings.ToLower(sub) }
func groupKey(sub, rg string) string {
	return groupPrefix + strings.ToLower(sub) + "/" + strings.ToLower(rg)
}

// CreateSubscription creates a subscription (bootstrap and the keyhaven
// PUT /subscriptions/{id} extension). It is idempotent: an existing
// subscription is returned unchanged.
func (s *Server) CreateSubscription(ctx context.Context, id, displayName, tenantID string) (*Subscription, error) {
	sub, _, err := s.putSubscription(ctx, id, displayName, tenantID, false)
	return sub, err
}

func (s *Server) putSubscription(ctx context.Context, id, displayName, tenantID string, rename bool) (*Subscription, bool, error) {
	if !IsGUID(id) {
		return nil, false, azerr.New(http.StatusBadRequest, "InvalidSubscriptionId",
			"The provided subscription identifier '%s' is malformed or invalid.", trunc(id, 64))
	}
	id = strings.ToLower(id)
	if displayName == "" {
		displayName = id
	}
	if utf8.RuneCountInString(displayName) > 64 || strings.ContainsFunc(displayName, isControl) {
		return nil, false, BadRequest("InvalidSubscriptionDisplayName", "The subscription display name must be 1 to 64 printable characters.")
	}
	var out Subscription
	created := false
	err := s.st.Update(ctx, func(tx store.Tx) error {
		created = false
		rec, err := tx.Get(ctx, subKey(id))
		switch {
		case err == nil:
			if err := json.Unmarshal(rec.Value, &out); err != nil {
				return err
			}
			if !rename || out.DisplayName == displayName {
				return nil
			}
			out.DisplayName = displayName
		case errors.Is(err, store.ErrNotFound):
			created = true
			out = Subscription{ID: "/subscriptions/" + id, SubscriptionID: id, TenantID: tenantID,
				DisplayName: displayName, State: "Enabled", AuthorizationSource: "RoleBased", ManagedByTenants: []any{},
				SubscriptionPolicies: subscriptionPolicies{LocationPlacementID: "Public_2014-09-01",
					QuotaID: "PayAsYouGo_2014-09-01", SpendingLimit: "Off"}}
		default:
			return err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, subKey(id), b, store.Any)
		return err
	})
	if err != nil {
		return nil, false, azerr.From(err)
	}
	return &out, created, nil
}

func (s *Server) getSubscription(ctx context.Context, id string) (*Subscription, error) {
	rec, err := s.st.Get(ctx, subKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, SubscriptionNotFound(id)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	var sub Subscription
	if err := json.Unmarshal(rec.Value, &sub); err != nil {
		return nil, azerr.Internal(err)
	}
	if sub.State != "Enabled" {
		return nil, azerr.New(http.StatusConflict, "ReadOnlyDisabledSubscription", "The subscription '%s' is disabled.", id)
	}
	return &sub, nil
}

func (s *Server) listSubscriptions(ctx context.Context) ([]Subscription, error) {
	recs, err := s.st.List(ctx, subPrefix, store.ListOptions{})
	if err != nil {
		return nil, azerr.Internal(err)
	}
	out := make([]Subscription, 0, len(recs))
	for _, r := range recs {
		var sub Subscription
		if err := json.Unmarshal(r.Value, &sub); err != nil {
			return nil, azerr.Internal(err)
		}
		out = append(out, sub)
	}
	return out, nil
}

// SubscriptionTenant returns the tenant a subscription belongs to.
func (s *Server) SubscriptionTenant(ctx context.Context, sub string) (string, error) {
	rec, err := s.getSubscription(ctx, sub)
	if err != nil {
		return "", err
	}
	return rec.TenantID, nil
}

func (s *Server) getGroup(ctx context.Context, sub, rg string) (*ResourceGroup, error) {
	rec, err := s.st.Get(ctx, groupKey(sub, rg))
	if errors.Is(err, store.ErrNotFound) {
		return nil, ResourceGroupNotFound(rg)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	var g ResourceGroup
	if err := json.Unmarshal(rec.Value, &g); err != nil {
		return nil, azerr.Internal(err)
	}
	return &g, nil
}

// validGroupName applies Azure's resource group naming rules.
func validGroupName(name string) error {
	if name == "" || utf8.RuneCountInString(name) > 90 {
		return InvalidResourceName("Resource group name '%s' must be 1 to 90 characters long.", trunc(name, 100))
	}
	for _, r := range name {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("_-.()", r)) {
			return InvalidResourceName("Resource group names only allow alphanumeric characters, periods, underscores, hyphens and parenthesis and cannot end in a period.")
		}
	}
	if strings.HasSuffix(name, ".") {
		return InvalidResourceName("Resource group names cannot end in a period.")
	}
	return nil
}

// serveCore serves the built-in Microsoft.Resources routes. handled is false
// for paths that belong to a provider.
func (s *Server) serveCore(c *call) (handled bool, err error) {
	segs := c.segs
	is := func(i int, kw string) bool { return len(segs) > i && strings.EqualFold(segs[i], kw) }
	n := len(segs)
	switch {
	case is(0, "tenants") && n == 1:
		return true, s.serveTenants(c)
	case is(0, "providers") && n <= 2:
		return true, s.serveProviderInfo(c, "", segs[1:])
	case is(0, "subscriptions") && n == 1:
		return true, s.serveSubscriptionList(c)
	case !is(0, "subscriptions"):
		return false, nil
	}
	sub := segs[1]
	if !IsGUID(sub) {
		return true, azerr.New(http.StatusBadRequest, "InvalidSubscriptionId",
			"The provided subscription identifier '%s' is malformed or invalid.", trunc(sub, 64))
	}
	if n == 2 {
		return true, s.serveSubscription(c, sub)
	}
	switch {
	case is(2, "resourceGroups") && n == 3:
		return true, s.serveGroupList(c, sub)
	case is(2, "resourceGroups") && n == 4:
		return true, s.serveGroup(c, sub, segs[3])
	case is(2, "resourceGroups") && n == 5 && is(4, "resources"):
		return true, s.serveResourceList(c, sub, segs[3])
	case is(2, "resources") && n == 3:
		return true, s.serveResourceList(c, sub, "")
	case is(2, "locations") && n == 3:
		return true, s.serveLocations(c, sub)
	case is(2, "providers") && n <= 4:
		return true, s.serveProviderInfo(c, sub, segs[3:])
	case is(2, "providers") && n == 5 && (is(4, "register") || is(4, "unregister")):
		return true, s.serveRegister(c, sub, segs[3])
	case is(2, "providers") && n == 8 && is(4, "locations") && (is(6, "operationStatuses") || is(6, "operationResults")):
		return true, s.serveOperationRoute(c, sub, segs[3], segs[6], segs[7])
	case is(2, "providers") || is(2, "resourceGroups") && is(4, "providers"):
		return false, nil
	}
	return true, azerr.NotFound("NotFound", "The requested path is not served by the resource manager.")
}

func (c *call) newRequest(s *Server) *Request {
	return &Request{Method: c.r.Method, APIVersion: c.apiVersion, Query: c.r.URL.Query(), Header: c.r.Header,
		Body: c.body, Principal: c.p, Now: s.clk.Now().UTC(), srv: s, path: c.r.URL.Path}
}

func onlyGet(c *call) error {
	if c.r.Method != http.MethodGet {
		return MethodNotAllowed(c.r.Method)
	}
	return nil
}

func (s *Server) serveTenants(c *call) error {
	if err := onlyGet(c); err != nil {
		return err
	}
	if err := checkCoreVersion(subscriptionsAPIVersions, c.apiVersion); err != nil {
		return err
	}
	c.action = "Microsoft.Resources/tenants/read"
	subs, err := s.visibleSubscriptions(c)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	type tenant struct {
		ID             string   `json:"id"`
		TenantID       string   `json:"tenantId"`
		TenantCategory string   `json:"tenantCategory"`
		DisplayName    string   `json:"displayName,omitempty"`
		Domains        []string `json:"domains"`
	}
	var out []tenant
	add := func(t string) {
		if t != "" && !seen[strings.ToLower(t)] {
			seen[strings.ToLower(t)] = true
			out = append(out, tenant{ID: "/tenants/" + t, TenantID: t, TenantCategory: "Home", Domains: []string{}})
		}
	}
	add(c.p.TenantID)
	for _, sub := range subs {
		add(sub.TenantID)
	}
	page, err := Paginate(c.newRequest(s), out, func(t tenant) string { return strings.ToLower(t.TenantID) })
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, page)
	return nil
}

// visibleSubscriptions lists the subscriptions the caller may read, as ARM
// lists only those.
func (s *Server) visibleSubscriptions(c *call) ([]Subscription, error) {
	all, err := s.listSubscriptions(c.r.Context())
	if err != nil {
		return nil, err
	}
	out := make([]Subscription, 0, len(all))
	for _, sub := range all {
		ok, err := s.allowed(c.r.Context(), c.p, "Microsoft.Resources/subscriptions/read", SubscriptionResourceID(sub.SubscriptionID))
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, sub)
		}
	}
	return out, nil
}

func (s *Server) serveSubscriptionList(c *call) error {
	if err := onlyGet(c); err != nil {
		return err
	}
	if err := checkCoreVersion(subscriptionsAPIVersions, c.apiVersion); err != nil {
		return err
	}
	c.action, c.scope = "Microsoft.Resources/subscriptions/read", "/"
	subs, err := s.visibleSubscriptions(c)
	if err != nil {
		return err
	}
	page, err := Paginate(c.newRequest(s), subs, func(x Subscription) string { return x.SubscriptionID })
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, page)
	return nil
}

func (s *Server) serveSubscription(c *call, sub string) error {
	ctx := c.r.Context()
	if err := checkCoreVersion(subscriptionsAPIVersions, c.apiVersion); err != nil {
		return err
	}
	switch c.r.Method {
	case http.MethodGet:
		if err := s.authorize(c, "Microsoft.Resources/subscriptions/read", SubscriptionResourceID(sub)); err != nil {
			return err
		}
		out, err := s.getSubscription(ctx, sub)
		if err != nil {
			return err
		}
		writeJSON(c.w, http.StatusOK, out)
		return nil
	case http.MethodPut:
		// keyhaven extension: creating a subscription is a tenant-root act.
		if err := s.authorize(c, "Microsoft.Resources/subscriptions/write", ResourceID{}); err != nil {
			return err
		}
		if err := s.guard(ctx, SubscriptionResourceID(sub), c.r.Method); err != nil {
			return err
		}
		var body struct {
			DisplayName string `json:"displayName"`
		}
		if len(c.body) > 0 {
			if err := DecodeJSON(c.body, &body); err != nil {
				return err
			}
		}
		tenant := c.p.TenantID
		if tenant == "" {
			tenant = s.opts.TenantID
		}
		out, created, err := s.putSubscription(ctx, sub, body.DisplayName, tenant, true)
		if err != nil {
			return err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(c.w, status, out)
		return nil
	}
	return MethodNotAllowed(c.r.Method)
}

func (s *Server) serveLocations(c *call, sub string) error {
	if err := onlyGet(c); err != nil {
		return err
	}
	if err := checkCoreVersion(subscriptionsAPIVersions, c.apiVersion); err != nil {
		return err
	}
	if err := s.authorize(c, "Microsoft.Resources/subscriptions/locations/read", SubscriptionResourceID(sub)); err != nil {
		return err
	}
	if _, err := s.getSubscription(c.r.Context(), sub); err != nil {
		return err
	}
	type location struct {
		ID                  string            `json:"id"`
		Name                string            `json:"name"`
		Type                string            `json:"type"`
		DisplayName         string            `json:"displayName"`
		RegionalDisplayName string            `json:"regionalDisplayName"`
		Metadata            map[string]string `json:"metadata"`
	}
	out := make([]location, 0, len(s.opts.Locations))
	for _, l := range s.opts.Locations {
		out = append(out, location{ID: "/subscriptions/" + sub + "/locations/" + l, Name: l, Type: "Region",
			DisplayName: l, RegionalDisplayName: l, Metadata: map[string]string{"regionType": "Physical"}})
	}
	writeJSON(c.w, http.StatusOK, Page[location]{Value: out})
	return nil
}

func (s *Server) serveGroupList(c *call, sub string) error {
	ctx := c.r.Context()
	if err := onlyGet(c); err != nil {
		return err
	}
	if err := checkCoreVersion(resourcesAPIVersions, c.apiVersion); err != nil {
		return err
	}
	if _, err := s.getSubscription(ctx, sub); err != nil {
		return err
	}
	// Like ARM, list the groups the caller can read rather than refusing
	// a caller who holds a role on only some of them.
	action := "Microsoft.Resources/subscriptions/resourceGroups/read"
	c.action, c.scope = action, SubscriptionResourceID(sub).String()
	subOK, err := s.allowed(ctx, c.p, action, SubscriptionResourceID(sub))
	if err != nil {
		return err
	}
	recs, err := s.st.List(ctx, groupPrefix+strings.ToLower(sub)+"/", store.ListOptions{})
	if err != nil {
		return azerr.Internal(err)
	}
	groups := make([]ResourceGroup, 0, len(recs))
	for _, r := range recs {
		var g ResourceGroup
		if err := json.Unmarshal(r.Value, &g); err != nil {
			return azerr.Internal(err)
		}
		if !subOK {
			ok, err := s.allowed(ctx, c.p, action, ResourceGroupResourceID(sub, g.Name))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
		}
		groups = append(groups, g)
	}
	page, err := Paginate(c.newRequest(s), groups, func(g ResourceGroup) string { return strings.ToLower(g.Name) })
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, page)
	return nil
}

func (s *Server) serveGroup(c *call, sub, rg string) error {
	ctx := c.r.Context()
	if err := checkCoreVersion(resourcesAPIVersions, c.apiVersion); err != nil {
		return err
	}
	id := ResourceGroupResourceID(sub, rg)
	verb := map[string]string{http.MethodGet: "read", http.MethodHead: "read", http.MethodPut: "write",
		http.MethodPatch: "write", http.MethodDelete: "delete"}[c.r.Method]
	if verb == "" {
		return MethodNotAllowed(c.r.Method)
	}
	if err := s.authorize(c, "Microsoft.Resources/subscriptions/resourceGroups/"+verb, id); err != nil {
		return err
	}
	if _, err := s.getSubscription(ctx, sub); err != nil {
		return err
	}
	if err := s.guard(ctx, id, c.r.Method); err != nil {
		return err
	}
	switch c.r.Method {
	case http.MethodGet, http.MethodHead:
		g, err := s.getGroup(ctx, sub, rg)
		if err != nil {
			return err
		}
		if c.r.Method == http.MethodHead {
			c.w.WriteHeader(http.StatusNoContent)
			return nil
		}
		writeJSON(c.w, http.StatusOK, g)
		return nil
	case http.MethodPut:
		return s.putGroup(c, sub, rg)
	case http.MethodPatch:
		return s.patchGroup(c, sub, rg)
	default:
		return s.deleteGroup(c, sub, rg)
	}
}

type groupBody struct {
	Location  string             `json:"location"`
	ManagedBy *string            `json:"managedBy"`
	Tags      *map[string]string `json:"tags"`
}

func (s *Server) putGroup(c *call, sub, rg string) error {
	ctx := c.r.Context()
	if err := validGroupName(rg); err != nil {
		return err
	}
	var body groupBody
	if err := DecodeJSON(c.body, &body); err != nil {
		return err
	}
	if body.Location == "" {
		return BadRequest("LocationRequired", "The location property is required for this definition.").WithTarget("location")
	}
	loc := NormalizeLocation(body.Location)
	if !s.ValidLocation(loc) {
		return BadRequest("LocationNotAvailableForResourceGroup",
			"The provided location '%s' is not available for resource group. List of available regions is '%s'.",
			trunc(body.Location, 64), strings.Join(s.opts.Locations, ",")).WithTarget("location")
	}
	tags := map[string]string{}
	if body.Tags != nil && *body.Tags != nil {
		tags = *body.Tags
	}
	if err := ValidateTags(tags); err != nil {
		return err
	}
	now := s.clk.Now()
	var out ResourceGroup
	created := false
	err := s.st.Update(ctx, func(tx store.Tx) error {
		created = false
		rec, err := tx.Get(ctx, groupKey(sub, rg))
		switch {
		case err == nil:
			var old ResourceGroup
			if err := json.Unmarshal(rec.Value, &old); err != nil {
				return err
			}
			if old.Properties.ProvisioningState == "Deleting" {
				return azerr.New(http.StatusConflict, "ResourceGroupBeingDeleted",
					"The resource group '%s' is in deprovisioning state and cannot perform this operation.", old.Name)
			}
			if old.Location != loc {
				return azerr.New(http.StatusConflict, "InvalidResourceGroupLocation",
					"Invalid resource group location '%s'. The Resource group already exists in location '%s'.", loc, old.Location)
			}
			out = old
			out.Tags = tags
			if body.ManagedBy != nil {
				out.ManagedBy = *body.ManagedBy
			}
			out.SystemData = out.SystemData.Touched(c.p, now)
		case errors.Is(err, store.ErrNotFound):
			created = true
			out = ResourceGroup{ID: ResourceGroupResourceID(sub, rg).String(), Name: rg,
				Type: "Microsoft.Resources/resourceGroups", Location: loc, Tags: tags,
				Properties: groupProperties{ProvisioningState: "Succeeded"}, SystemData: NewSystemData(c.p, now)}
			if body.ManagedBy != nil {
				out.ManagedBy = *body.ManagedBy
			}
		default:
			return err
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, groupKey(sub, rg), b, store.Any)
		return err
	})
	if err != nil {
		return azerr.From(err)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(c.w, status, out)
	return nil
}

func (s *Server) patchGroup(c *call, sub, rg string) error {
	ctx := c.r.Context()
	var body groupBody
	if err := DecodeJSON(c.body, &body); err != nil {
		return err
	}
	if body.Tags != nil {
		if err := ValidateTags(*body.Tags); err != nil {
			return err
		}
	}
	out, err := s.editGroup(ctx, sub, rg, func(out *ResourceGroup) error {
		if body.Location != "" && NormalizeLocation(body.Location) != out.Location {
			return azerr.New(http.StatusConflict, "InvalidResourceGroupLocation",
				"Invalid resource group location '%s'. The Resource group already exists in location '%s'.",
				trunc(body.Location, 64), out.Location)
		}
		if body.Tags != nil {
			out.Tags = *body.Tags
			if out.Tags == nil {
				out.Tags = map[string]string{}
			}
		}
		if body.ManagedBy != nil {
			out.ManagedBy = *body.ManagedBy
		}
		out.SystemData = out.SystemData.Touched(c.p, s.clk.Now())
		return nil
	})
	if err != nil {
		return azerr.From(err)
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// deleteGroup marks the group Deleting and runs the cascade as a
// long-running operation: every provider deletes what it holds in the
// group, then the group record goes.
func (s *Server) deleteGroup(c *call, sub, rg string) error {
	ctx := c.r.Context()
	g, err := s.editGroup(ctx, sub, rg, func(g *ResourceGroup) error {
		g.Properties.ProvisioningState = "Deleting"
		return nil
	})
	if err != nil {
		return azerr.From(err)
	}
	resp, err := s.startOperation(ctx, sub, "Microsoft.Resources", g.ID, c.action, c.apiVersion,
		OperationSpec{Location: g.Location}, func(ctx context.Context) (any, error) {
			for _, p := range s.sortedProviders() {
				if gr, ok := p.(GroupResources); ok {
					if err := gr.DeleteGroupResources(ctx, sub, g.Name); err != nil {
						return nil, s.restoreGroup(ctx, sub, g.Name, fmt.Errorf("delete %s resources: %w", p.Namespace(), err))
					}
				}
			}
			if err := s.st.Update(ctx, func(tx store.Tx) error {
				return tx.Delete(ctx, groupKey(sub, g.Name), store.Any)
			}); err != nil {
				return nil, azerr.Internal(err)
			}
			return nil, nil
		})
	if err != nil {
		return err
	}
	s.writeResponse(c, resp)
	return nil
}

// restoreGroup puts a group whose cascade failed back to Succeeded, so it
// can be used or deleted again, and returns cause.
func (s *Server) restoreGroup(ctx context.Context, sub, rg string, cause error) error {
	_, _ = s.editGroup(ctx, sub, rg, func(g *ResourceGroup) error {
		g.Properties.ProvisioningState = "Succeeded"
		return nil
	})
	return azerr.From(cause)
}

// editGroup applies edit to the stored group in one transaction and
// returns the group as written; a missing group is ResourceGroupNotFound.
// Each attempt decodes afresh, so a retried transaction keeps nothing of
// the one before.
func (s *Server) editGroup(ctx context.Context, sub, rg string, edit func(*ResourceGroup) error) (ResourceGroup, error) {
	var g ResourceGroup
	err := s.st.Update(ctx, func(tx store.Tx) error {
		rec, err := tx.Get(ctx, groupKey(sub, rg))
		if errors.Is(err, store.ErrNotFound) {
			return ResourceGroupNotFound(rg)
		}
		if err != nil {
			return err
		}
		g = ResourceGroup{}
		if err := json.Unmarshal(rec.Value, &g); err != nil {
			return err
		}
		if err := edit(&g); err != nil {
			return err
		}
		b, err := json.Marshal(g)
		if err != nil {
			return err
		}
		_, err = tx.Put(ctx, groupKey(sub, rg), b, rec.Version)
		return err
	})
	return g, err
}

// resourceFilter is the subset of ARM's $filter the generic lists accept.
type resourceFilter struct {
	resourceType, name, tagName, tagValue string
}

func parseResourceFilter(f string) (resourceFilter, error) {
	var out resourceFilter
	if strings.TrimSpace(f) == "" {
		return out, nil
	}
	bad := BadRequest("InvalidFilterInQueryString",
		"Invalid $filter '%s'. Supported: resourceType eq '...', name eq '...', tagName eq '...', tagValue eq '...', joined with 'and'.", trunc(f, 200))
	if len(f) > 1024 {
		return out, bad
	}
	for _, term := range splitAnd(f) {
		parts := strings.SplitN(strings.TrimSpace(term), " ", 3)
		if len(parts) != 3 || !strings.EqualFold(parts[1], "eq") {
			return out, bad
		}
		v := strings.TrimSpace(parts[2])
		if len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
			return out, bad
		}
		v = strings.ReplaceAll(v[1:len(v)-1], "''", "'")
		switch strings.ToLower(parts[0]) {
		case "resourcetype":
			out.resourceType = v
		case "name":
			out.name = v
		case "tagname":
			out.tagName = v
		case "tagvalue":
			out.tagValue = v
		default:
			return out, bad
		}
	}
	return out, nil
}

func splitAnd(f string) []string {
	var out []string
	low := strings.ToLower(f)
	for {
		i := strings.Index(low, " and ")
		if i < 0 {
			return append(out, f)
		}
		out = append(out, f[:i])
		f, low = f[i+5:], low[i+5:]
	}
}

func (rf resourceFilter) match(r GenericResource) bool {
	if rf.resourceType != "" && !strings.EqualFold(rf.resourceType, r.Type) {
		return false
	}
	if rf.name != "" && !strings.EqualFold(rf.name, r.Name) {
		return false
	}
	if rf.tagName != "" {
		found := false
		for k, v := range r.Tags {
			if strings.EqualFold(k, rf.tagName) && (rf.tagValue == "" || v == rf.tagValue) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// serveResourceList is the generic resource list of a subscription or group.
func (s *Server) serveResourceList(c *call, sub, rg string) error {
	ctx := c.r.Context()
	if err := onlyGet(c); err != nil {
		return err
	}
	if err := checkCoreVersion(resourcesAPIVersions, c.apiVersion); err != nil {
		return err
	}
	scope, action := SubscriptionResourceID(sub), "Microsoft.Resources/subscriptions/resources/read"
	if rg != "" {
		scope, action = ResourceGroupResourceID(sub, rg), "Microsoft.Resources/subscriptions/resourceGroups/resources/read"
	}
	if err := s.authorize(c, action, scope); err != nil {
		return err
	}
	if _, err := s.getSubscription(ctx, sub); err != nil {
		return err
	}
	if rg != "" {
		if _, err := s.getGroup(ctx, sub, rg); err != nil {
			return err
		}
	}
	filter, err := parseResourceFilter(queryGet(c.r.URL.Query(), "$filter"))
	if err != nil {
		return err
	}
	var all []GenericResource
	for _, p := range s.sortedProviders() {
		gr, ok := p.(GroupResources)
		if !ok {
			continue
		}
		items, err := gr.ListResources(ctx, sub, rg)
		if err != nil {
			return azerr.From(err)
		}
		for _, it := range items {
			if filter.match(it) {
				if it.Tags == nil {
					it.Tags = map[string]string{}
				}
				all = append(all, it)
			}
		}
	}
	page, err := Paginate(c.newRequest(s), all, func(r GenericResource) string { return strings.ToLower(r.ID) })
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, page)
	return nil
}

type providerInfo struct {
	ID                 string             `json:"id"`
	Namespace          string             `json:"namespace"`
	RegistrationState  string             `json:"registrationState"`
	RegistrationPolicy string             `json:"registrationPolicy"`
	ResourceTypes      []providerTypeInfo `json:"resourceTypes"`
}

type providerTypeInfo struct {
	ResourceType string   `json:"resourceType"`
	Locations    []string `json:"locations"`
	APIVersions  []string `json:"apiVersions"`
	Capabilities string   `json:"capabilities"`
}

// newestFirst orders api-versions as ARM lists them (clients take the
// first non-preview one).
func newestFirst(vs []string) []string {
	out := append([]string(nil), vs...)
	sort.Sort(sort.Reverse(sort.StringSlice(out)))
	return out
}

func (s *Server) describe(sub string, p Provider) providerInfo {
	info := providerInfo{Namespace: p.Namespace(), RegistrationState: "Registered", RegistrationPolicy: "RegistrationRequired"}
	info.ID = "/providers/" + p.Namespace()
	if sub != "" {
		info.ID = "/subscriptions/" + sub + info.ID
	}
	for _, t := range p.ResourceTypes() {
		locs := t.Locations
		if len(locs) == 0 {
			locs = s.opts.Locations
		}
		info.ResourceTypes = append(info.ResourceTypes, providerTypeInfo{ResourceType: t.Name,
			Locations: append([]string(nil), locs...), APIVersions: newestFirst(t.APIVersions), Capabilities: "None"})
	}
	return info
}

// coreProvider describes Microsoft.Resources itself in provider listings.
type coreProvider struct{}

func (coreProvider) Namespace() string { return "Microsoft.Resources" }
func (coreProvider) ResourceTypes() []ResourceType {
	return []ResourceType{
		{Name: "subscriptions", APIVersions: subscriptionsAPIVersions, Locations: []string{"global"}},
		{Name: "tenants", APIVersions: subscriptionsAPIVersions, Locations: []string{"global"}},
		{Name: "resourceGroups", APIVersions: resourcesAPIVersions},
		{Name: "resources", APIVersions: resourcesAPIVersions, Locations: []string{"global"}},
		{Name: "providers", APIVersions: resourcesAPIVersions, Locations: []string{"global"}},
		{Name: "locations", APIVersions: subscriptionsAPIVersions, Locations: []string{"global"}},
	}
}

func (s *Server) allProviders() []Provider {
	return append([]Provider{coreProvider{}}, s.sortedProviders()...)
}

// serveProviderInfo serves GET .../providers and .../providers/{ns}, at
// subscription (sub != "") or tenant level.
func (s *Server) serveProviderInfo(c *call, sub string, rest []string) error {
	if err := onlyGet(c); err != nil {
		return err
	}
	if err := checkCoreVersion(resourcesAPIVersions, c.apiVersion); err != nil {
		return err
	}
	scope := ResourceID{}
	if sub != "" {
		scope = SubscriptionResourceID(sub)
	}
	if err := s.authorize(c, "Microsoft.Resources/subscriptions/providers/read", scope); err != nil {
		return err
	}
	if sub != "" {
		if _, err := s.getSubscription(c.r.Context(), sub); err != nil {
			return err
		}
	}
	if len(rest) == 1 {
		for _, p := range s.allProviders() {
			if strings.EqualFold(p.Namespace(), rest[0]) {
				writeJSON(c.w, http.StatusOK, s.describe(sub, p))
				return nil
			}
		}
		return azerr.NotFound("InvalidResourceNamespace", "The resource namespace '%s' is invalid.", trunc(rest[0], 100))
	}
	var out []providerInfo
	for _, p := range s.allProviders() {
		out = append(out, s.describe(sub, p))
	}
	writeJSON(c.w, http.StatusOK, Page[providerInfo]{Value: out})
	return nil
}

// serveRegister always succeeds: keyhaven never answers
// MissingSubscriptionRegistration, every provider is registered everywhere.
func (s *Server) serveRegister(c *call, sub, ns string) error {
	if c.r.Method != http.MethodPost {
		return MethodNotAllowed(c.r.Method)
	}
	if err := checkCoreVersion(resourcesAPIVersions, c.apiVersion); err != nil {
		return err
	}
	var prov Provider
	for _, p := range s.allProviders() {
		if strings.EqualFold(p.Namespace(), ns) {
			prov = p
		}
	}
	if prov == nil {
		return azerr.NotFound("InvalidResourceNamespace", "The resource namespace '%s' is invalid.", trunc(ns, 100))
	}
	if err := s.authorize(c, prov.Namespace()+"/register/action", SubscriptionResourceID(sub)); err != nil {
		return err
	}
	if _, err := s.getSubscription(c.r.Context(), sub); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, s.describe(sub, prov))
	return nil
}

func (s *Server) serveOperationRoute(c *call, sub, ns, kind, id string) error {
	if err := onlyGet(c); err != nil {
		return err
	}
	op, err := s.loadOp(c.r.Context(), sub, id)
	if err != nil {
		return err
	}
	scope, err := ParseResourceID(op.ResourceID)
	if err != nil {
		scope = SubscriptionResourceID(sub)
	}
	if err := s.authorize(c, op.Namespace+"/locations/operationStatuses/read", scope); err != nil {
		return err
	}
	return s.serveOperation(c.w, c.r, sub, kind, id)
}
