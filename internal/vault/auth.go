package vault

import (
	"net/http"
	"net/netip"
	"strings"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// challenge sets Key Vault's bearer challenge. Values carry no spaces or '='
// because the SDKs split the header naively; the tenant is the fourth '/'
// segment of authorization.
func (s *Service) challenge(w http.ResponseWriter, v *VaultInfo) {
	w.Header().Set("WWW-Authenticate",
		`Bearer authorization="`+s.authority+"/"+v.TenantID+`", resource="`+s.resource+`"`)
}

// authenticate checks that the server's middleware verified a token and that
// the token is meant for this plane and this vault's tenant.
func (s *Service) authenticate(v *VaultInfo, info *principal.Info) *azerr.Error {
	p := info.Principal
	if p == nil {
		if info.AuthError != "" {
			return azerr.Unauthorized("%s", info.AuthError)
		}
		return azerr.Unauthorized(msgMissingToken)
	}
	aud := strings.ToLower(strings.TrimSuffix(p.Audience, "/.default"))
	if !s.audiences[aud] {
		return azerr.Unauthorized("AKV10022: Invalid audience. Expected %s, found: %s.", s.resource, clip(p.Audience, 200))
	}
	if !strings.EqualFold(p.TenantID, v.TenantID) {
		return azerr.Unauthorized("AKV10032: Invalid issuer. Expected one of %s, found %s.",
			s.issuer(v.TenantID), s.issuer(clip(p.TenantID, 64)))
	}
	return nil
}

func (s *Service) issuer(tenant string) string { return s.authority + "/" + tenant + "/v2.0" }

// caller is the "Caller:" value of Key Vault's 403 messages.
func (s *Service) caller(p *principal.Principal) string {
	c := "appid=" + p.AppID + ";oid=" + p.ObjectID + ";iss=" + s.issuer(p.TenantID)
	if p.MIResourceID != "" {
		c += ";xms_mirid=" + p.MIResourceID
	}
	return c
}

// firewall applies the vault's network rules to the caller's address.
// Trusted platform callers pass when the vault allows AzureServices.
func (s *Service) firewall(v *VaultInfo, info *principal.Info) *azerr.Error {
	acl := v.NetworkACLs
	trusted := info.Principal != nil && info.Principal.Platform &&
		acl != nil && strings.EqualFold(acl.Bypass, "AzureServices")
	if strings.EqualFold(v.PublicNetworkAccess, "Disabled") {
		if trusted {
			return nil
		}
		return azerr.Forbidden("Public network access is disabled and request is not from a trusted service nor via an approved private link.\r\nCaller: %s\r\nVault: %s",
			s.caller(info.Principal), vaultRef(v)).WithInner(innerConnection)
	}
	if acl == nil || !strings.EqualFold(acl.DefaultAction, "Deny") || trusted {
		return nil
	}
	if ipAllowed(info.ClientIP, acl.IPRules) {
		return nil
	}
	return azerr.Forbidden("Client address is not authorized and caller is not a trusted service.\r\nClient address: %s\r\nCaller: %s\r\nVault: %s",
		clip(info.ClientIP, 64), s.caller(info.Principal), vaultRef(v)).WithInner(innerFirewall)
}

// ipAllowed reports whether ip matches an address or CIDR rule.
func ipAllowed(ip string, rules []IPRule) bool {
	addr, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil {
		return false
	}
	addr = addr.WithZone("").Unmap()
	for _, r := range rules {
		val := strings.TrimSpace(r.Value)
		if strings.Contains(val, "/") {
			pfx, err := netip.ParsePrefix(val)
			if err != nil {
				continue
			}
			pfx = pfx.Masked()
			if pfx.Addr().Is4In6() {
				pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
			}
			if pfx.Contains(addr) {
				return true
			}
			continue
		}
		if ra, err := netip.ParseAddr(val); err == nil && ra.WithZone("").Unmap() == addr {
			return true
		}
	}
	return false
}

// authorize asks RBAC or the access policies, as the vault is configured.
func (s *Service) authorize(rq *request) error {
	v, p, spec := rq.vault, rq.p, rq.spec
	scope := v.ResourceID
	if !spec.VaultScope {
		scope += "/" + spec.kind() + "/" + rq.route.Name
	}
	if v.EnableRBACAuthorization {
		d, err := s.decider.Decide(rq.r.Context(), authz.Request{
			Principal: p, Action: spec.Action, DataAction: true, Scope: scope,
		})
		if err != nil {
			return azerr.From(err)
		}
		rq.info.IsRBACAuthorized = d.Allowed
		if d.Allowed {
			return nil
		}
		return azerr.Forbidden("Caller is not authorized to perform action on resource.\r\n"+
			"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
			"Caller: %s\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n"+
			"DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: %s\r\n",
			s.caller(p), spec.Action, strings.ToLower(scope), vaultRef(v)).WithInner(innerRBAC)
	}
	rq.info.IsAccessPolicy = true
	if authz.PolicyAllows(v.AccessPolicies, p, spec.kind(), spec.Perm) {
		return nil
	}
	return azerr.Forbidden("The user, group or application '%s' does not have %s %s permission on key vault '%s'. %s",
		s.caller(p), spec.kind(), spec.Perm, vaultRef(v), helpAccessPolicy).WithInner(innerAccessPolicy)
}
