package networkcloud

import (
	"context"
	"net/http"
	"regexp"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/providers/identityblock"
	"github.com/keyhaven/keyhaven/internal/store"
)

// nameRe is the name rule of cluster managers, clusters and storage
// appliances.
var nameRe = regexp.MustCompile(`^([a-zA-Z0-9][a-zA-Z0-9-_]{0,28}[a-zA-Z0-9])$`)

// machineNameRe is the bare-metal machine name rule.
var machineNameRe = regexp.MustCompile(`^([a-zA-Z0-9][a-zA-Z0-9]{0,62}[a-zA-Z0-9])$`)

func validateName(kind, name string) error {
	if !nameRe.MatchString(name) {
		return arm.InvalidResourceName("The %s name '%s' is invalid: it must be 2 to 30 characters of letters, digits, '-' and '_', starting and ending with a letter or digit (^([a-zA-Z0-9][a-zA-Z0-9-_]{0,28}[a-zA-Z0-9])$).",
			kind, clip(name, 64)).WithTarget("name")
	}
	return nil
}

func badProp(target, format string, args ...any) *azerr.Error {
	return arm.BadRequest("InvalidParameter", format, args...).WithTarget(target)
}

// checkResourceID validates an ARM resource ID property; wantType, when not
// empty, is the required type (case-insensitive).
func checkResourceID(target, v, wantType string) error {
	if len(v) > MaxIDPropertyLength {
		return badProp(target, "The property '%s' is longer than %d characters.", target, MaxIDPropertyLength)
	}
	id, err := arm.ParseResourceID(v)
	if err != nil || id.SubscriptionID == "" || len(id.Providers) == 0 || id.Name() == "" {
		return badProp(target, "The property '%s' must be a resource ID; '%s' is not.", target, clip(v, 200))
	}
	if wantType != "" && !strings.EqualFold(id.ResourceType(), wantType) {
		return badProp(target, "The property '%s' must be the ID of a %s resource; '%s' is a %s.", target, wantType, clip(v, 200), id.ResourceType())
	}
	return nil
}

type managerProps struct {
	AnalyticsWorkspaceID *string          `json:"analyticsWorkspaceId"`
	AvailabilityZones    []string         `json:"availabilityZones"`
	FabricControllerID   *string          `json:"fabricControllerId"`
	ManagedRG            *managedRGConfig `json:"managedResourceGroupConfiguration"`
	VMSize               *string          `json:"vmSize"`
}

type managerBody struct {
	Location   *string             `json:"location"`
	Tags       *map[string]string  `json:"tags"`
	Identity   *identityblock.Body `json:"identity"`
	Properties *managerProps       `json:"properties"`
}

// managerOut is ClusterManagerProperties as rendered.
type managerOut struct {
	AnalyticsWorkspaceID    string            `json:"analyticsWorkspaceId,omitempty"`
	AvailabilityZones       []string          `json:"availabilityZones,omitempty"`
	ClusterVersions         []any             `json:"clusterVersions"`
	DetailedStatus          string            `json:"detailedStatus"`
	DetailedStatusMessage   string            `json:"detailedStatusMessage"`
	FabricControllerID      string            `json:"fabricControllerId"`
	ManagedRG               managedRGConfig   `json:"managedResourceGroupConfiguration"`
	ManagerExtendedLocation *extendedLocation `json:"managerExtendedLocation,omitempty"`
	ProvisioningState       string            `json:"provisioningState"`
	VMSize                  string            `json:"vmSize,omitempty"`
}

func (p *Provider) renderManager(ctx context.Context, m *managerRecord) (arm.Resource, error) {
	blk, err := p.renderIdentity(ctx, m.id().String())
	if err != nil {
		return arm.Resource{}, azerr.From(err)
	}
	status, msg := "Available", "Cluster manager is up and running."
	switch m.ProvisioningState {
	case "Accepted", "Provisioning":
		status, msg = "Provisioning", "Cluster manager is being provisioned."
	case "Updating":
		status, msg = "Updating", "Cluster manager is being updated."
	}
	props := managerOut{
		AnalyticsWorkspaceID: m.AnalyticsWorkspaceID, AvailabilityZones: m.AvailabilityZones, ClusterVersions: []any{},
		DetailedStatus: status, DetailedStatusMessage: msg, FabricControllerID: m.FabricControllerID, ManagedRG: m.ManagedRG,
		ManagerExtendedLocation: &extendedLocation{Name: m.customLocationID(), Type: customLocationType},
		ProvisioningState:       m.ProvisioningState, VMSize: m.VMSize,
	}
	tags := m.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	res := arm.Resource{ID: m.id().String(), Name: m.Name, Type: ClusterManagerType, Location: m.Location, Tags: tags,
		SystemData: m.SystemData, Properties: props}
	if blk != nil {
		res.Identity = blk
	}
	return res, nil
}

func (p *Provider) serveManagers(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 || len(req.ID.Providers[0].Types) != 1 {
		return nil, azerr.NotFound("NotFound", "Cluster managers are top-level resources.")
	}
	if req.Kind == arm.KindCollection {
		return p.listManagers(ctx, req)
	}
	if req.Kind != arm.KindResource || req.ID.ResourceGroup == "" {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	switch req.Method {
	case http.MethodGet:
		return getRendered(ctx, p.st, req, p.renderManager)
	case http.MethodPut:
		return p.putManager(ctx, req)
	case http.MethodPatch:
		return p.patchManager(ctx, req)
	case http.MethodDelete:
		return p.deleteManager(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

func (p *Provider) listManagers(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.ID.SubscriptionID == "" {
		return nil, azerr.NotFound("NotFound", "Cluster managers are listed per subscription or resource group.")
	}
	return listRendered(ctx, p.st, req, typeManagers, p.renderManager, func(r arm.Resource) string { return r.ID })
}

func validateManagedRG(target string, c *managedRGConfig) error {
	if c == nil {
		return nil
	}
	if len(c.Name) > MaxManagedRGNameLen {
		return badProp(target+".name", "The managed resource group name must be at most %d characters.", MaxManagedRGNameLen)
	}
	if c.Name != "" && strings.ContainsAny(c.Name, "/\\?#%") {
		return badProp(target+".name", "The managed resource group name '%s' is invalid.", clip(c.Name, 80))
	}
	if len(c.Location) > 64 {
		return badProp(target+".location", "The managed resource group location is invalid.")
	}
	return nil
}

func (p *Provider) putManager(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name := req.ID.Name()
	if err := validateName("cluster manager", name); err != nil {
		return nil, err
	}
	var body managerBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	loc, err := req.RequireLocation(body.Location, ClusterManagerType)
	if err != nil {
		return nil, err
	}
	tags, err := arm.TagsOf(body.Tags)
	if err != nil {
		return nil, err
	}
	pr := body.Properties
	if pr == nil {
		return nil, badProp("properties", "The 'properties' object is required.")
	}
	if pr.FabricControllerID == nil || *pr.FabricControllerID == "" {
		return nil, badProp("properties.fabricControllerId", "The property 'properties.fabricControllerId' is required.")
	}
	if err := checkResourceID("properties.fabricControllerId", *pr.FabricControllerID, ""); err != nil {
		return nil, err
	}
	m := &managerRecord{Name: name, SubscriptionID: strings.ToLower(req.ID.SubscriptionID), ResourceGroup: req.ID.ResourceGroup,
		Location: loc, Tags: tags, FabricControllerID: *pr.FabricControllerID, ProvisioningState: "Accepted"}
	if pr.AnalyticsWorkspaceID != nil && *pr.AnalyticsWorkspaceID != "" {
		if err := checkResourceID("properties.analyticsWorkspaceId", *pr.AnalyticsWorkspaceID, "Microsoft.OperationalInsights/workspaces"); err != nil {
			return nil, err
		}
		m.AnalyticsWorkspaceID = *pr.AnalyticsWorkspaceID
	}
	if len(pr.AvailabilityZones) > 8 {
		return nil, badProp("properties.availabilityZones", "At most 8 availability zones may be given.")
	}
	for _, z := range pr.AvailabilityZones {
		if len(z) == 0 || len(z) > 10 {
			return nil, badProp("properties.availabilityZones", "Availability zone names are 1 to 10 characters.")
		}
	}
	m.AvailabilityZones = pr.AvailabilityZones
	if pr.VMSize != nil {
		if len(*pr.VMSize) > 64 {
			return nil, badProp("properties.vmSize", "The vmSize is longer than 64 characters.")
		}
		m.VMSize = *pr.VMSize
	}
	if err := validateManagedRG("properties.managedResourceGroupConfiguration", pr.ManagedRG); err != nil {
		return nil, err
	}
	if pr.ManagedRG != nil {
		m.ManagedRG = *pr.ManagedRG
	}
	if m.ManagedRG.Name == "" {
		m.ManagedRG.Name = clip(name, 40) + "-managed-rg"
		m.ManagedRG.Name = strings.TrimSuffix(m.ManagedRG.Name, "...")
	}
	if m.ManagedRG.Location == "" {
		m.ManagedRG.Location = loc
	}
	id := m.id()
	var existing *managerRecord
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := store.GetJSON[managerRecord](ctx, tx, keyOf(id))
		existing = nil
		switch {
		case isNotFound(err):
			m.SystemData = arm.NewSystemData(req.Principal, req.Now)
			_, err := store.PutJSON(ctx, tx, keyOf(id), m, store.Absent)
			return err
		case err != nil:
			return err
		}
		existing = cur
		if cur.Location != loc {
			return azerr.New(http.StatusConflict, "InvalidResourceLocation",
				"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
				cur.Name, cur.Location, cur.ResourceGroup, loc)
		}
		// Create-only properties keep their first value, as in Azure.
		m.FabricControllerID, m.ManagedRG = cur.FabricControllerID, cur.ManagedRG
		m.ProvisioningState = "Updating"
		m.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		_, err = store.PutJSON(ctx, tx, keyOf(id), m, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if err := p.setIdentity(ctx, req, id.SubscriptionID, id.String(), body.Identity, existing == nil); err != nil {
		if existing == nil {
			// The manager was never usable; do not leave it behind.
			_ = p.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, keyOf(id), store.Any) })
		}
		return nil, err
	}
	cur, _, err := store.GetJSON[managerRecord](ctx, p.st, keyOf(id))
	if err != nil {
		return nil, storeErr(err)
	}
	initial, err := p.renderManager(ctx, cur)
	if err != nil {
		return nil, err
	}
	return finishPut(ctx, req, existing == nil, initial, cur.Location, func(ctx context.Context) (any, error) {
		return p.settleManager(ctx, id)
	})
}

// finishPut answers a long-running PUT as ARM does: 201 (create) or 200
// (replace) with the resource and Azure-AsyncOperation; settle marks it
// Succeeded (in the background unless the server runs operations
// synchronously).
func finishPut(ctx context.Context, req *arm.Request, created bool, initial any, loc string,
	settle func(context.Context) (any, error)) (*arm.Response, error) {
	resp, err := req.StartOperation(ctx, arm.OperationSpec{Location: loc, Status: http.StatusCreated, Body: initial},
		func(ctx context.Context) (any, error) { return settle(ctx) })
	if err != nil {
		return nil, err
	}
	if !created {
		resp.Status = http.StatusOK
		resp.Body = initial
	}
	return resp, nil
}

// settleManager completes a manager PUT.
func (p *Provider) settleManager(ctx context.Context, id arm.ResourceID) (any, error) {
	var out *managerRecord
	err := p.st.Update(ctx, func(tx store.Tx) error {
		m, ver, err := store.GetJSON[managerRecord](ctx, tx, keyOf(id))
		if err != nil {
			return err
		}
		m.ProvisioningState = "Succeeded"
		out = m
		_, err = store.PutJSON(ctx, tx, keyOf(id), m, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return p.renderManager(ctx, out)
}

// patchManager updates identity and tags (ClusterManagerPatchParameters);
// a given identity replaces the whole set.
func (p *Provider) patchManager(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body managerBody
	if len(req.Body) > 0 {
		if err := arm.DecodeJSON(req.Body, &body); err != nil {
			return nil, err
		}
	}
	if body.Tags != nil {
		if err := arm.ValidateTags(*body.Tags); err != nil {
			return nil, err
		}
	}
	m, _, err := store.GetJSON[managerRecord](ctx, p.st, keyOf(req.ID))
	if isNotFound(err) {
		return nil, arm.ResourceNotFound(req.ID)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if err := p.setIdentity(ctx, req, req.ID.SubscriptionID, m.id().String(), body.Identity, false); err != nil {
		return nil, err
	}
	err = p.st.Update(ctx, func(tx store.Tx) error {
		cur, ver, err := store.GetJSON[managerRecord](ctx, tx, keyOf(req.ID))
		if isNotFound(err) {
			return arm.ResourceNotFound(req.ID)
		}
		if err != nil {
			return err
		}
		if body.Tags != nil {
			cur.Tags = *body.Tags
		}
		cur.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
		m = cur
		_, err = store.PutJSON(ctx, tx, keyOf(req.ID), cur, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	res, err := p.renderManager(ctx, m)
	if err != nil {
		return nil, err
	}
	return arm.OK(res), nil
}

func (p *Provider) deleteManager(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	m, _, err := store.GetJSON[managerRecord](ctx, p.st, keyOf(req.ID))
	if isNotFound(err) {
		return arm.NoContent(), nil
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	id := m.id()
	cs, err := listJSON[clusterRecord](ctx, p.st, subPrefix(typeClusters, id.SubscriptionID))
	if err != nil {
		return nil, azerr.Internal(err)
	}
	for _, c := range cs {
		if strings.EqualFold(c.ClusterManagerID, id.String()) {
			return nil, azerr.New(http.StatusConflict, "ClusterManagerInUse",
				"The cluster manager '%s' still manages cluster '%s'; delete the cluster first.", m.Name, c.id().String())
		}
	}
	return req.StartOperation(ctx, arm.OperationSpec{Location: m.Location}, func(ctx context.Context) (any, error) {
		return nil, p.removeManager(ctx, id)
	})
}

// removeManager forgets a manager and its system-assigned identity.
func (p *Provider) removeManager(ctx context.Context, id arm.ResourceID) error {
	if err := p.ids.RemoveResource(ctx, id.String()); err != nil {
		return err
	}
	return p.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(ctx, keyOf(id), store.Any) })
}

// findManager resolves a cluster's extendedLocation name (the manager's
// managerExtendedLocation, or keyhaven's shortcut: the manager's resource
// ID) to the manager, within the subscription.
func (p *Provider) findManager(ctx context.Context, sub, ref string) (*managerRecord, error) {
	if id, err := arm.ParseResourceID(ref); err == nil && strings.EqualFold(id.ResourceType(), ClusterManagerType) && id.ResourceGroup != "" {
		m, _, err := store.GetJSON[managerRecord](ctx, p.st, keyOf(id))
		if err == nil {
			return m, nil
		}
		if !isNotFound(err) {
			return nil, err
		}
		return nil, nil
	}
	ms, err := listJSON[managerRecord](ctx, p.st, subPrefix(typeManagers, sub))
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if strings.EqualFold(m.customLocationID(), ref) {
			return m, nil
		}
	}
	return nil, nil
}
