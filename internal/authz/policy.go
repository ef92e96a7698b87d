package authz

import (
	"slices"
	"strings"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// Access-policy object kinds.
const (
	KindSecrets      = "secrets"
	KindKeys         = "keys"
	KindCertificates = "certificates"
	KindStorage      = "storage"
)

// PermissionAll grants every permission of its kind.
const PermissionAll = "all"

// maxPolicyPermissions bounds one permission list (every name once, plus
// room for "all" and a few case-variant duplicates).
const maxPolicyPermissions = 64

// Valid access-policy permission names per kind, as the Microsoft.KeyVault
// ARM API enumerates them (in its casing; matching ignores case). "all" is
// accepted for every kind in addition to these.
var policyPermissions = map[string][]string{
	KindSecrets: {"get", "list", "set", "delete", "backup", "restore", "recover", "purge"},
	KindKeys: {"get", "list", "update", "create", "import", "delete", "recover", "backup", "restore",
		"decrypt", "encrypt", "unwrapKey", "wrapKey", "verify", "sign", "purge",
		"release", "rotate", "getrotationpolicy", "setrotationpolicy"},
	KindCertificates: {"get", "list", "delete", "create", "import", "update", "managecontacts",
		"getissuers", "listissuers", "setissuers", "deleteissuers", "manageissuers",
		"recover", "purge", "backup", "restore"},
	KindStorage: {"get", "list", "delete", "set", "update", "regeneratekey", "recover", "purge",
		"backup", "restore", "setsas", "listsas", "getsas", "deletesas"},
}

// PolicyKinds returns the access-policy kinds.
func PolicyKinds() []string {
	return []string{KindSecrets, KindKeys, KindCertificates, KindStorage}
}

// PolicyPermissionNames returns the valid permission names of kind (without
// "all"), or nil for an unknown kind.
func PolicyPermissionNames(kind string) []string {
	return slices.Clone(policyPermissions[strings.ToLower(kind)])
}

func validPolicyPermission(kind, perm string) bool {
	if strings.EqualFold(perm, PermissionAll) {
		return true
	}
	for _, p := range policyPermissions[kind] {
		if strings.EqualFold(p, perm) {
			return true
		}
	}
	return false
}

// ValidatePermissions checks one permission list of an access policy.
func ValidatePermissions(kind string, perms []string) error {
	kind = strings.ToLower(kind)
	names, ok := policyPermissions[kind]
	if !ok {
		return azerr.BadParameter("'%s' is not an access-policy permission kind; valid kinds: %s.",
			truncate(kind, 50), strings.Join(PolicyKinds(), ", "))
	}
	if len(perms) > maxPolicyPermissions {
		return azerr.BadParameter("At most %d %s permissions may be listed.", maxPolicyPermissions, kind).
			WithTarget("permissions." + kind)
	}
	for _, p := range perms {
		if !validPolicyPermission(kind, p) {
			return azerr.BadParameter("'%s' is not a valid %s permission; valid values: all, %s.",
				truncate(p, 50), kind, strings.Join(names, ", ")).WithTarget("permissions." + kind)
		}
	}
	return nil
}

// permissionsOf returns the policy's list for kind.
func permissionsOf(p *Permissions, kind string) []string {
	switch kind {
	case KindSecrets:
		return p.Secrets
	case KindKeys:
		return p.Keys
	case KindCertificates:
		return p.Certificates
	case KindStorage:
		return p.Storage
	}
	return nil
}

// PolicyAllows reports whether some access policy grants perm on kind to p.
// A policy applies when its tenantId and objectId are the principal's; a
// policy that also names an applicationId (compound identity) applies only
// when the principal calls through that application. Names compare
// case-insensitively and "all" grants every permission of the kind.
func PolicyAllows(policies []AccessPolicy, p *principal.Principal, kind, perm string) bool {
	if p == nil || p.ObjectID == "" || p.TenantID == "" || perm == "" {
		return false
	}
	kind = strings.ToLower(kind)
	if _, ok := policyPermissions[kind]; !ok {
		return false
	}
	for i := range policies {
		ap := &policies[i]
		if !strings.EqualFold(ap.TenantID, p.TenantID) || !strings.EqualFold(ap.ObjectID, p.ObjectID) {
			continue
		}
		if ap.ApplicationID != "" && !strings.EqualFold(ap.ApplicationID, p.AppID) {
			continue
		}
		for _, g := range permissionsOf(&ap.Permissions, kind) {
			if strings.EqualFold(g, PermissionAll) || strings.EqualFold(g, perm) {
				return true
			}
		}
	}
	return false
}
