package rotation

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// actionAssignIdentity is what Managed Identity Operator grants on a
// user-assigned identity (the guide's requirement for the platform app).
const actionAssignIdentity = "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action"

// resolved is a checked archive, ready for delivery.
type resolved struct {
	arch     *Archive
	vaultURI string
	info     *vault.VaultInfo
	pub      *rsa.PublicKey
}

func is404(err error) bool {
	var ae *azerr.Error
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// vaultNameFromURI reads the vault name from https://{vault}.{domain}[:port]/
// or the path form https://{host}/vaults/{vault}/.
func vaultNameFromURI(uri string) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" || u.User != nil {
		return "", false
	}
	if rest, ok := strings.CutPrefix(u.Path, "/vaults/"); ok {
		name, _, _ := strings.Cut(rest, "/")
		return name, name != ""
	}
	host := u.Hostname()
	name, _, ok := strings.Cut(host, ".")
	return name, ok && name != ""
}

// preflight resolves the archive and checks, by name, every condition the
// guide requires for write access: configured, identity present, vault
// present and in RBAC mode, firewall compatible with the path, Managed
// Identity Operator for a user-assigned identity, and a role granting
// setSecret on the secret's scope.
func (e *Service) preflight(ctx context.Context, rec *credRecord) (*resolved, *condition) {
	res := e.getResolver()
	if res == nil {
		return nil, &condition{CodeArchiveResolverUnavailable, "The cluster's archive settings cannot be read yet."}
	}
	arch, err := res.ResolveArchive(ctx, rec.ClusterID)
	if err != nil {
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status < 500 {
			return nil, &condition{ae.Code, clipStr(ae.Message, maxMessageLen)}
		}
		return nil, &condition{CodeArchiveResolverUnavailable, "The cluster's archive settings could not be read."}
	}
	if arch == nil || (arch.VaultURI == "" && arch.VaultID == "") {
		return nil, &condition{CodeSecretArchiveNotConfigured,
			"No secret archive vault is configured for the cluster; rotated credentials cannot be delivered, so rotation does not start."}
	}
	if arch.IdentityObjectID == "" {
		return nil, &condition{CodeIdentityNotConfigured, "The secret archive names no managed identity to write with."}
	}
	// Identity.
	obj, err := e.cfg.Principals.LookupPrincipal(ctx, arch.IdentityObjectID)
	if err != nil {
		if is404(err) {
			return nil, &condition{CodeIdentityNotFound, fmt.Sprintf("The managed identity '%s' used for the secret archive no longer exists.", clipStr(arch.IdentityObjectID, 64))}
		}
		return nil, &condition{CodeInternal, "The archive identity could not be looked up."}
	}
	if !obj.Enabled {
		return nil, &condition{CodeIdentityNotFound, fmt.Sprintf("The managed identity '%s' used for the secret archive is disabled.", obj.ObjectID)}
	}
	// Vault.
	uri := arch.VaultURI
	var name string
	if uri != "" {
		n, ok := vaultNameFromURI(uri)
		if !ok {
			return nil, &condition{CodeVaultNotFound, "The secret archive vault URI is not a valid https vault URI."}
		}
		name = n
	} else {
		name = lastSegment(arch.VaultID)
		if e.cfg.VaultURIForName == nil {
			return nil, &condition{CodeVaultNotFound, "The secret archive vault has no URI."}
		}
		uri = e.cfg.VaultURIForName(name)
	}
	if !strings.HasSuffix(uri, "/") {
		uri += "/"
	}
	info, err := e.cfg.Vaults.LookupVault(ctx, name)
	if err != nil {
		if is404(err) {
			return nil, &condition{CodeVaultNotFound, fmt.Sprintf("The secret archive vault '%s' was not found (deleted, or never created).", clipStr(name, 64))}
		}
		return nil, &condition{CodeInternal, "The secret archive vault could not be looked up."}
	}
	if arch.VaultID != "" && !strings.EqualFold(strings.TrimRight(arch.VaultID, "/"), info.ResourceID) {
		return nil, &condition{CodeVaultNotFound, fmt.Sprintf("The secret archive vault '%s' was not found.", clipStr(arch.VaultID, 300))}
	}
	if !info.EnableRBACAuthorization {
		return nil, &condition{CodeVaultNotRbacMode, fmt.Sprintf("The vault '%s' uses access policies; the secret archive requires the Azure role-based access control permission model.", info.Name)}
	}
	if !strings.EqualFold(obj.TenantID, info.TenantID) {
		return nil, &condition{CodeIdentityTenantMismatch, fmt.Sprintf("The archive identity belongs to tenant %s, but the vault '%s' to tenant %s.", obj.TenantID, info.Name, info.TenantID)}
	}
	firewallOn := strings.EqualFold(info.PublicNetworkAccess, "Disabled") ||
		(info.NetworkACLs != nil && strings.EqualFold(info.NetworkACLs.DefaultAction, "Deny"))
	if firewallOn {
		if arch.Path != PathClusterManager {
			return nil, &condition{CodeVaultFirewallEnabled, fmt.Sprintf("The vault '%s' has its firewall enabled; delivery with the cluster's managed identity requires a vault without a firewall. Use the cluster manager identity (secretArchive) with bypass AzureServices, or disable the firewall.", info.Name)}
		}
		if info.NetworkACLs == nil || !strings.EqualFold(info.NetworkACLs.Bypass, "AzureServices") {
			return nil, &condition{CodeVaultFirewallEnabled, fmt.Sprintf("The vault '%s' has its firewall enabled without allowing trusted services (bypass AzureServices).", info.Name)}
		}
	}
	// Managed Identity Operator for the platform on a user-assigned identity.
	if arch.UserAssignedIdentityID != "" {
		plat, err := e.cfg.PlatformPrincipal(ctx)
		if err != nil || plat == nil {
			return nil, &condition{CodeInternal, "The platform principal could not be determined."}
		}
		d, err := e.cfg.Decider.Decide(ctx, authz.Request{Principal: plat, Action: actionAssignIdentity, Scope: arch.UserAssignedIdentityID})
		if err != nil {
			return nil, &condition{CodeInternal, "The Managed Identity Operator check failed."}
		}
		if !d.Allowed {
			return nil, &condition{CodeMissingManagedIdentityOperator, fmt.Sprintf("The platform application (%s) needs the Managed Identity Operator role (or %s) on the user-assigned identity '%s'.", plat.AppID, actionAssignIdentity, clipStr(arch.UserAssignedIdentityID, 300))}
		}
	}
	// Role with setSecret on the secret's scope.
	p := &principal.Principal{TenantID: obj.TenantID, ObjectID: obj.ObjectID, AppID: obj.AppID, Kind: obj.Kind, MIResourceID: obj.MIResourceID}
	scope := info.ResourceID + "/secrets/" + SecretName(rec.ClusterID, rec.OwnerID, rec.OwnerName, rec.Kind)
	d, err := e.cfg.Decider.Decide(ctx, authz.Request{Principal: p, Action: authz.ActionSecretSet, DataAction: true, Scope: scope})
	if err != nil {
		return nil, &condition{CodeInternal, "The role assignment check failed."}
	}
	if !d.Allowed {
		code := CodeMissingRoleAssignment
		if l, ok := e.cfg.Decider.(AssignmentLister); ok {
			as, err := l.ListAssignments(ctx, authz.AssignmentFilter{Scope: info.ResourceID, AtScope: true, PrincipalID: obj.ObjectID})
			if err == nil && len(as) > 0 {
				return nil, &condition{CodeWrongRole, fmt.Sprintf("The identity '%s' has role assignments covering vault '%s', but none grants %s; assign the Operator Nexus Key Vault Writer Service Role (%s).", obj.ObjectID, info.Name, authz.ActionSecretSet, authz.RoleOperatorNexusKeyVaultWriter)}
			}
		}
		return nil, &condition{code, fmt.Sprintf("The identity '%s' has no role assignment granting %s on vault '%s'; assign the Operator Nexus Key Vault Writer Service Role (%s) at the vault scope.", obj.ObjectID, authz.ActionSecretSet, info.Name, authz.RoleOperatorNexusKeyVaultWriter)}
	}
	out := &resolved{arch: arch, vaultURI: uri, info: info}
	if arch.EncryptionPublicKey != "" {
		pub, err := ParseEncryptionKey(arch.EncryptionPublicKey)
		if err != nil {
			return nil, &condition{CodeEncryptionKeyInvalid, "The cluster's encryptionPublicKey cannot be used: " + err.Error() + "."}
		}
		out.pub = pub
	}
	return out, nil
}
