package identity

import (
	"context"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// ARM identity types, as rendered.
const (
	IdentityNone                       = "None"
	IdentitySystemAssigned             = "SystemAssigned"
	IdentityUserAssigned               = "UserAssigned"
	IdentitySystemAssignedUserAssigned = "SystemAssigned, UserAssigned"
)

// IdentitySpec is the identity block a client sends on an ARM resource.
type IdentitySpec struct {
	// Type: "None", "SystemAssigned", "UserAssigned" or "SystemAssigned,
	// UserAssigned" (case-insensitive, spaces optional). Empty means None.
	Type string
	// UserAssigned are resource IDs of user-assigned identities.
	UserAssigned []string
}

// UserAssignedIdentityRef is one entry of userAssignedIdentities.
type UserAssignedIdentityRef struct {
	ClientID    string `json:"clientId"`
	PrincipalID string `json:"principalId"`
}

// IdentityBlock is the ARM "identity" property of a resource.
type IdentityBlock struct {
	Type                   string                             `json:"type"`
	PrincipalID            string                             `json:"principalId,omitempty"`
	TenantID               string                             `json:"tenantId,omitempty"`
	UserAssignedIdentities map[string]UserAssignedIdentityRef `json:"userAssignedIdentities,omitempty"`
}

// attachRecord lists the user-assigned identities a resource carries.
type attachRecord struct {
	ResourceID   string   `json:"resourceId"`
	TenantID     string   `json:"tenantId"`
	UserAssigned []string `json:"userAssigned"` // the identities' own resource IDs
}

const uaiSegment = "/providers/microsoft.managedidentity/userassignedidentities/"

func parseIdentityType(t string) (system, user bool, err error) {
	n := strings.ToLower(strings.ReplaceAll(t, " ", ""))
	switch n {
	case "", "none":
		return false, false, nil
	case "systemassigned":
		return true, false, nil
	case "userassigned":
		return false, true, nil
	case "systemassigned,userassigned":
		return true, true, nil
	}
	return false, false, badRequest("InvalidIdentityType",
		"The identity type '%s' is not supported. Supported values are None, SystemAssigned, UserAssigned and 'SystemAssigned, UserAssigned'.", truncate(t, 64))
}

// EnsureSystemAssigned returns the system-assigned identity of resourceID,
// creating it if needed. tenantID "" means the default tenant.
func (s *Service) EnsureSystemAssigned(ctx context.Context, tenantID, resourceID string) (*ManagedIdentity, error) {
	key, err := normResourceID(resourceID)
	if err != nil {
		return nil, err
	}
	var p *principalRecord
	err = s.st.Update(ctx, func(tx store.Tx) error {
		tid, err := s.resolveTenantID(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		p, err = s.ensureSystemTx(ctx, tx, tid, resourceID, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p.managedIdentity(), nil
}

func (s *Service) ensureSystemTx(ctx context.Context, tx store.Tx, tenantID, resourceID, key string) (*principalRecord, error) {
	oid, err := getString(ctx, tx, kMISystem+key)
	if err == nil {
		p, _, err := s.getPrincipal(ctx, tx, oid)
		return p, err
	}
	if !isNotFound(err) {
		return nil, err
	}
	return s.createMITx(ctx, tx, tenantID, resourceID, kMISystem+key, true)
}

func (s *Service) createMITx(ctx context.Context, tx store.Tx, tenantID, resourceID, indexKey string, system bool) (*principalRecord, error) {
	p := &principalRecord{ObjectID: newGUID(), TenantID: tenantID, Kind: principal.ManagedIdentity,
		DisplayName: lastSegment(resourceID), AppID: newGUID(), Enabled: true, Created: s.now(),
		MIResourceID: resourceID, SystemAssigned: system}
	if _, err := store.PutJSON(ctx, tx, kPrincipal+p.ObjectID, p, store.Absent); err != nil {
		return nil, err
	}
	if err := putString(ctx, tx, kClientID+p.AppID, p.ObjectID, store.Absent); err != nil {
		return nil, err
	}
	if err := putString(ctx, tx, indexKey, p.ObjectID, store.Absent); err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) deleteMITx(ctx context.Context, tx store.Tx, indexKey string) error {
	oid, err := getString(ctx, tx, indexKey)
	if isNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	var p principalRecord
	if _, err := store.LoadJSON(ctx, tx, kPrincipal+oid, &p); err == nil {
		if err := tx.Delete(ctx, kClientID+p.AppID, store.Any); err != nil {
			return err
		}
	} else if !isNotFound(err) {
		return err
	}
	if err := tx.Delete(ctx, kPrincipal+oid, store.Any); err != nil {
		return err
	}
	return tx.Delete(ctx, indexKey, store.Any)
}

// DeleteSystemAssigned deletes the system-assigned identity of resourceID,
// if it has one.
func (s *Service) DeleteSystemAssigned(ctx context.Context, resourceID string) error {
	key, err := normResourceID(resourceID)
	if err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error { return s.deleteMITx(ctx, tx, kMISystem+key) })
}

func uaiKey(resourceID string) (string, error) {
	key, err := normResourceID(resourceID)
	if err != nil {
		return "", err
	}
	i := strings.Index(key, uaiSegment)
	if i < 0 || !strings.HasPrefix(key, "/subscriptions/") || strings.Contains(key[i+len(uaiSegment):], "/") {
		return "", badRequest("InvalidResourceId",
			"'%s' is not a user-assigned identity resource ID (/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}).", truncate(resourceID, 200))
	}
	return key, nil
}

// CreateUserAssigned creates a user-assigned identity, or returns the
// existing one with that resource ID (PUT is idempotent).
func (s *Service) CreateUserAssigned(ctx context.Context, tenantID, resourceID string) (*ManagedIdentity, error) {
	key, err := uaiKey(resourceID)
	if err != nil {
		return nil, err
	}
	var p *principalRecord
	err = s.st.Update(ctx, func(tx store.Tx) error {
		tid, err := s.resolveTenantID(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		if oid, err := getString(ctx, tx, kMIUser+key); err == nil {
			p, _, err = s.getPrincipal(ctx, tx, oid)
			if err == nil && p.TenantID != tid {
				return azerr.Conflict("The identity '%s' exists in another tenant.", truncate(resourceID, 200))
			}
			return err
		} else if !isNotFound(err) {
			return err
		}
		p, err = s.createMITx(ctx, tx, tid, resourceID, kMIUser+key, false)
		return err
	})
	if err != nil {
		return nil, err
	}
	return p.managedIdentity(), nil
}

func errUAINotFound(id string) *azerr.Error {
	return azerr.NotFound("ResourceNotFound", "The user-assigned identity '%s' was not found.", truncate(id, 200))
}

func (s *Service) getUAI(ctx context.Context, r store.Reader, resourceID string) (*principalRecord, error) {
	key, err := uaiKey(resourceID)
	if err != nil {
		return nil, err
	}
	oid, err := getString(ctx, r, kMIUser+key)
	if isNotFound(err) {
		return nil, errUAINotFound(resourceID)
	} else if err != nil {
		return nil, err
	}
	p, _, err := s.getPrincipal(ctx, r, oid)
	if err != nil {
		return nil, errUAINotFound(resourceID)
	}
	return p, nil
}

// GetUserAssigned returns a user-assigned identity by resource ID.
func (s *Service) GetUserAssigned(ctx context.Context, resourceID string) (*ManagedIdentity, error) {
	p, err := s.getUAI(ctx, s.st, resourceID)
	if err != nil {
		return nil, err
	}
	return p.managedIdentity(), nil
}

// ListUserAssigned lists user-assigned identities whose resource ID lies
// under scope ("/subscriptions/{s}" or ".../resourceGroups/{rg}"; "" or "/"
// for all), matched case-insensitively on segment boundaries.
func (s *Service) ListUserAssigned(ctx context.Context, scope string) ([]*ManagedIdentity, error) {
	prefix := ""
	if scope != "" && scope != "/" {
		k, err := normResourceID(scope)
		if err != nil {
			return nil, err
		}
		prefix = k
	}
	recs, err := listAll(ctx, s.st, kMIUser+prefix)
	if err != nil {
		return nil, err
	}
	var out []*ManagedIdentity
	for _, rec := range recs {
		rest := strings.TrimPrefix(rec.Key, kMIUser+prefix)
		if prefix != "" && !strings.HasPrefix(rest, "/") {
			continue // e.g. scope rg1 must not match rg10
		}
		p, _, err := s.getPrincipal(ctx, s.st, string(rec.Value))
		if err != nil {
			continue
		}
		out = append(out, p.managedIdentity())
	}
	return out, nil
}

// DeleteUserAssigned deletes a user-assigned identity. Resources that still
// list it keep the reference (as in Azure) but it no longer renders or gets
// tokens.
func (s *Service) DeleteUserAssigned(ctx context.Context, resourceID string) error {
	key, err := uaiKey(resourceID)
	if err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.Get(ctx, kMIUser+key); isNotFound(err) {
			return errUAINotFound(resourceID)
		} else if err != nil {
			return err
		}
		return s.deleteMITx(ctx, tx, kMIUser+key)
	})
}

// SetResourceIdentity makes resourceID carry exactly the identities spec
// names: it creates or deletes the system-assigned identity, checks every
// user-assigned identity exists in the tenant, replaces the attachment set
// and returns the ARM identity block.
func (s *Service) SetResourceIdentity(ctx context.Context, tenantID, resourceID string, spec IdentitySpec) (*IdentityBlock, error) {
	key, err := normResourceID(resourceID)
	if err != nil {
		return nil, err
	}
	system, user, err := parseIdentityType(spec.Type)
	if err != nil {
		return nil, err
	}
	if !user && len(spec.UserAssigned) > 0 {
		return nil, badRequest("InvalidIdentityType",
			"userAssignedIdentities may only be given when the identity type includes UserAssigned.")
	}
	if user && len(spec.UserAssigned) == 0 {
		return nil, badRequest("InvalidIdentityType",
			"The identity type includes UserAssigned but no userAssignedIdentities were given.")
	}
	if len(spec.UserAssigned) > maxUserAssigned {
		return nil, badRequest("InvalidIdentityType", "At most %d user-assigned identities may be attached.", maxUserAssigned)
	}
	var block *IdentityBlock
	err = s.st.Update(ctx, func(tx store.Tx) error {
		tid, err := s.resolveTenantID(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		var ids []string
		seen := map[string]bool{}
		for _, id := range spec.UserAssigned {
			p, err := s.getUAI(ctx, tx, id)
			if err != nil {
				if ae, ok := err.(*azerr.Error); ok && ae.Status == 404 {
					return badRequest("InvalidUserAssignedIdentity",
						"The user-assigned identity '%s' was not found.", truncate(id, 200))
				}
				return err
			}
			if p.TenantID != tid {
				return badRequest("InvalidUserAssignedIdentity",
					"The user-assigned identity '%s' belongs to another tenant.", truncate(id, 200))
			}
			if k := strings.ToLower(p.MIResourceID); !seen[k] {
				seen[k] = true
				ids = append(ids, p.MIResourceID)
			}
		}
		if system {
			if _, err := s.ensureSystemTx(ctx, tx, tid, resourceID, key); err != nil {
				return err
			}
		} else if err := s.deleteMITx(ctx, tx, kMISystem+key); err != nil {
			return err
		}
		if user {
			rec := attachRecord{ResourceID: resourceID, TenantID: tid, UserAssigned: ids}
			if _, err := store.PutJSON(ctx, tx, kAttach+key, rec, store.Any); err != nil {
				return err
			}
		} else if err := tx.Delete(ctx, kAttach+key, store.Any); err != nil {
			return err
		}
		block, err = s.renderIdentity(ctx, tx, key)
		return err
	})
	if err != nil {
		return nil, err
	}
	return block, nil
}

// GetResourceIdentity returns the identity block of resourceID ({"type":"None"}
// when it carries none).
func (s *Service) GetResourceIdentity(ctx context.Context, resourceID string) (*IdentityBlock, error) {
	key, err := normResourceID(resourceID)
	if err != nil {
		return nil, err
	}
	return s.renderIdentity(ctx, s.st, key)
}

// RemoveResource forgets everything identity knows about a deleted
// resource: its system-assigned identity, its attachments and its workload
// secret.
func (s *Service) RemoveResource(ctx context.Context, resourceID string) error {
	key, err := normResourceID(resourceID)
	if err != nil {
		return err
	}
	return s.st.Update(ctx, func(tx store.Tx) error {
		if err := s.deleteMITx(ctx, tx, kMISystem+key); err != nil {
			return err
		}
		if err := tx.Delete(ctx, kAttach+key, store.Any); err != nil {
			return err
		}
		return s.revokeWorkloadTx(ctx, tx, key)
	})
}

// resourceIdentities returns the identities a resource carries: its
// system-assigned identity (nil if none) and its existing attached
// user-assigned identities.
func (s *Service) resourceIdentities(ctx context.Context, r store.Reader, key string) (*principalRecord, []*principalRecord, error) {
	var sys *principalRecord
	if oid, err := getString(ctx, r, kMISystem+key); err == nil {
		if p, _, err := s.getPrincipal(ctx, r, oid); err == nil {
			sys = p
		}
	} else if !isNotFound(err) {
		return nil, nil, err
	}
	var att attachRecord
	if _, err := store.LoadJSON(ctx, r, kAttach+key, &att); err != nil && !isNotFound(err) {
		return nil, nil, err
	}
	var uais []*principalRecord
	for _, id := range att.UserAssigned {
		if p, err := s.getUAI(ctx, r, id); err == nil {
			uais = append(uais, p)
		}
	}
	return sys, uais, nil
}

func (s *Service) renderIdentity(ctx context.Context, r store.Reader, key string) (*IdentityBlock, error) {
	sys, uais, err := s.resourceIdentities(ctx, r, key)
	if err != nil {
		return nil, err
	}
	b := &IdentityBlock{Type: IdentityNone}
	if sys != nil {
		b.Type = IdentitySystemAssigned
		b.PrincipalID = sys.ObjectID
		b.TenantID = sys.TenantID
	}
	if len(uais) > 0 {
		if sys != nil {
			b.Type = IdentitySystemAssignedUserAssigned
		} else {
			b.Type = IdentityUserAssigned
		}
		b.UserAssignedIdentities = map[string]UserAssignedIdentityRef{}
		for _, p := range uais {
			b.UserAssignedIdentities[p.MIResourceID] = UserAssignedIdentityRef{ClientID: p.AppID, PrincipalID: p.ObjectID}
		}
	}
	return b, nil
}
