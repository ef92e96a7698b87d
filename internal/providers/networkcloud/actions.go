package networkcloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
)

const (
	actionDeploy = Namespace + "/clusters/deploy/action"
	actionRotate = Namespace + "/clusters/rotateCredential/action"
	actionCordon = Namespace + "/bareMetalMachines/cordon/action"
	actionUncord = Namespace + "/bareMetalMachines/uncordon/action"
)

func correlationID(ctx context.Context) string {
	if info := principal.InfoFrom(ctx); info != nil {
		if info.CorrelationID != "" {
			return info.CorrelationID
		}
		return info.RequestID
	}
	return ""
}

// updateCluster changes a stored cluster in one transaction.
func (p *Provider) updateCluster(ctx context.Context, id arm.ResourceID, fn func(c *clusterRecord) error) (*clusterRecord, error) {
	var out *clusterRecord
	err := p.st.Update(ctx, func(tx store.Tx) error {
		c, ver, err := store.GetJSON[clusterRecord](ctx, tx, keyOf(id))
		if isNotFound(err) {
			return arm.ResourceNotFound(id)
		}
		if err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
		out = c
		_, err = store.PutJSON(ctx, tx, keyOf(id), c, ver)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	return out, nil
}

// deployCluster serves POST .../clusters/{name}/deploy (long-running): the
// machines and appliances of the rack definitions become resources, every
// managed credential is registered with the engine and rotated once
// ("rotated at deployment").
func (p *Provider) deployCluster(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if len(strings.TrimSpace(string(req.Body))) > 0 {
		var body struct {
			SkipValidationsForMachines []string `json:"skipValidationsForMachines"`
		}
		if err := arm.DecodeJSON(req.Body, &body); err != nil {
			return nil, err
		}
		if len(body.SkipValidationsForMachines) > MaxRacks*MaxMachinesPerRack {
			return nil, badProp("skipValidationsForMachines", "Too many machine names.")
		}
	}
	if _, err := p.needEngine(); err != nil {
		return nil, err
	}
	id := req.Target
	start := rfc3339(req.Now)
	corr := correlationID(ctx)
	c, err := p.updateCluster(ctx, id, func(c *clusterRecord) error {
		switch c.DeployState {
		case statusRunning:
			return azerr.New(http.StatusConflict, "ClusterAlreadyDeployed", "The cluster '%s' is already deployed.", c.Name)
		case statusDeploying:
			return azerr.New(http.StatusConflict, "ClusterDeploying", "The cluster '%s' is being deployed.", c.Name)
		}
		c.DeployState, c.DeployMessage = statusDeploying, ""
		c.ActionStates = setAction(c.ActionStates, actionState{ActionType: actionDeploy, CorrelationID: corr, StartTime: start,
			Status: "InProgress", Message: "Deployment started."})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return req.StartOperation(ctx, arm.OperationSpec{Location: c.Location}, func(ctx context.Context) (any, error) {
		derr := p.deploy(ctx, id)
		end := rfc3339(p.clk.Now())
		_, uerr := p.updateCluster(ctx, id, func(c *clusterRecord) error {
			st := actionState{ActionType: actionDeploy, CorrelationID: corr, StartTime: start, EndTime: end,
				Status: "Completed", Message: "Deployment completed; managed credentials were rotated."}
			c.DeployState, c.DeployMessage = statusRunning, ""
			if derr != nil {
				msg := azerr.From(derr).Message
				c.DeployState, c.DeployMessage = statusFailed, msg
				st.Status, st.Message = "Failed", msg
			}
			c.ActionStates = setAction(c.ActionStates, st)
			return nil
		})
		if derr != nil {
			return nil, derr
		}
		return nil, uerr
	})
}

// deploy creates the cluster's machines and appliances and hands every
// credential to the engine.
func (p *Provider) deploy(ctx context.Context, id arm.ResourceID) error {
	e, err := p.needEngine()
	if err != nil {
		return err
	}
	c, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(id))
	if err != nil {
		return storeErr(err)
	}
	cid := id.String()
	now := p.clk.Now()
	var targets []rotation.Target
	err = p.st.Update(ctx, func(tx store.Tx) error {
		targets = targets[:0]
		for _, r := range c.racks() {
			for _, mc := range r.BareMetalMachineConfigurationData {
				m := &machineRecord{Name: mc.MachineName, SubscriptionID: c.SubscriptionID, ResourceGroup: c.ResourceGroup,
					Location: c.Location, Tags: map[string]string{}, ExtendedLocation: c.ExtendedLocation, ClusterID: cid,
					BMCConnectionString: mc.BMCConnectionString, BMCMacAddress: mc.BMCMacAddress, BootMacAddress: mc.BootMacAddress,
					MachineDetails: mc.MachineDetails, RackSlot: mc.RackSlot, SerialNumber: mc.SerialNumber, CordonStatus: uncordoned,
					SystemData: c.SystemData.Touched(nil, now)}
				if mc.BMCCredentials != nil {
					m.BMCUsername = mc.BMCCredentials.Username
				}
				if err := claim(ctx, tx, keyOf(m.id()), cid, m, func(x *machineRecord) string { return x.ClusterID }); err != nil {
					return err
				}
				targets = append(targets, rotation.Target{ClusterID: cid, OwnerID: m.id().String(), OwnerName: m.Name,
					Kind: rotation.KindConsoleUser, Username: consoleUsername})
			}
			for _, ac := range r.StorageApplianceConfigurationData {
				a := &applianceRecord{Name: ac.StorageApplianceName, SubscriptionID: c.SubscriptionID, ResourceGroup: c.ResourceGroup,
					Location: c.Location, Tags: map[string]string{}, ExtendedLocation: c.ExtendedLocation, ClusterID: cid,
					AdminEndpoint: ac.AdminEndpoint, RackSlot: ac.RackSlot, SerialNumber: ac.SerialNumber,
					SystemData: c.SystemData.Touched(nil, now)}
				if ac.AdminCredentials != nil {
					a.AdminUsername = ac.AdminCredentials.Username
				}
				if err := claim(ctx, tx, keyOf(a.id()), cid, a, func(x *applianceRecord) string { return x.ClusterID }); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return storeErr(err)
	}
	// BMC and storage administrator credentials were registered (with the
	// customer's initial passwords) when the rack definitions were written;
	// the platform-generated ones join now.
	targets = append(targets, rotation.Target{ClusterID: cid, OwnerID: cid, OwnerName: c.Name, Kind: rotation.KindLocalPathStorage})
	if err := e.UpsertTargets(ctx, targets); err != nil {
		return azerr.From(err)
	}
	if err := e.RequestRotation(ctx, cid, nil); err != nil {
		return azerr.From(err)
	}
	return nil
}

// claim writes a child resource unless another cluster owns one by that
// name.
func claim[T any](ctx context.Context, tx store.Tx, key, clusterID string, v *T, owner func(*T) string) error {
	cur, _, err := store.GetJSON[T](ctx, tx, key)
	if err == nil && !strings.EqualFold(owner(cur), clusterID) {
		return azerr.New(http.StatusConflict, "ResourceNameConflict",
			"A resource named by this cluster's rack definitions already belongs to cluster '%s'.", owner(cur))
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_, err = store.PutJSON(ctx, tx, key, v, store.Any)
	return err
}

// parseKinds maps credential names (case-insensitive) to kinds.
func parseKinds(names []string) ([]rotation.Kind, error) {
	if len(names) == 0 {
		return nil, badProp("credentials", "The property 'credentials' must list at least one credential: %s.", kindList())
	}
	if len(names) > MaxCredentialsPerCall {
		return nil, badProp("credentials", "At most %d credentials may be listed.", MaxCredentialsPerCall)
	}
	var out []rotation.Kind
	seen := map[rotation.Kind]bool{}
	for _, n := range names {
		var k rotation.Kind
		for _, known := range AllKinds {
			if strings.EqualFold(n, string(known)) {
				k = known
			}
		}
		if k == "" {
			return nil, arm.BadRequest("InvalidCredentialName", "The credential '%s' is not managed; use %s.", clip(n, 64), kindList()).WithTarget("credentials")
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

func kindList() string {
	s := make([]string, len(AllKinds))
	for i, k := range AllKinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// rotateCredential serves POST .../clusters/{name}/rotateCredential
// {"credentials":[...]} (long-running): an on-demand rotation, refused with
// the missing condition's code when the cluster has no usable archive.
func (p *Provider) rotateCredential(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	var body struct {
		Credentials []string `json:"credentials"`
	}
	if err := arm.DecodeJSON(req.Body, &body); err != nil {
		return nil, err
	}
	kinds, err := parseKinds(body.Credentials)
	if err != nil {
		return nil, err
	}
	e, err := p.needEngine()
	if err != nil {
		return nil, err
	}
	id := req.Target
	c, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(id))
	if isNotFound(err) {
		return nil, arm.ResourceNotFound(id)
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if c.DeployState != statusRunning {
		return nil, azerr.New(http.StatusConflict, "ClusterNotDeployed",
			"The cluster '%s' is not deployed (detailedStatus %s); credentials rotate once it is.", c.Name, c.DeployState)
	}
	avail := map[string]bool{}
	for _, k := range managedKinds(c) {
		avail[k] = true
	}
	for _, k := range kinds {
		if !avail[string(k)] {
			return nil, arm.BadRequest("InvalidCredentialName", "The cluster '%s' has no %s credential.", c.Name, k).WithTarget("credentials")
		}
	}
	start := rfc3339(req.Now)
	corr := correlationID(ctx)
	return req.StartOperation(ctx, arm.OperationSpec{Location: c.Location}, func(ctx context.Context) (any, error) {
		_, rerr := p.ResolveArchive(ctx, id.String())
		if rerr == nil {
			rerr = e.RequestRotation(ctx, id.String(), kinds)
		}
		st := actionState{ActionType: actionRotate, CorrelationID: corr, StartTime: start, EndTime: rfc3339(p.clk.Now()),
			Status: "Completed", Message: fmt.Sprintf("Rotation of %s requested.", joinKinds(kinds))}
		if rerr != nil {
			st.Status, st.Message = "Failed", azerr.From(rerr).Message
		}
		if _, err := p.updateCluster(ctx, id, func(c *clusterRecord) error {
			c.ActionStates = setAction(c.ActionStates, st)
			return nil
		}); err != nil && rerr == nil {
			rerr = err
		}
		if rerr != nil {
			return nil, azerr.From(rerr)
		}
		return nil, nil
	})
}

func joinKinds(ks []rotation.Kind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}
