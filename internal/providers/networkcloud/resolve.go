package networkcloud

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Codes of the archive conditions ResolveArchive reports.
const (
	CodeSecretArchiveNotConfigured  = "SecretArchiveNotConfigured"
	CodeIdentityNotConfigured       = "IdentityNotConfigured"
	CodeClusterManagerNotConfigured = "ClusterManagerNotConfigured"
	CodeClusterManagerNotFound      = "ClusterManagerNotFound"
	CodeAmbiguousIdentity           = "AmbiguousClusterManagerIdentity"
	CodeClusterNotFound             = "ClusterNotFound"
)

func archiveErr(code, format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusConflict, code, format, args...)
}

// vaultURIFor is the URI keyhaven serves a vault at (as the keyvault
// provider renders vaultUri).
func (p *Provider) vaultURIFor(name string) string {
	host := strings.ToLower(name) + "." + p.opts.VaultDomain
	if p.opts.VaultPort != 0 && p.opts.VaultPort != 443 {
		host += fmt.Sprintf(":%d", p.opts.VaultPort)
	}
	return "https://" + host + "/"
}

// vaultIDForURI finds the resource ID of the vault a URI names, when it is
// one of keyhaven's ("" otherwise: the engine reports a vault it cannot use).
func (p *Provider) vaultIDForURI(ctx context.Context, uri string) string {
	if p.kv == nil {
		return ""
	}
	rest := strings.TrimPrefix(strings.ToLower(uri), "https://")
	host, _, _ := strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, ":")
	name, domain, ok := strings.Cut(host, ".")
	if !ok || !strings.EqualFold(domain, p.opts.VaultDomain) {
		return ""
	}
	vi, err := p.kv.LookupVault(ctx, name)
	if err != nil {
		return ""
	}
	return vi.ResourceID
}

// ResolveArchive says where a cluster's rotated credentials go and with
// which identity (rotation.ArchiveResolver). secretArchiveSettings, when
// set, supersedes secretArchive and the cluster manager's identity.
func (p *Provider) ResolveArchive(ctx context.Context, clusterID string) (*rotation.Archive, error) {
	id, err := arm.ParseResourceID(clusterID)
	if err != nil || !strings.EqualFold(id.ResourceType(), ClusterType) || id.ResourceGroup == "" {
		return nil, archiveErr(CodeClusterNotFound, "'%s' is not a cluster resource ID.", clip(clusterID, 300))
	}
	c, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(id))
	if isNotFound(err) {
		return nil, archiveErr(CodeClusterNotFound, "The cluster '%s' does not exist.", id.String())
	}
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if s := c.SecretArchiveSettings; s != nil && s.VaultURI != "" {
		return p.resolveClusterPath(ctx, c, s)
	}
	if sa := c.SecretArchive; sa != nil && sa.UseKeyVault == useKeyVaultTrue {
		return p.resolveManagerPath(ctx, c, sa)
	}
	if c.SecretArchive != nil {
		return nil, archiveErr(CodeSecretArchiveNotConfigured,
			"The cluster '%s' names a key vault in secretArchive but useKeyVault is False, and secretArchiveSettings is not set.", c.Name)
	}
	return nil, archiveErr(CodeSecretArchiveNotConfigured,
		"The cluster '%s' has no secret archive: set secretArchiveSettings (cluster identity) or secretArchive with useKeyVault True (cluster manager identity).", c.Name)
}

func (p *Provider) resolveClusterPath(ctx context.Context, c *clusterRecord, s *secretArchiveSettings) (*rotation.Archive, error) {
	cid := c.id().String()
	a := &rotation.Archive{Path: rotation.PathCluster, VaultURI: s.VaultURI, EncryptionPublicKey: s.EncryptionPublicKey}
	if a.EncryptionPublicKey == "" {
		a.EncryptionPublicKey = c.EncryptionPublicKey
	}
	a.VaultID = p.vaultIDForURI(ctx, s.VaultURI)
	ai := s.AssociatedIdentity
	if ai == nil || ai.IdentityType == "" {
		return nil, archiveErr(CodeIdentityNotConfigured,
			"The cluster '%s' secretArchiveSettings names no associatedIdentity.identityType.", c.Name)
	}
	blk, err := p.ids.GetResourceIdentity(ctx, cid)
	if err != nil {
		return nil, azerr.From(err)
	}
	switch ai.IdentityType {
	case identitySystemSelector:
		if blk.PrincipalID == "" {
			return nil, archiveErr(CodeIdentityNotConfigured,
				"The cluster '%s' secretArchiveSettings selects SystemAssignedIdentity, but the cluster has no system-assigned identity.", c.Name)
		}
		a.IdentityObjectID = blk.PrincipalID
	case identityUserSelector:
		want := ai.UserAssignedIdentityResourceID
		for rid, ref := range blk.UserAssignedIdentities {
			if strings.EqualFold(rid, want) {
				a.IdentityObjectID, a.UserAssignedIdentityID = ref.PrincipalID, rid
			}
		}
		if a.IdentityObjectID == "" {
			return nil, archiveErr(CodeIdentityNotConfigured,
				"The user-assigned identity '%s' named by the cluster '%s' secretArchiveSettings is not assigned to the cluster (or no longer exists).",
				clip(want, 300), c.Name)
		}
	default:
		return nil, archiveErr(CodeIdentityNotConfigured, "The cluster '%s' secretArchiveSettings identity type is not supported.", c.Name)
	}
	return a, nil
}

func (p *Provider) resolveManagerPath(ctx context.Context, c *clusterRecord, sa *secretArchive) (*rotation.Archive, error) {
	vid, err := arm.ParseResourceID(sa.KeyVaultID)
	if err != nil {
		return nil, archiveErr(CodeSecretArchiveNotConfigured, "The cluster '%s' secretArchive.keyVaultId is not a resource ID.", c.Name)
	}
	a := &rotation.Archive{Path: rotation.PathClusterManager, VaultID: vid.String(), VaultURI: p.vaultURIFor(vid.Name()),
		EncryptionPublicKey: c.EncryptionPublicKey}
	if c.ClusterManagerID == "" {
		return nil, archiveErr(CodeClusterManagerNotConfigured,
			"The cluster '%s' uses secretArchive, which is delivered with its cluster manager's identity, but names no cluster manager.", c.Name)
	}
	mid, err := arm.ParseResourceID(c.ClusterManagerID)
	if err != nil {
		return nil, archiveErr(CodeClusterManagerNotConfigured, "The cluster '%s' clusterManagerId is invalid.", c.Name)
	}
	if _, _, err := store.GetJSON[managerRecord](ctx, p.st, keyOf(mid)); isNotFound(err) {
		return nil, archiveErr(CodeClusterManagerNotFound, "The cluster manager '%s' of cluster '%s' does not exist.", mid.String(), c.Name)
	} else if err != nil {
		return nil, azerr.Internal(err)
	}
	blk, err := p.ids.GetResourceIdentity(ctx, mid.String())
	if err != nil {
		return nil, azerr.From(err)
	}
	switch {
	case blk.PrincipalID != "":
		a.IdentityObjectID = blk.PrincipalID
	case len(blk.UserAssignedIdentities) == 1:
		for rid, ref := range blk.UserAssignedIdentities {
			a.IdentityObjectID, a.UserAssignedIdentityID = ref.PrincipalID, rid
		}
	case len(blk.UserAssignedIdentities) > 1:
		ids := make([]string, 0, len(blk.UserAssignedIdentities))
		for rid := range blk.UserAssignedIdentities {
			ids = append(ids, rid)
		}
		sort.Strings(ids)
		return nil, archiveErr(CodeAmbiguousIdentity,
			"The cluster manager '%s' has %d user-assigned identities and no system-assigned one, so the identity that writes to the vault is ambiguous; give it a system-assigned identity or keep one user-assigned identity (%s).",
			mid.Name(), len(ids), strings.Join(ids, ", "))
	default:
		return nil, archiveErr(CodeIdentityNotConfigured,
			"The cluster manager '%s' has no managed identity; add one (clustermanager update --mi-system-assigned or --mi-user-assigned).", mid.Name())
	}
	return a, nil
}

// OwnerState returns the machine state of an owner resource: "Cordoned" for
// a cordoned bare-metal machine (never rotated), "Ready" for a deployed
// machine, appliance or cluster, "Provisioning" for one of a cluster not yet
// deployed (rotation.ArchiveResolver).
func (p *Provider) OwnerState(ctx context.Context, ownerID string) (string, error) {
	id, err := arm.ParseResourceID(ownerID)
	if err != nil || id.ResourceGroup == "" || !strings.EqualFold(id.Namespace(), Namespace) {
		return "", azerr.NotFound("ResourceNotFound", "'%s' is not a Microsoft.NetworkCloud resource ID.", clip(ownerID, 300))
	}
	switch strings.ToLower(id.TypePath()) {
	case strings.ToLower(typeClusters):
		c, _, err := store.GetJSON[clusterRecord](ctx, p.st, keyOf(id))
		if isNotFound(err) {
			return "", arm.ResourceNotFound(id)
		}
		if err != nil {
			return "", azerr.Internal(err)
		}
		if c.DeployState == statusRunning {
			return OwnerReady, nil
		}
		return OwnerProvisioning, nil
	case strings.ToLower(typeMachines):
		m, _, err := store.GetJSON[machineRecord](ctx, p.st, keyOf(id))
		if isNotFound(err) {
			return OwnerProvisioning, nil // defined, not deployed yet
		}
		if err != nil {
			return "", azerr.Internal(err)
		}
		if m.CordonStatus == cordoned {
			return OwnerCordoned, nil
		}
		return OwnerReady, nil
	case strings.ToLower(typeAppliances):
		_, _, err := store.GetJSON[applianceRecord](ctx, p.st, keyOf(id))
		if isNotFound(err) {
			return OwnerProvisioning, nil
		}
		if err != nil {
			return "", azerr.Internal(err)
		}
		return OwnerReady, nil
	}
	return "", azerr.NotFound("ResourceNotFound", "'%s' does not hold managed credentials.", id.String())
}
