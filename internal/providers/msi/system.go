package msi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

var errNoEngine = errors.New("msi: no authorization engine configured")

// systemProps is properties of Microsoft.ManagedIdentity/identities.
type systemProps struct {
	TenantID    string `json:"tenantId"`
	PrincipalID string `json:"principalId"`
	ClientID    string `json:"clientId"`
}

// serveSystemAssigned serves GET {scope}/providers/Microsoft.ManagedIdentity/identities/default:
// the system-assigned identity of the resource at scope. keyhaven does not
// know the owning resource's location or tags, so location is left out and
// tags are empty.
func (p *Provider) serveSystemAssigned(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if req.Kind != arm.KindResource {
		return nil, azerr.NotFound("NotFound", "Only {scope}/providers/%s/identities/default is served.", Namespace)
	}
	if req.Method != http.MethodGet {
		return nil, arm.MethodNotAllowed(req.Method)
	}
	last := req.ID.Providers[len(req.ID.Providers)-1]
	if len(last.Types) != 1 || !strings.EqualFold(last.Names[0], "default") {
		return nil, arm.ResourceNotFound(req.ID)
	}
	scope := arm.ResourceID{SubscriptionID: req.ID.SubscriptionID, ResourceGroup: req.ID.ResourceGroup,
		Providers: req.ID.Providers[:len(req.ID.Providers)-1]}
	if len(scope.Providers) == 0 {
		return nil, arm.ResourceNotFound(req.ID)
	}
	blk, err := p.ids.GetResourceIdentity(ctx, scope.String())
	if err != nil {
		return nil, azerr.From(err)
	}
	if blk.PrincipalID == "" {
		return nil, arm.ResourceNotFound(req.ID)
	}
	obj, err := p.ids.LookupPrincipal(ctx, blk.PrincipalID)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			return nil, arm.ResourceNotFound(req.ID)
		}
		return nil, azerr.From(err)
	}
	id := scope.Extend(Namespace, "identities", "default")
	return arm.OK(arm.Resource{ID: id.String(), Name: "default", Type: SystemAssignedType, Tags: map[string]string{},
		Properties: systemProps{TenantID: blk.TenantID, PrincipalID: obj.ObjectID, ClientID: obj.AppID}}), nil
}
