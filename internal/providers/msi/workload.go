package msi

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/identity"
)

// WorkloadSecret is what a workload needs to get tokens from the
// managed-identity endpoint: IDENTITY_ENDPOINT and IDENTITY_HEADER, and the
// identity to name (client_id) when there is one. Its JSON form is the body
// of issueWorkloadSecret; every other rendering hides IdentityHeader.
type WorkloadSecret struct {
	IdentityEndpoint string `json:"identityEndpoint"`
	IdentityHeader   string `json:"identityHeader"`
	ClientID         string `json:"clientId,omitempty"`
	PrincipalID      string `json:"principalId,omitempty"`
}

func (w WorkloadSecret) redacted() string {
	return "{IdentityEndpoint:" + w.IdentityEndpoint + " IdentityHeader:[REDACTED] ClientID:" + w.ClientID +
		" PrincipalID:" + w.PrincipalID + "}"
}

// String hides the secret from fmt's %v, %+v and %s.
func (w WorkloadSecret) String() string { return w.redacted() }

// GoString hides the secret from fmt's %#v.
func (w WorkloadSecret) GoString() string { return "msi.WorkloadSecret" + w.redacted() }

// LogValue hides the secret from slog.
func (w WorkloadSecret) LogValue() slog.Value {
	return slog.GroupValue(slog.String("identityEndpoint", w.IdentityEndpoint),
		slog.String("identityHeader", "[REDACTED]"), slog.String("clientId", w.ClientID),
		slog.String("principalId", w.PrincipalID))
}

// isUserAssignedID reports whether id names a user-assigned identity.
func isUserAssignedID(id arm.ResourceID) bool {
	return len(id.Providers) == 1 && id.ResourceGroup != "" && strings.EqualFold(id.ResourceType(), UserAssignedType) &&
		id.Name() != ""
}

// IssueWorkloadSecretFor issues (or replaces) the workload secret of the
// resource resourceID. For a user-assigned identity the secret yields tokens
// for that identity only; for any other resource, for the identities the
// resource carries (its system-assigned identity by default). Callers
// authorize first: whoever holds the secret acts as those identities.
func (p *Provider) IssueWorkloadSecretFor(ctx context.Context, resourceID string) (*WorkloadSecret, error) {
	id, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return nil, err
	}
	if id.SubscriptionID == "" || len(id.Providers) == 0 || id.IsCollection() {
		return nil, arm.BadRequest("InvalidResourceId", "'%s' does not name a resource.", clip(resourceID, 200))
	}
	rid := id.String()
	out := &WorkloadSecret{IdentityEndpoint: p.opts.MIEndpoint}
	if isUserAssignedID(id) {
		mi, err := p.ids.GetUserAssigned(ctx, rid)
		if err != nil {
			return nil, azerr.From(err)
		}
		rid = mi.ResourceID
		// identity's token endpoint serves the identities a bound resource
		// carries; attaching the identity to its own resource makes it the
		// one identity this secret can get tokens for.
		if _, err := p.ids.SetResourceIdentity(ctx, mi.TenantID, rid, identity.IdentitySpec{
			Type: identity.IdentityUserAssigned, UserAssigned: []string{rid}}); err != nil {
			return nil, azerr.From(err)
		}
		out.ClientID, out.PrincipalID = mi.ClientID, mi.PrincipalID
	} else {
		blk, err := p.ids.GetResourceIdentity(ctx, rid)
		if err != nil {
			return nil, azerr.From(err)
		}
		if blk.PrincipalID != "" {
			obj, err := p.ids.LookupPrincipal(ctx, blk.PrincipalID)
			if err != nil {
				return nil, azerr.From(err)
			}
			out.ClientID, out.PrincipalID = obj.AppID, obj.ObjectID
		}
	}
	secret, err := p.ids.IssueWorkloadSecret(ctx, rid)
	if err != nil {
		return nil, azerr.From(err)
	}
	out.IdentityHeader = secret
	return out, nil
}

// RevokeWorkloadSecretFor invalidates the workload secret of resourceID
// (and, for a user-assigned identity, the self-attachment issuing made).
func (p *Provider) RevokeWorkloadSecretFor(ctx context.Context, resourceID string) error {
	id, err := arm.ParseResourceID(resourceID)
	if err != nil {
		return err
	}
	if isUserAssignedID(id) {
		err = p.ids.RemoveResource(ctx, id.String())
	} else {
		err = p.ids.RevokeWorkloadSecret(ctx, id.String())
	}
	if err != nil {
		return azerr.From(err) // never a typed nil: From(nil) is a nil *Error
	}
	return nil
}

// authorizeAssign is the extra check of issueWorkloadSecret: a workload
// secret lets its holder act as the identity, which Azure guards with the
// assign action (Managed Identity Operator).
func (p *Provider) authorizeAssign(ctx context.Context, req *arm.Request) error {
	if p.engine == nil {
		return azerr.Internal(errNoEngine)
	}
	scope := req.Target.String()
	d, err := p.engine.Decide(ctx, authz.Request{Principal: req.Principal, Action: AssignAction, Scope: scope})
	if err != nil {
		return azerr.Internal(err)
	}
	if !d.Allowed {
		oid := ""
		if req.Principal != nil {
			oid = req.Principal.ObjectID
		}
		return arm.AuthorizationFailed(oid, AssignAction, scope)
	}
	return nil
}

func (p *Provider) issueAction(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	if err := p.authorizeAssign(ctx, req); err != nil {
		return nil, err
	}
	r, err := p.lookup(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	ws, err := p.IssueWorkloadSecretFor(ctx, r.id().String())
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	return &arm.Response{Status: http.StatusOK, Body: ws, Header: h}, nil
}

func (p *Provider) revokeAction(ctx context.Context, req *arm.Request) (*arm.Response, error) {
	r, err := p.lookup(ctx, req.Target)
	if err != nil {
		return nil, err
	}
	if err := p.RevokeWorkloadSecretFor(ctx, r.id().String()); err != nil {
		return nil, err
	}
	return arm.NoContent(), nil
}
