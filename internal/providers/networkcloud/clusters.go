package networkcloud

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/providers/identityblock"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
)

type clusterProps struct {
	AggregatorOrSingleRackDefinition *rackDefinition   `json:"aggregatorOrSingleRackDefinition"`
	ComputeRackDefinitions           *[]rackDefinition `json:"computeRackDefinitions"`
	AnalyticsWorkspaceID             *string           `json:"analyticsWorkspaceId"`
	ClusterLocation                  *string           `json:"clusterLocation"`
	ClusterType                      *string           `json:"clusterType"`
	ClusterVersion                   *string           `json:"clusterVersion"`
	NetworkFabricID                  *string           `json:"networkFabricId"`
	ManagedRG                        *managedRGConfig  `json:"managedResourceGroupConfiguration"`
	// ClusterManagerID is read-only in Azure (the manager follows from
	// extendedLocation); keyhaven also accepts it on create.
	ClusterManagerID      *string         `json:"clusterManagerId"`
	SecretArchive         json.RawMessage `json:"secretArchive"`
	SecretArchiveSettings json.RawMessage `json:"secretArchiveSettings"`
	EncryptionPublicKey   *string         `json:"encryptionPublicKey"`
}

type clusterBody struct {
	Location         *string             `json:"location"`
	Tags             *map[string]string  `json:"tags"`
	Identity         *identityblock.Body `json:"identity"`
	ExtendedLocation *extendedLocation   `json:"extendedLocation"`
	Properties       *clusterProps       `json:"properties"`
}

// clusterOut is ClusterProperties as rendered (passwords never appear).
type clusterOut struct {
	ActionStates                     []actionState          `json:"actionStates,omitempty"`
	AggregatorOrSingleRackDefinition rackDefinition         `json:"aggregatorOrSingleRackDefinition"`
	AnalyticsWorkspaceID             string                 `json:"analyticsWorkspaceId,omitempty"`
	ClusterLocation                  string                 `json:"clusterLocation,omitempty"`
	ClusterManagerID                 string                 `json:"clusterManagerId,omitempty"`
	ClusterType                      string                 `json:"clusterType"`
	ClusterVersion                   string                 `json:"clusterVersion"`
	ComputeRackDefinitions           []rackDefinition       `json:"computeRackDefinitions"`
	DetailedStatus                   string                 `json:"detailedStatus"`
	DetailedStatusMessage            string                 `json:"detailedStatusMessage"`
	EncryptionPublicKey              string                 `json:"encryptionPublicKey,omitempty"`
	ManagedCredentials               []string               `json:"managedCredentials"`
	ManagedRG                        *managedRGConfig       `json:"managedResourceGroupConfiguration,omitempty"`
	NetworkFabricID                  string                 `json:"networkFabricId"`
	ProvisioningState                string                 `json:"provisioningState"`
	SecretArchive                    *secretArchive         `json:"secretArchive,omitempty"`
	SecretArchiveSettings            *secretArchiveSettings `json:"secretArchiveSettings,omitempty"`
	// SecretRotationStatus (keyhaven) covers the cluster-wide credentials.
	SecretRotationStatus []rotation.Status `json:"secretRotationStatus,omitempty"`
}

// clusterResource is the cluster envelope: ARM's plus extendedLocation.
type clusterResource struct {
	arm.Resource
	ExtendedLocation extendedLocation `json:"extendedLocation"`
}

// MarshalJSON flattens the embedded envelope next to extendedLocation.
func (r clusterResource) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(r.Resource)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	el, err := json.Marshal(r.ExtendedLocation)
	if err != nil {
		return nil, err
	}
	m["extendedLocation"] = el
	return json.Marshal(m)
}

// managedKinds lists the credential kinds a cluster's definition yields.
func managedKinds(c *clusterRecord) []string {
	var bmc, sa bool
	for _, r := range c.racks() {
		bmc = bmc || len(r.BareMetalMachineConfigurationData) > 0
		sa = sa || len(r.StorageApplianceConfigurationData) > 0
	}
	out := []string{}
	for _, k := range AllKinds {
		switch k {
		case rotation.KindBMC, rotation.KindConsoleUser:
			if !bmc {
				continue
			}
		case rotation.KindStorageAdmin:
			if !sa {
				continue
			}
		}
		out = append(out, string(k))
	}
	return out
}

// detailedStatus combines deployment with the rotation engine's view.
func (p *Provider) detailedStatus(ctx context.Context, c *clusterRecord) (string, string) {
	switch c.DeployState {
	case "", statusPendingDeployment:
		return statusPendingDeployment, "The cluster is waiting to be deployed."
	case statusDeploying:
		return statusDeploying, "The cluster is being deployed."
	case statusFailed:
		return statusFailed, "Deployment failed: " + c.DeployMessage
	}
	e := p.eng()
	if e == nil {
		return statusRunning, "The cluster is up and running."
	}
	st, err := e.ClusterState(ctx, c.id().String())
	if err != nil {
		p.log.Warn("networkcloud: rotation state unavailable", "cluster", c.id().String(), "err", err)
		return statusRunning, "The cluster is up and running; credential rotation state is unavailable."
	}
	if !st.Healthy {
		return statusDegraded, "Credential rotation: " + st.Code + ": " + st.Message
	}
	return statusRunning, "The cluster is up and running."
}

func (p *Provider) renderClusterEnvelope(ctx context.Context, c *clusterRecord) (clusterResource, error) {
	id := c.id().String()
	blk, err := p.renderIdentity(ctx, id)
	if err != nil {
		return clusterResource{}, azerr.From(err)
	}
	ds, dm := p.detailedStatus(ctx, c)
	out := clusterOut{
		ActionStates: c.ActionStates, AggregatorOrSingleRackDefinition: c.AggregatorOrSingleRack,
		AnalyticsWorkspaceID: c.AnalyticsWorkspaceID, ClusterLocation: c.ClusterLocation, ClusterManagerID: c.ClusterManagerID,
		ClusterType: c.ClusterType, ClusterVersion: c.ClusterVersion, ComputeRackDefinitions: c.ComputeRacks,
		DetailedStatus: ds, DetailedStatusMessage: dm, EncryptionPublicKey: c.EncryptionPublicKey,
		ManagedCredentials: managedKinds(c), ManagedRG: c.ManagedRG, NetworkFabricID: c.NetworkFabricID,
		ProvisioningState: c.ProvisioningState, SecretArchive: c.SecretArchive, SecretArchiveSettings: c.SecretArchiveSettings,
	}
	if out.ComputeRackDefinitions == nil {
		out.ComputeRackDefinitions = []rackDefinition{}
	}
	if c.DeployState == statusRunning {
		out.SecretRotationStatus = p.rotationStatus(ctx, id)
	}
	tags := c.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	res := arm.Resource{ID: id, Name: c.Name, Type: ClusterType, Location: c.Location, Tags: tags, SystemData: c.SystemData, Properties: out}
	if blk != nil {
		res.Identity = blk
	}
	return clusterResource{Resource: res, ExtendedLocation: c.ExtendedLocation}, nil
}

// rotationStatus asks the engine for an owner's secretRotationStatus; a
// failure renders none rather than failing the read.
func (p *Provider) rotationStatus(ctx context.Context, ownerID string) []rotation.Status {
	e := p.eng()
	if e == nil {
		return nil
	}
	st, err := e.Status(ctx, ownerID)
	if err != nil {
		p.log.Warn("networkcloud: rotation status unavailable", "owner", ownerID, "err", err)
		return nil
	}
	return st
}

func (p *Provider) serveClusters(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 {
		return nil, azerr.NotFound("NotFound", "Clusters are not extension resources.")
	}
	if req.Kind == arm.KindCollection {
		return p.listClusters(ctx, req)
	}
	if req.ID.ResourceGroup == "" || len(req.Target.Providers[0].Types) != 1 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	if req.Kind == arm.KindAction {
		switch strings.ToLower(req.ActionName) {
		case "deploy":
			return p.deployCluster(ctx, req)
		case "rotatecredential":
			return p.rotateCredential(ctx, req)
		}
		return nil, azerr.NotFound("NotFound", "The cluster action '%s' is not served.", clip(req.ActionName, 64))
	}
	switch req.Method {
	case http.MethodGet:
		return getRendered(ctx, p.st, req, p.renderClusterEnvelope)
	case http.MethodPut:
		return p.putCluster(ctx, req)
	case http.MethodPatch:
		return p.patchCluster(ctx, req)
	case http.MethodDelete:
		return p.deleteCluster(ctx, req)
	}
	return nil, arm.MethodNotAllowed(req.Method)
}

func (p *Provider) listClusters(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.ID.SubscriptionID == "" {
		return nil, azerr.NotFound("NotFound", "Clusters are listed per subscription or resource group.")
	}
	return listRendered(ctx, p.st, req, typeClusters, p.renderClusterEnvelope, func(r clusterResource) string { return r.ID })
}

func present(raw json.RawMessage) bool { return len(raw) > 0 }
func isNull(raw json.RawMessage) bool  { return strings.TrimSpace(string(raw)) == "null" }

// applyArchive applies secretArchive/secretArchiveSettings/encryptionPublicKey
// of pr to c (PUT replaces, PATCH merges secretArchive) and reports whether
// the archive configuration was touched.
func (p *Provider) applyArchive(ctx context.Context, c *clusterRecord, pr *clusterProps, patch bool) (bool, error) {
	touched := false
	if present(pr.SecretArchive) {
		touched = true
		if isNull(pr.SecretArchive) {
			c.SecretArchive = nil
		} else {
			cur := c.SecretArchive
			if !patch {
				cur = nil
			}
			sa, err := parseSecretArchive(pr.SecretArchive, cur)
			if err != nil {
				return false, err
			}
			if err := p.checkVaultExists(ctx, sa.KeyVaultID); err != nil {
				return false, err
			}
			c.SecretArchive = sa
		}
	} else if !patch {
		c.SecretArchive = nil
	}
	if present(pr.SecretArchiveSettings) {
		touched = true
		if isNull(pr.SecretArchiveSettings) {
			c.SecretArchiveSettings = nil
		} else {
			s, err := parseSettings(pr.SecretArchiveSettings)
			if err != nil {
				return false, err
			}
			c.SecretArchiveSettings = s
		}
	} else if !patch {
		c.SecretArchiveSettings = nil
	}
	if pr.EncryptionPublicKey != nil {
		touched = true
		if *pr.EncryptionPublicKey != "" {
			if err := checkPublicKey("properties.encryptionPublicKey", *pr.EncryptionPublicKey); err != nil {
				return false, err
			}
		}
		c.EncryptionPublicKey = *pr.EncryptionPublicKey
	} else if !patch {
		c.EncryptionPublicKey = ""
	}
	return touched, nil
}

// identityFor returns the identity plan after the request: the request's
// identity block when given, else the resource's current one.
func (p *Provider) identityFor(ctx context.Context, body *identityblock.Body, id string, exists bool) (identityPlan, error) {
	if body != nil {
		return planFromSpec(body.Spec())
	}
	if !exists {
		return identityPlan{user: map[string]string{}}, nil
	}
	b, err := p.ids.GetResourceIdentity(ctx, id)
	if err != nil {
		return identityPlan{}, azerr.From(err)
	}
	return planFromBlock(b), nil
}

func (p *Provider) putCluster(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	name := req.ID.Name()
	if err := validateName("cluster", name); err != nil {
		return nil, err
	}
	var body clusterBody
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	loc, err := req.RequireLocation(body.Location, ClusterType)
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
	id := req.ID
	cur, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(id))
	exists := err == nil
	if err != nil && !isNotFound(err) {
		return nil, azerr.Internal(err)
	}
	if exists && cur.Location != loc {
		return nil, azerr.New(http.StatusConflict, "InvalidResourceLocation",
			"The resource '%s' already exists in location '%s' in resource group '%s'. A resource with the same name cannot be created in location '%s'. Please select a new resource name.",
			cur.Name, cur.Location, cur.ResourceGroup, loc)
	}
	c := &clusterRecord{Name: name, SubscriptionID: strings.ToLower(id.SubscriptionID), ResourceGroup: id.ResourceGroup,
		Location: loc, Tags: tags, ProvisioningState: "Accepted", DeployState: statusPendingDeployment}
	if exists {
		c.ExtendedLocation, c.ClusterManagerID = cur.ExtendedLocation, cur.ClusterManagerID
		c.DeployState, c.DeployMessage, c.ActionStates = cur.DeployState, cur.DeployMessage, cur.ActionStates
		c.ProvisioningState = "Updating"
		c.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
	} else {
		if err := p.linkManager(ctx, c, body.ExtendedLocation, pr.ClusterManagerID); err != nil {
			return nil, err
		}
		c.SystemData = arm.NewSystemData(req.Principal, req.Now)
	}
	if pr.ClusterType == nil || *pr.ClusterType == "" {
		return nil, badProp("properties.clusterType", "The property 'properties.clusterType' is required: SingleRack or MultiRack.")
	}
	switch strings.ToLower(*pr.ClusterType) {
	case "singlerack":
		c.ClusterType = "SingleRack"
	case "multirack":
		c.ClusterType = "MultiRack"
	default:
		return nil, badProp("properties.clusterType", "The cluster type '%s' is not supported: use SingleRack or MultiRack.", clip(*pr.ClusterType, 40))
	}
	if pr.ClusterVersion == nil || *pr.ClusterVersion == "" || len(*pr.ClusterVersion) > MaxClusterVersionLen {
		return nil, badProp("properties.clusterVersion", "The property 'properties.clusterVersion' is required (at most %d characters).", MaxClusterVersionLen)
	}
	c.ClusterVersion = *pr.ClusterVersion
	if pr.NetworkFabricID == nil || *pr.NetworkFabricID == "" {
		return nil, badProp("properties.networkFabricId", "The property 'properties.networkFabricId' is required.")
	}
	if err := checkResourceID("properties.networkFabricId", *pr.NetworkFabricID, ""); err != nil {
		return nil, err
	}
	c.NetworkFabricID = *pr.NetworkFabricID
	if exists {
		c.NetworkFabricID = cur.NetworkFabricID // create-only
	}
	if pr.AnalyticsWorkspaceID != nil && *pr.AnalyticsWorkspaceID != "" {
		if err := checkResourceID("properties.analyticsWorkspaceId", *pr.AnalyticsWorkspaceID, "Microsoft.OperationalInsights/workspaces"); err != nil {
			return nil, err
		}
		c.AnalyticsWorkspaceID = *pr.AnalyticsWorkspaceID
	}
	if pr.ClusterLocation != nil {
		if err := checkText("properties.clusterLocation", *pr.ClusterLocation, MaxFreeTextLength); err != nil {
			return nil, err
		}
		c.ClusterLocation = *pr.ClusterLocation
	}
	if err := validateManagedRG("properties.managedResourceGroupConfiguration", pr.ManagedRG); err != nil {
		return nil, err
	}
	c.ManagedRG = pr.ManagedRG
	if pr.AggregatorOrSingleRackDefinition == nil {
		return nil, badProp("properties.aggregatorOrSingleRackDefinition", "The property 'properties.aggregatorOrSingleRackDefinition' is required.")
	}
	c.AggregatorOrSingleRack = *pr.AggregatorOrSingleRackDefinition
	if pr.ComputeRackDefinitions != nil {
		c.ComputeRacks = *pr.ComputeRackDefinitions
	}
	pending, err := validateRacks(c)
	if err != nil {
		return nil, err
	}
	if exists && deployedOrDeploying(cur) && !sameRacks(cur, c) {
		return nil, rackChangeAfterDeploy()
	}
	if _, err := p.applyArchive(ctx, c, pr, false); err != nil {
		return nil, err
	}
	pl, err := p.identityFor(ctx, body.Identity, id.String(), exists)
	if err != nil {
		return nil, err
	}
	if c.SecretArchiveSettings != nil {
		if err := checkSettingsIdentity(c.SecretArchiveSettings, pl); err != nil {
			return nil, err
		}
	}
	if len(pending) > 0 {
		if _, err := p.needEngine(); err != nil {
			return nil, err
		}
	}
	if err := p.setIdentity(ctx, req, id.SubscriptionID, id.String(), body.Identity, !exists); err != nil {
		return nil, err
	}
	err = p.st.Update(ctx, func(tx store.Tx) error {
		_, ver, err := store.GetJSON[clusterRecord](ctx, tx, keyOf(id))
		switch {
		case isNotFound(err):
			if exists {
				return azerr.New(http.StatusConflict, "Conflict", "The cluster was deleted meanwhile; retry the operation.")
			}
			_, err := store.PutJSON(ctx, tx, keyOf(id), c, store.Absent)
			return err
		case err != nil:
			return err
		case !exists:
			return azerr.New(http.StatusConflict, "Conflict", "The cluster was created by another request meanwhile; retry the operation.")
		}
		_, err = store.PutJSON(ctx, tx, keyOf(id), c, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if !deployedOrDeploying(c) {
		if err := p.registerInitial(ctx, id.String(), pending); err != nil {
			return nil, err
		}
	}
	initial, err := p.renderClusterEnvelope(ctx, c)
	if err != nil {
		return nil, err
	}
	return finishPut(ctx, req, !exists, initial, c.Location, func(ctx context.Context) (any, error) {
		return p.settleCluster(ctx, id)
	})
}

func deployedOrDeploying(c *clusterRecord) bool {
	return c.DeployState == statusRunning || c.DeployState == statusDeploying
}

func rackChangeAfterDeploy() error {
	return azerr.New(http.StatusConflict, "ClusterAlreadyDeployed",
		"The rack definitions of a deployed cluster cannot be changed in keyhaven; delete and recreate the cluster to change its machines.").
		WithTarget("properties.aggregatorOrSingleRackDefinition")
}

// sameRacks compares rack definitions (passwords are already blanked).
func sameRacks(a, b *clusterRecord) bool {
	x, _ := json.Marshal(a.racks())
	y, _ := json.Marshal(b.racks())
	return string(x) == string(y)
}

// registerInitial hands the write-only passwords of an undeployed cluster
// to the engine: its target set is replaced (machines may have gone), each
// with the password as Initial, which the engine seals.
func (p *Provider) registerInitial(ctx context.Context, clusterID string, pending []pendingTarget) error {
	e := p.eng()
	if e == nil {
		return nil // nothing to hand over (checked before when there is)
	}
	if err := e.RemoveCluster(ctx, clusterID); err != nil {
		return azerr.From(err)
	}
	if len(pending) == 0 {
		return nil
	}
	ts := make([]rotation.Target, 0, len(pending))
	for _, pt := range pending {
		t := pt.target
		t.Initial = pt.password
		ts = append(ts, t)
	}
	if err := e.UpsertTargets(ctx, ts); err != nil {
		return azerr.From(err)
	}
	return nil
}

// linkManager sets a new cluster's manager from its extendedLocation (the
// manager's managerExtendedLocation, or the manager's resource ID) or
// keyhaven's properties.clusterManagerId.
func (p *Provider) linkManager(ctx context.Context, c *clusterRecord, el *extendedLocation, cmID *string) error {
	ref, target := "", ""
	switch {
	case el != nil && el.Name != "":
		ref, target = el.Name, "extendedLocation.name"
		if el.Type != "" && !strings.EqualFold(el.Type, customLocationType) {
			return badProp("extendedLocation.type", "The extendedLocation type must be CustomLocation.")
		}
	case cmID != nil && *cmID != "":
		ref, target = *cmID, "properties.clusterManagerId"
		if err := checkResourceID(target, ref, ClusterManagerType); err != nil {
			return err
		}
	default:
		return badProp("extendedLocation",
			"The property 'extendedLocation' is required: name the cluster manager's managerExtendedLocation (or, in keyhaven, its resource ID).")
	}
	if len(ref) > MaxIDPropertyLength {
		return badProp(target, "The property '%s' is too long.", target)
	}
	m, err := p.findManager(ctx, c.SubscriptionID, ref)
	if err != nil {
		return azerr.Internal(err)
	}
	if m == nil {
		return arm.BadRequest("ClusterManagerNotFound",
			"No cluster manager in subscription '%s' matches '%s'.", c.SubscriptionID, clip(ref, 300)).WithTarget(target)
	}
	c.ClusterManagerID = m.id().String()
	c.ExtendedLocation = extendedLocation{Name: m.customLocationID(), Type: customLocationType}
	return nil
}

// settleCluster completes a cluster PUT or PATCH.
func (p *Provider) settleCluster(ctx context.Context, id arm.ResourceID) (any, error) {
	var out *clusterRecord
	err := p.st.Update(ctx, func(tx store.Tx) error {
		c, ver, err := store.GetJSON[clusterRecord](ctx, tx, keyOf(id))
		if err != nil {
			return err
		}
		c.ProvisioningState = "Succeeded"
		out = c
		_, err = store.PutJSON(ctx, tx, keyOf(id), c, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return p.renderClusterEnvelope(ctx, out)
}

// patchCluster applies ClusterPatchParameters: tags, identity (replacing
// the set) and the patchable properties. Long-running, as in Azure.
func (p *Provider) patchCluster(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body clusterBody
	if len(strings.TrimSpace(string(req.Body))) > 0 {
		if err := arm.DecodeJSON(req.Body, &body); err != nil {
			return nil, err
		}
	}
	if body.Tags != nil {
		if err := arm.ValidateTags(*body.Tags); err != nil {
			return nil, err
		}
	}
	id := req.ID
	cur, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(id))
	if isNotFound(err) {
		return nil, arm.ResourceNotFound(id)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	c := *cur
	pr := body.Properties
	if pr == nil {
		pr = &clusterProps{}
	}
	for _, ro := range []struct {
		set  bool
		name string
	}{{pr.ClusterType != nil, "clusterType"}, {pr.NetworkFabricID != nil, "networkFabricId"}, {pr.AnalyticsWorkspaceID != nil, "analyticsWorkspaceId"},
		{pr.ClusterManagerID != nil, "clusterManagerId"}, {pr.ManagedRG != nil, "managedResourceGroupConfiguration"}, {body.ExtendedLocation != nil, "extendedLocation"}} {
		if ro.set {
			return nil, badProp("properties."+ro.name, "The property '%s' cannot be changed by PATCH.", ro.name)
		}
	}
	if pr.ClusterVersion != nil {
		return nil, badProp("properties.clusterVersion", "The cluster version is changed with the updateVersion action, not PATCH.")
	}
	if pr.ClusterLocation != nil {
		if err := checkText("properties.clusterLocation", *pr.ClusterLocation, MaxFreeTextLength); err != nil {
			return nil, err
		}
		c.ClusterLocation = *pr.ClusterLocation
	}
	var pending []pendingTarget
	racksChanged := pr.AggregatorOrSingleRackDefinition != nil || pr.ComputeRackDefinitions != nil
	if racksChanged {
		if pr.AggregatorOrSingleRackDefinition != nil {
			c.AggregatorOrSingleRack = *pr.AggregatorOrSingleRackDefinition
		}
		if pr.ComputeRackDefinitions != nil {
			c.ComputeRacks = *pr.ComputeRackDefinitions
		}
		if pending, err = validateRacks(&c); err != nil {
			return nil, err
		}
		if deployedOrDeploying(cur) && !sameRacks(cur, &c) {
			return nil, rackChangeAfterDeploy()
		}
		if _, err := p.needEngine(); err != nil {
			return nil, err
		}
	}
	archiveTouched, err := p.applyArchive(ctx, &c, pr, true)
	if err != nil {
		return nil, err
	}
	pl, err := p.identityFor(ctx, body.Identity, id.String(), true)
	if err != nil {
		return nil, err
	}
	if c.SecretArchiveSettings != nil && (archiveTouched || body.Identity != nil) {
		if err := checkSettingsIdentity(c.SecretArchiveSettings, pl); err != nil {
			return nil, err
		}
	}
	if err := p.setIdentity(ctx, req, id.SubscriptionID, id.String(), body.Identity, false); err != nil {
		return nil, err
	}
	if body.Tags != nil {
		c.Tags = *body.Tags
	}
	c.ProvisioningState = "Updating"
	c.SystemData = cur.SystemData.Touched(req.Principal, req.Now)
	err = p.st.Update(ctx, func(tx store.Tx) error {
		now, ver, err := store.GetJSON[clusterRecord](ctx, tx, keyOf(id))
		if isNotFound(err) {
			return arm.ResourceNotFound(id)
		}
		if err != nil {
			return err
		}
		// Deploy state moves on its own; keep what it is now.
		c.DeployState, c.DeployMessage, c.ActionStates = now.DeployState, now.DeployMessage, now.ActionStates
		_, err = store.PutJSON(ctx, tx, keyOf(id), &c, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	if racksChanged && !deployedOrDeploying(&c) {
		if err := p.registerInitial(ctx, id.String(), pending); err != nil {
			return nil, err
		}
	}
	initial, err := p.renderClusterEnvelope(ctx, &c)
	if err != nil {
		return nil, err
	}
	resp, err := req.StartOperation(ctx, arm.OperationSpec{Location: c.Location}, func(ctx context.Context) (any, error) {
		return p.settleCluster(ctx, id)
	})
	if err != nil {
		return nil, err
	}
	resp.Status, resp.Body = http.StatusOK, initial
	return resp, nil
}

func (p *Provider) deleteCluster(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	c, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(req.ID))
	if isNotFound(err) {
		return arm.NoContent(), nil
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if c.DeployState == statusDeploying {
		return nil, azerr.New(http.StatusConflict, "ClusterDeploying", "The cluster '%s' is being deployed; delete it once deployment ends.", c.Name)
	}
	id := c.id()
	return req.StartOperation(ctx, arm.OperationSpec{Location: c.Location}, func(ctx context.Context) (any, error) {
		return nil, p.removeCluster(ctx, id)
	})
}

// removeCluster deletes a cluster: the engine stops managing its
// credentials first (so nothing rotates a machine that is going), then its
// machines, appliances, identities and record go.
func (p *Provider) removeCluster(ctx context.Context, id arm.ResourceID) error {
	if e := p.eng(); e != nil {
		if err := e.RemoveCluster(ctx, id.String()); err != nil {
			return azerr.From(err)
		}
	}
	ms, err := listJSON[machineRecord](ctx, p.st, rgPrefix(typeMachines, id.SubscriptionID, id.ResourceGroup))
	if err != nil {
		return err
	}
	as, err := listJSON[applianceRecord](ctx, p.st, rgPrefix(typeAppliances, id.SubscriptionID, id.ResourceGroup))
	if err != nil {
		return err
	}
	if err := p.ids.RemoveResource(ctx, id.String()); err != nil {
		return err
	}
	return p.st.Update(ctx, func(tx store.Tx) error {
		for _, m := range ms {
			if strings.EqualFold(m.ClusterID, id.String()) {
				if err := tx.Delete(ctx, keyOf(m.id()), store.Any); err != nil {
					return err
				}
			}
		}
		for _, a := range as {
			if strings.EqualFold(a.ClusterID, id.String()) {
				if err := tx.Delete(ctx, keyOf(a.id()), store.Any); err != nil {
					return err
				}
			}
		}
		return tx.Delete(ctx, keyOf(id), store.Any)
	})
}
