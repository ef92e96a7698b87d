package identityblock

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/identity"
)

// AssignAction is what a caller needs on a user-assigned identity to attach
// it to a resource (Managed Identity Operator grants it).
const AssignAction = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"

// Identities is what this package needs of the identity service.
type Identities interface {
	SetResourceIdentity(ctx context.Context, tenantID, resourceID string, spec identity.IdentitySpec) (*identity.IdentityBlock, error)
	GetResourceIdentity(ctx context.Context, resourceID string) (*identity.IdentityBlock, error)
}

// Body is the identity block a client sends.
type Body struct {
	Type                   string                     `json:"type"`
	UserAssignedIdentities map[string]json.RawMessage `json:"userAssignedIdentities,omitempty"`
}

// Spec is the identity set the body names.
func (b *Body) Spec() identity.IdentitySpec {
	s := identity.IdentitySpec{Type: b.Type}
	for id := range b.UserAssignedIdentities {
		s.UserAssigned = append(s.UserAssigned, id)
	}
	return s
}

// Apply makes resourceID carry the identities body names and returns the
// block as Render shows it. A nil body leaves an existing resource as it is
// (and returns nil) and gives a new one an empty identity record. Each
// user-assigned identity the resource does not carry yet must be assignable
// by the caller; the refusal is ARM's LinkedAuthorizationFailed.
func Apply(ctx context.Context, ids Identities, req *arm.Request, tenantID, resourceID string, body *Body, creating bool) (*identity.IdentityBlock, error) {
	if body == nil && !creating {
		return nil, nil
	}
	spec := identity.IdentitySpec{}
	if body != nil {
		spec = body.Spec()
	}
	if len(spec.UserAssigned) > 0 {
		have := map[string]bool{}
		if !creating {
			cur, err := ids.GetResourceIdentity(ctx, resourceID)
			if err != nil {
				return nil, azerr.From(err)
			}
			for id := range cur.UserAssignedIdentities {
				have[strings.ToLower(id)] = true
			}
		}
		for _, id := range spec.UserAssigned {
			if have[strings.ToLower(id)] {
				continue
			}
			ok, err := req.Allowed(ctx, AssignAction, id)
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, linkedAuthorizationFailed(req, id)
			}
		}
	}
	b, err := ids.SetResourceIdentity(ctx, tenantID, resourceID, spec)
	if err != nil {
		return nil, targetIdentity(err)
	}
	return Present(b), nil
}

// Render returns the identity block of resourceID as ARM shows it (type
// "SystemAssigned,UserAssigned" without a space, as the specs' enums have
// it), or nil when it carries none.
func Render(ctx context.Context, ids Identities, resourceID string) (*identity.IdentityBlock, error) {
	b, err := ids.GetResourceIdentity(ctx, resourceID)
	if err != nil {
		return nil, err
	}
	return Present(b), nil
}

// Present is Render's shaping of a block already read.
func Present(b *identity.IdentityBlock) *identity.IdentityBlock {
	if b == nil || b.Type == identity.IdentityNone {
		return nil
	}
	out := *b
	if out.Type == identity.IdentitySystemAssignedUserAssigned {
		out.Type = "SystemAssigned,UserAssigned"
	}
	return &out
}

// targetIdentity points identity-service errors at the identity property.
func targetIdentity(err error) error {
	e := azerr.From(err)
	if e.Status == http.StatusBadRequest && e.Target == "" {
		e.Target = "identity"
	}
	return e
}

func linkedAuthorizationFailed(req *arm.Request, linked string) error {
	oid := ""
	if req.Principal != nil {
		oid = req.Principal.ObjectID
	}
	if len(linked) > 300 {
		linked = linked[:300] + "..."
	}
	return azerr.New(http.StatusForbidden, "LinkedAuthorizationFailed",
		"The client '%s' with object id '%s' has permission to perform action '%s' on scope '%s'; however, it does not have permission to perform action(s) '%s' on the linked scope(s) '%s' (respectively) or the linked scope(s) are invalid.",
		oid, oid, req.Action, req.Target.String(), AssignAction, linked)
}
