package networkcloud

import (
	"context"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
)

// childResource is a machine or appliance envelope: ARM's plus
// extendedLocation.
type childResource = clusterResource

type bmcCredentialsOut struct {
	Username string `json:"username"`
}

// machineOut is BareMetalMachineProperties as rendered.
type machineOut struct {
	ActionStates          []actionState     `json:"actionStates,omitempty"`
	BMCConnectionString   string            `json:"bmcConnectionString"`
	BMCCredentials        bmcCredentialsOut `json:"bmcCredentials"`
	BMCMacAddress         string            `json:"bmcMacAddress"`
	BootMacAddress        string            `json:"bootMacAddress"`
	ClusterID             string            `json:"clusterId"`
	CordonStatus          string            `json:"cordonStatus"`
	DetailedStatus        string            `json:"detailedStatus"`
	DetailedStatusMessage string            `json:"detailedStatusMessage"`
	MachineDetails        string            `json:"machineDetails"`
	MachineName           string            `json:"machineName"`
	PowerState            string            `json:"powerState"`
	ProvisioningState     string            `json:"provisioningState"`
	RackSlot              int64             `json:"rackSlot"`
	ReadyState            string            `json:"readyState"`
	SecretRotationStatus  []rotation.Status `json:"secretRotationStatus"`
	SerialNumber          string            `json:"serialNumber"`
}

// applianceOut is StorageApplianceProperties as rendered, with keyhaven's
// adminEndpoint.
type applianceOut struct {
	AdministratorCredentials bmcCredentialsOut `json:"administratorCredentials"`
	AdminEndpoint            string            `json:"adminEndpoint,omitempty"`
	ClusterID                string            `json:"clusterId"`
	DetailedStatus           string            `json:"detailedStatus"`
	DetailedStatusMessage    string            `json:"detailedStatusMessage"`
	ProvisioningState        string            `json:"provisioningState"`
	RackSlot                 int64             `json:"rackSlot"`
	SecretRotationStatus     []rotation.Status `json:"secretRotationStatus"`
	SerialNumber             string            `json:"serialNumber"`
}

func (p *Provider) renderMachine(ctx context.Context, m *machineRecord) childResource {
	ready, msg := "True", "The machine is provisioned and ready."
	if m.CordonStatus == cordoned {
		ready, msg = "False", "The machine is cordoned; its credentials are not rotated while it is."
	}
	st := p.rotationStatus(ctx, m.id().String())
	if st == nil {
		st = []rotation.Status{}
	}
	tags := m.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return childResource{Resource: arm.Resource{ID: m.id().String(), Name: m.Name, Type: BareMetalMachineType, Location: m.Location,
		Tags: tags, SystemData: m.SystemData, Properties: machineOut{
			ActionStates: m.ActionStates, BMCConnectionString: m.BMCConnectionString, BMCCredentials: bmcCredentialsOut{Username: m.BMCUsername},
			BMCMacAddress: m.BMCMacAddress, BootMacAddress: m.BootMacAddress, ClusterID: m.ClusterID, CordonStatus: m.CordonStatus,
			DetailedStatus: "Provisioned", DetailedStatusMessage: msg, MachineDetails: m.MachineDetails, MachineName: m.Name,
			PowerState: "On", ProvisioningState: "Succeeded", RackSlot: m.RackSlot, ReadyState: ready, SecretRotationStatus: st,
			SerialNumber: m.SerialNumber}},
		ExtendedLocation: m.ExtendedLocation}
}

func (p *Provider) renderAppliance(ctx context.Context, a *applianceRecord) childResource {
	st := p.rotationStatus(ctx, a.id().String())
	if st == nil {
		st = []rotation.Status{}
	}
	tags := a.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return childResource{Resource: arm.Resource{ID: a.id().String(), Name: a.Name, Type: StorageApplianceType, Location: a.Location,
		Tags: tags, SystemData: a.SystemData, Properties: applianceOut{
			AdministratorCredentials: bmcCredentialsOut{Username: a.AdminUsername}, AdminEndpoint: a.AdminEndpoint, ClusterID: a.ClusterID,
			DetailedStatus: "Available", DetailedStatusMessage: "The storage appliance is available.", ProvisioningState: "Succeeded",
			RackSlot: a.RackSlot, SecretRotationStatus: st, SerialNumber: a.SerialNumber}},
		ExtendedLocation: a.ExtendedLocation}
}

func (p *Provider) serveMachines(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 {
		return nil, azerr.NotFound("NotFound", "Bare metal machines are not extension resources.")
	}
	if req.Kind == arm.KindCollection {
		if req.ID.SubscriptionID == "" {
			return nil, azerr.NotFound("NotFound", "Bare metal machines are listed per subscription or resource group.")
		}
		ms, err := listScope[machineRecord](ctx, p.st, typeMachines, req.ID.SubscriptionID, req.ID.ResourceGroup)
		if err != nil {
			return nil, azerr.Internal(err)
		}
		items := make([]childResource, 0, len(ms))
		for _, m := range ms {
			items = append(items, p.renderMachine(ctx, m))
		}
		return paged(req, items)
	}
	if req.ID.ResourceGroup == "" || len(req.Target.Providers[0].Types) != 1 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	if req.Kind == arm.KindAction {
		switch strings.ToLower(req.ActionName) {
		case "cordon":
			return p.setCordon(ctx, req, true)
		case "uncordon":
			return p.setCordon(ctx, req, false)
		}
		return nil, azerr.NotFound("NotFound", "The bare metal machine action '%s' is not served.", clip(req.ActionName, 64))
	}
	if req.Method != http.MethodGet {
		return nil, azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed",
			"Bare metal machines are created and deleted with their cluster (deploy / delete).")
	}
	m, _, err := store.GetJSON[machineRecord](ctx, p.st, keyOf(req.ID))
	if isNotFound(err) {
		return nil, arm.ResourceNotFound(req.ID)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return arm.OK(p.renderMachine(ctx, m)), nil
}

func paged(req *arm.Request, items []childResource) (*arm.Response, error) {
	page, err := arm.Paginate(req, items, func(r childResource) string { return strings.ToLower(r.ID) })
	if err != nil {
		return nil, err
	}
	return arm.OK(page), nil
}

// setCordon serves the cordon/uncordon actions (long-running, as in Azure).
// A cordoned machine's credentials are not rotated (OwnerState).
func (p *Provider) setCordon(ctx context.Context, req *arm.Request, cordon bool) (*arm.Response, error) {
	if cordon && len(strings.TrimSpace(string(req.Body))) > 0 {
		var body struct {
			Evacuate *string `json:"evacuate"`
		}
		if err := arm.DecodeJSON(req.Body, &body); err != nil {
			return nil, err
		}
		if body.Evacuate != nil && *body.Evacuate != "True" && *body.Evacuate != "False" {
			return nil, badProp("evacuate", "The property 'evacuate' must be \"True\" or \"False\".")
		}
	}
	id := req.Target
	status, action := uncordoned, actionUncord
	if cordon {
		status, action = cordoned, actionCordon
	}
	start := rfc3339(req.Now)
	corr := correlationID(ctx)
	var loc string
	err := p.st.Update(ctx, func(tx store.Tx) error {
		m, ver, err := store.GetJSON[machineRecord](ctx, tx, keyOf(id))
		if isNotFound(err) {
			return arm.ResourceNotFound(id)
		}
		if err != nil {
			return err
		}
		loc = m.Location
		m.CordonStatus = status
		m.ActionStates = setAction(m.ActionStates, actionState{ActionType: action, CorrelationID: corr, StartTime: start,
			EndTime: start, Status: "Completed"})
		_, err = store.PutJSON(ctx, tx, keyOf(id), m, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return req.StartOperation(ctx, arm.OperationSpec{Location: loc}, func(context.Context) (any, error) { return nil, nil })
}

func (p *Provider) serveAppliances(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(req.ID.Providers) != 1 {
		return nil, azerr.NotFound("NotFound", "Storage appliances are not extension resources.")
	}
	if req.Kind == arm.KindCollection {
		if req.ID.SubscriptionID == "" {
			return nil, azerr.NotFound("NotFound", "Storage appliances are listed per subscription or resource group.")
		}
		as, err := listScope[applianceRecord](ctx, p.st, typeAppliances, req.ID.SubscriptionID, req.ID.ResourceGroup)
		if err != nil {
			return nil, azerr.Internal(err)
		}
		items := make([]childResource, 0, len(as))
		for _, a := range as {
			items = append(items, p.renderAppliance(ctx, a))
		}
		return paged(req, items)
	}
	if req.Kind != arm.KindResource || req.ID.ResourceGroup == "" || len(req.ID.Providers[0].Types) != 1 {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	if req.Method != http.MethodGet {
		return nil, azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed",
			"Storage appliances are created and deleted with their cluster (deploy / delete).")
	}
	a, _, err := store.GetJSON[applianceRecord](ctx, p.st, keyOf(req.ID))
	if isNotFound(err) {
		return nil, arm.ResourceNotFound(req.ID)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	return arm.OK(p.renderAppliance(ctx, a)), nil
}
