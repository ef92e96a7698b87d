package keyvault

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// ValidateVaultName applies Azure's vault naming rules, one message per
// rule so the caller knows which one the name breaks.
func ValidateVaultName(name string) error {
	bad := func(why string) error {
		return arm.InvalidResourceName("The vault name '%s' is invalid: %s", clip(name, 40), why)
	}
	if len(name) < 3 || len(name) > 24 {
		return bad("it must be between 3 and 24 characters long.")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return bad("it may contain only letters (a-z, A-Z), digits (0-9) and hyphens (-).")
		}
	}
	if c := name[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return bad("it must start with a letter.")
	}
	if name[len(name)-1] == '-' {
		return bad("it must end with a letter or a digit.")
	}
	if strings.Contains(name, "--") {
		return bad("it must not contain consecutive hyphens.")
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func badProp(target, format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusBadRequest, "BadRequest", format, args...).WithTarget(target)
}

// Request bodies. Pointers tell "absent" from "zero" for PATCH merges.

type vaultBody struct {
	Location   *string            `json:"location"`
	Tags       *map[string]string `json:"tags"`
	Properties *propsIn           `json:"properties"`
}

type skuIn struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type networkACLsIn struct {
	Bypass              *string           `json:"bypass"`
	DefaultAction       *string           `json:"defaultAction"`
	IPRules             []ipRule          `json:"ipRules"`
	VirtualNetworkRules []json.RawMessage `json:"virtualNetworkRules"`
}

type propsIn struct {
	TenantID                     *string               `json:"tenantId"`
	SKU                          *skuIn                `json:"sku"`
	AccessPolicies               *[]authz.AccessPolicy `json:"accessPolicies"`
	EnabledForDeployment         *bool                 `json:"enabledForDeployment"`
	EnabledForDiskEncryption     *bool                 `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment *bool                 `json:"enabledForTemplateDeployment"`
	EnableSoftDelete             *bool                 `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    *int                  `json:"softDeleteRetentionInDays"`
	EnableRBACAuthorization      *bool                 `json:"enableRbacAuthorization"`
	CreateMode                   *string               `json:"createMode"`
	EnablePurgeProtection        *bool                 `json:"enablePurgeProtection"`
	NetworkACLs                  *networkACLsIn        `json:"networkAcls"`
	PublicNetworkAccess          *string               `json:"publicNetworkAccess"`
}

// createMode returns "default" or "recover".
func (in *propsIn) createMode() (string, error) {
	if in == nil || in.CreateMode == nil || *in.CreateMode == "" {
		return "default", nil
	}
	switch strings.ToLower(*in.CreateMode) {
	case "default":
		return "default", nil
	case "recover":
		return "recover", nil
	}
	return "", badProp("properties.createMode", "The createMode '%s' is invalid; valid values are 'default' and 'recover'.", clip(*in.CreateMode, 40))
}

// mode says how apply treats absent properties.
type mode int

const (
	modeCreate  mode = iota // PUT of a new vault: required properties must be present
	modeReplace             // PUT of an existing vault: required properties must be present, others merge
	modePatch               // PATCH: everything optional
)

// apply validates in and merges it into cur (nil for a new vault).
func apply(cur *props, in *propsIn, m mode) (props, error) {
	var out props
	if cur != nil {
		out = *cur
	} else {
		out = props{SoftDeleteRetentionInDays: DefaultRetentionDay, PublicNetworkAccess: "Enabled",
			AccessPolicies: []authz.AccessPolicy{}}
	}
	if in == nil {
		if m == modePatch {
			return out, nil
		}
		return out, badProp("properties", "The 'properties' of the vault are required.")
	}
	if in.TenantID == nil && m != modePatch {
		return out, badProp("properties.tenantId", "The property 'tenantId' is required.")
	}
	if in.TenantID != nil {
		if !arm.IsGUID(*in.TenantID) {
			return out, badProp("properties.tenantId", "The property 'tenantId' must be a GUID.")
		}
		out.TenantID = strings.ToLower(*in.TenantID)
	}
	if in.SKU == nil && m != modePatch {
		return out, badProp("properties.sku", "The property 'sku' is required.")
	}
	if in.SKU != nil {
		if !strings.EqualFold(in.SKU.Family, "A") {
			return out, badProp("properties.sku.family", "The sku family '%s' is invalid; the only valid value is 'A'.", clip(in.SKU.Family, 20))
		}
		switch n := strings.ToLower(in.SKU.Name); n {
		case "standard", "premium":
			out.SKUName = n
		default:
			return out, badProp("properties.sku.name", "The sku name '%s' is invalid; valid values are 'standard' and 'premium'.", clip(in.SKU.Name, 20))
		}
	}
	if in.AccessPolicies != nil {
		if err := validatePolicies(*in.AccessPolicies); err != nil {
			return out, err
		}
		out.AccessPolicies = normalizePolicies(*in.AccessPolicies)
	}
	if in.EnableSoftDelete != nil && !*in.EnableSoftDelete {
		return out, badProp("properties.enableSoftDelete",
			"Soft delete cannot be disabled: 'enableSoftDelete' may only be true, as every vault is soft-delete enabled.")
	}
	if in.SoftDeleteRetentionInDays != nil {
		d := *in.SoftDeleteRetentionInDays
		if cur != nil && d != cur.SoftDeleteRetentionInDays {
			return out, badProp("properties.softDeleteRetentionInDays",
				"The property 'softDeleteRetentionInDays' is %d days and cannot be changed after the vault is created.", cur.SoftDeleteRetentionInDays)
		}
		if d < MinRetentionDays || d > MaxRetentionDays {
			return out, badProp("properties.softDeleteRetentionInDays",
				"The property 'softDeleteRetentionInDays' must be between %d and %d days.", MinRetentionDays, MaxRetentionDays)
		}
		out.SoftDeleteRetentionInDays = d
	}
	if in.EnablePurgeProtection != nil {
		if !*in.EnablePurgeProtection && cur != nil && cur.EnablePurgeProtection {
			return out, badProp("properties.enablePurgeProtection",
				"Purge protection is enabled on this vault and cannot be disabled: 'enablePurgeProtection' can only be set to true.")
		}
		out.EnablePurgeProtection = *in.EnablePurgeProtection
	}
	setBool(&out.EnabledForDeployment, in.EnabledForDeployment)
	setBool(&out.EnabledForDiskEncryption, in.EnabledForDiskEncryption)
	setBool(&out.EnabledForTemplateDeployment, in.EnabledForTemplateDeployment)
	setBool(&out.EnableRBACAuthorization, in.EnableRBACAuthorization)
	if in.PublicNetworkAccess != nil {
		switch strings.ToLower(*in.PublicNetworkAccess) {
		case "enabled":
			out.PublicNetworkAccess = "Enabled"
		case "disabled":
			out.PublicNetworkAccess = "Disabled"
		default:
			return out, badProp("properties.publicNetworkAccess",
				"The property 'publicNetworkAccess' is '%s'; valid values are 'Enabled' and 'Disabled'.", clip(*in.PublicNetworkAccess, 20))
		}
	}
	if in.NetworkACLs != nil {
		acl, err := validateNetworkACLs(in.NetworkACLs)
		if err != nil {
			return out, err
		}
		out.NetworkACLs = acl
	}
	return out, nil
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}

// validateNetworkACLs checks the firewall. Virtual network rules have no
// meaning outside Azure and are ignored.
func validateNetworkACLs(in *networkACLsIn) (*vault.NetworkACLs, error) {
	out := &vault.NetworkACLs{DefaultAction: "Allow", Bypass: "AzureServices"}
	if in.DefaultAction != nil {
		switch strings.ToLower(*in.DefaultAction) {
		case "allow":
			out.DefaultAction = "Allow"
		case "deny":
			out.DefaultAction = "Deny"
		default:
			return nil, badProp("properties.networkAcls.defaultAction",
				"The network rule default action '%s' is invalid; valid values are 'Allow' and 'Deny'.", clip(*in.DefaultAction, 20))
		}
	}
	if in.Bypass != nil {
		switch strings.ToLower(*in.Bypass) {
		case "azureservices":
			out.Bypass = "AzureServices"
		case "none":
			out.Bypass = "None"
		default:
			return nil, badProp("properties.networkAcls.bypass",
				"The network rule bypass '%s' is invalid; valid values are 'AzureServices' and 'None'.", clip(*in.Bypass, 20))
		}
	}
	if len(in.IPRules) > MaxIPRules {
		return nil, badProp("properties.networkAcls.ipRules", "At most %d IP rules are allowed.", MaxIPRules)
	}
	for _, r := range in.IPRules {
		v := strings.TrimSpace(r.Value)
		if err := validIPRule(v); err != nil {
			return nil, err
		}
		out.IPRules = append(out.IPRules, vault.IPRule{Value: v})
	}
	return out, nil
}

func validIPRule(v string) error {
	bad := func(why string) error {
		return badProp("properties.networkAcls.ipRules", "The IP rule '%s' is invalid: %s", clip(v, 50), why)
	}
	if v == "" {
		return bad("the value is empty.")
	}
	if strings.Contains(v, "/") {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			return bad("it is not an IPv4 address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24).")
		}
		if !pfx.Addr().Is4() {
			return bad("only IPv4 addresses and CIDR ranges are supported.")
		}
		return nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return bad("it is not an IPv4 address or CIDR range (e.g. 203.0.113.7 or 203.0.113.0/24).")
	}
	if !a.Is4() {
		return bad("only IPv4 addresses and CIDR ranges are supported.")
	}
	return nil
}

// validatePolicies checks access-policy entries; permission names are
// checked by authz, which owns the access-policy model.
func validatePolicies(ps []authz.AccessPolicy) error {
	if len(ps) > MaxAccessPolicies {
		return badProp("properties.accessPolicies", "A vault can have at most %d access policies.", MaxAccessPolicies)
	}
	for i, ap := range ps {
		if !arm.IsGUID(ap.TenantID) {
			return badProp("properties.accessPolicies", "Access policy %d: 'tenantId' must be a GUID.", i)
		}
		if !arm.IsGUID(ap.ObjectID) {
			return badProp("properties.accessPolicies", "Access policy %d: 'objectId' must be a GUID.", i)
		}
		if ap.ApplicationID != "" && !arm.IsGUID(ap.ApplicationID) {
			return badProp("properties.accessPolicies", "Access policy %d: 'applicationId' must be a GUID when present.", i)
		}
		for _, kind := range authz.PolicyKinds() {
			if err := authz.ValidatePermissions(kind, kindPerms(&ap.Permissions, kind)); err != nil {
				return err
			}
		}
	}
	return nil
}

func kindPerms(p *authz.Permissions, kind string) []string {
	switch kind {
	case authz.KindSecrets:
		return p.Secrets
	case authz.KindKeys:
		return p.Keys
	case authz.KindCertificates:
		return p.Certificates
	case authz.KindStorage:
		return p.Storage
	}
	return nil
}

func setKindPerms(p *authz.Permissions, kind string, v []string) {
	switch kind {
	case authz.KindSecrets:
		p.Secrets = v
	case authz.KindKeys:
		p.Keys = v
	case authz.KindCertificates:
		p.Certificates = v
	case authz.KindStorage:
		p.Storage = v
	}
}

// normalizePolicies lowercases ids so entries compare reliably.
func normalizePolicies(ps []authz.AccessPolicy) []authz.AccessPolicy {
	out := make([]authz.AccessPolicy, 0, len(ps))
	for _, ap := range ps {
		ap.TenantID = strings.ToLower(ap.TenantID)
		ap.ObjectID = strings.ToLower(ap.ObjectID)
		ap.ApplicationID = strings.ToLower(ap.ApplicationID)
		out = append(out, ap)
	}
	return out
}

func samePrincipal(a, b *authz.AccessPolicy) bool {
	return strings.EqualFold(a.TenantID, b.TenantID) && strings.EqualFold(a.ObjectID, b.ObjectID) &&
		strings.EqualFold(a.ApplicationID, b.ApplicationID)
}

func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !containsFold(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func subtract(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !containsFold(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func emptyPerms(p *authz.Permissions) bool {
	return len(p.Keys)+len(p.Secrets)+len(p.Certificates)+len(p.Storage) == 0
}

// editPolicies applies an accessPolicies add/replace/remove to cur.
func editPolicies(cur, in []authz.AccessPolicy, kind string) ([]authz.AccessPolicy, error) {
	in = normalizePolicies(in)
	out := append([]authz.AccessPolicy(nil), cur...)
	switch kind {
	case "replace":
		out = in
	case "add":
		for _, ap := range in {
			found := false
			for i := range out {
				if samePrincipal(&out[i], &ap) {
					for _, k := range authz.PolicyKinds() {
						setKindPerms(&out[i].Permissions, k, union(kindPerms(&out[i].Permissions, k), kindPerms(&ap.Permissions, k)))
					}
					found = true
					break
				}
			}
			if !found {
				out = append(out, ap)
			}
		}
	case "remove":
		for _, ap := range in {
			kept := out[:0:0]
			for i := range out {
				e := out[i]
				if samePrincipal(&e, &ap) {
					if emptyPerms(&ap.Permissions) {
						continue
					}
					for _, k := range authz.PolicyKinds() {
						setKindPerms(&e.Permissions, k, subtract(kindPerms(&e.Permissions, k), kindPerms(&ap.Permissions, k)))
					}
					if emptyPerms(&e.Permissions) {
						continue
					}
				}
				kept = append(kept, e)
			}
			out = kept
		}
	default:
		return nil, azerr.NotFound("NotFound",
			"The access policy operation '%s' is not valid; valid operations are 'add', 'replace' and 'remove'.", clip(kind, 20))
	}
	if len(out) > MaxAccessPolicies {
		return nil, badProp("properties.accessPolicies", "A vault can have at most %d access policies.", MaxAccessPolicies)
	}
	if out == nil {
		out = []authz.AccessPolicy{}
	}
	return out, nil
}
