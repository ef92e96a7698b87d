package keyvault

import (
	"fmt"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// Resource types and store layout.
const (
	Namespace       = "Microsoft.KeyVault"
	VaultType       = "Microsoft.KeyVault/vaults"
	DeletedType     = "Microsoft.KeyVault/deletedVaults"
	AccessPolicyTyp = "Microsoft.KeyVault/vaults/accessPolicies"

	prefix        = "rp/keyvault/"
	namesPrefix   = prefix + "names/"
	scopePrefix   = prefix + "scope/"
	deletedPrefix = prefix + "deleted/"
)

// APIVersions are the Microsoft.KeyVault api-versions served (the
// armkeyvault v1.5.0 client sends 2024-11-01 and, for the generic vault
// list, the Microsoft.Resources 2015-11-01 which arm serves).
var APIVersions = []string{
	"2019-09-01", "2021-10-01", "2022-07-01", "2023-02-01", "2023-07-01", "2024-11-01", "2025-05-01",
}

// Limits.
const (
	MaxAccessPolicies   = 1024
	MaxIPRules          = 1000
	MinRetentionDays    = 7
	MaxRetentionDays    = 90
	DefaultRetentionDay = 90
)

// record is a stored vault, active or soft-deleted.
type record struct {
	InternalID         string            `json:"internalId"`
	Name               string            `json:"name"`
	SubscriptionID     string            `json:"subscriptionId"`
	ResourceGroup      string            `json:"resourceGroup"`
	Location           string            `json:"location"`
	Tags               map[string]string `json:"tags"`
	Props              props             `json:"properties"`
	SystemData         *arm.SystemData   `json:"systemData,omitempty"`
	Deleted            bool              `json:"deleted,omitempty"`
	DeletionDate       *time.Time        `json:"deletionDate,omitempty"`
	ScheduledPurgeDate *time.Time        `json:"scheduledPurgeDate,omitempty"`
	// Purging is set when a purge has been accepted; recovery is then refused.
	Purging bool `json:"purging,omitempty"`
}

// props are a vault's stored properties.
type props struct {
	TenantID                     string               `json:"tenantId"`
	SKUName                      string               `json:"skuName"`
	AccessPolicies               []authz.AccessPolicy `json:"accessPolicies"`
	EnabledForDeployment         bool                 `json:"enabledForDeployment"`
	EnabledForDiskEncryption     bool                 `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment bool                 `json:"enabledForTemplateDeployment"`
	EnableRBACAuthorization      bool                 `json:"enableRbacAuthorization"`
	SoftDeleteRetentionInDays    int                  `json:"softDeleteRetentionInDays"`
	EnablePurgeProtection        bool                 `json:"enablePurgeProtection"`
	NetworkACLs                  *vault.NetworkACLs   `json:"networkAcls,omitempty"`
	PublicNetworkAccess          string               `json:"publicNetworkAccess"`
}

func nameKey(name string) string { return namesPrefix + strings.ToLower(name) }
func scopeKey(sub, rg, name string) string {
	return scopeRGPrefix(sub, rg) + strings.ToLower(name)
}
func scopeSubPrefix(sub string) string    { return scopePrefix + strings.ToLower(sub) + "/" }
func scopeRGPrefix(sub, rg string) string { return scopeSubPrefix(sub) + strings.ToLower(rg) + "/" }
func deletedKey(sub, name string) string  { return deletedSubPrefix(sub) + strings.ToLower(name) }
func deletedSubPrefix(sub string) string  { return deletedPrefix + strings.ToLower(sub) + "/" }
func (r *record) id() arm.ResourceID {
	return arm.NewResourceID(r.SubscriptionID, r.ResourceGroup, Namespace, "vaults", r.Name)
}
func (r *record) deletedID() arm.ResourceID {
	return arm.NewResourceID(r.SubscriptionID, "", Namespace, "locations", r.Location, "deletedVaults", r.Name)
}

// Wire shapes (Microsoft.KeyVault 2024-11-01).

type sku struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type ipRule struct {
	Value string `json:"value"`
}

type networkACLsOut struct {
	Bypass              string   `json:"bypass"`
	DefaultAction       string   `json:"defaultAction"`
	IPRules             []ipRule `json:"ipRules"`
	VirtualNetworkRules []any    `json:"virtualNetworkRules"`
}

type propsOut struct {
	TenantID                     string               `json:"tenantId"`
	SKU                          sku                  `json:"sku"`
	AccessPolicies               []authz.AccessPolicy `json:"accessPolicies"`
	VaultURI                     string               `json:"vaultUri"`
	EnabledForDeployment         bool                 `json:"enabledForDeployment"`
	EnabledForDiskEncryption     bool                 `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment bool                 `json:"enabledForTemplateDeployment"`
	EnableSoftDelete             bool                 `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int                  `json:"softDeleteRetentionInDays"`
	EnableRBACAuthorization      bool                 `json:"enableRbacAuthorization"`
	// Azure omits enablePurgeProtection until it is turned on.
	EnablePurgeProtection *bool           `json:"enablePurgeProtection,omitempty"`
	NetworkACLs           *networkACLsOut `json:"networkAcls,omitempty"`
	PublicNetworkAccess   string          `json:"publicNetworkAccess"`
	ProvisioningState     string          `json:"provisioningState"`
}

type deletedPropsOut struct {
	VaultID                string            `json:"vaultId"`
	Location               string            `json:"location"`
	DeletionDate           time.Time         `json:"deletionDate"`
	ScheduledPurgeDate     time.Time         `json:"scheduledPurgeDate"`
	Tags                   map[string]string `json:"tags"`
	PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
}

type deletedOut struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties deletedPropsOut `json:"properties"`
}

func (p *Provider) vaultURI(name string) string {
	host := strings.ToLower(name) + "." + p.opts.VaultDomain
	if p.opts.VaultPort != 0 && p.opts.VaultPort != 443 {
		host += fmt.Sprintf(":%d", p.opts.VaultPort)
	}
	return "https://" + host + "/"
}

func (p *Provider) render(r *record) arm.Resource {
	pr := r.Props
	out := propsOut{
		TenantID: pr.TenantID, SKU: sku{Family: "A", Name: pr.SKUName},
		AccessPolicies: pr.AccessPolicies, VaultURI: p.vaultURI(r.Name),
		EnabledForDeployment: pr.EnabledForDeployment, EnabledForDiskEncryption: pr.EnabledForDiskEncryption,
		EnabledForTemplateDeployment: pr.EnabledForTemplateDeployment, EnableSoftDelete: true,
		SoftDeleteRetentionInDays: pr.SoftDeleteRetentionInDays, EnableRBACAuthorization: pr.EnableRBACAuthorization,
		PublicNetworkAccess: pr.PublicNetworkAccess, ProvisioningState: "Succeeded",
	}
	if out.AccessPolicies == nil {
		out.AccessPolicies = []authz.AccessPolicy{}
	}
	if pr.EnablePurgeProtection {
		t := true
		out.EnablePurgeProtection = &t
	}
	if acl := pr.NetworkACLs; acl != nil {
		n := &networkACLsOut{Bypass: acl.Bypass, DefaultAction: acl.DefaultAction, IPRules: []ipRule{}, VirtualNetworkRules: []any{}}
		for _, r := range acl.IPRules {
			n.IPRules = append(n.IPRules, ipRule{Value: r.Value})
		}
		out.NetworkACLs = n
	}
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return arm.Resource{ID: r.id().String(), Name: r.Name, Type: VaultType, Location: r.Location, Tags: tags,
		SystemData: r.SystemData, Properties: out}
}

func renderDeleted(r *record) deletedOut {
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	out := deletedOut{ID: r.deletedID().String(), Name: r.Name, Type: DeletedType,
		Properties: deletedPropsOut{VaultID: r.id().String(), Location: r.Location, Tags: tags,
			PurgeProtectionEnabled: r.Props.EnablePurgeProtection}}
	if r.DeletionDate != nil {
		out.Properties.DeletionDate = *r.DeletionDate
	}
	if r.ScheduledPurgeDate != nil {
		out.Properties.ScheduledPurgeDate = *r.ScheduledPurgeDate
	}
	return out
}

func generic(r *record) arm.GenericResource {
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return arm.GenericResource{ID: r.id().String(), Name: r.Name, Type: VaultType, Location: r.Location, Tags: tags}
}

// info converts a record into what the data plane needs.
func info(r *record) *vault.VaultInfo {
	vi := &vault.VaultInfo{
		InternalID: r.InternalID, Name: r.Name, ResourceID: r.id().String(), TenantID: r.Props.TenantID,
		SubscriptionID: r.SubscriptionID, Location: r.Location,
		EnableRBACAuthorization:   r.Props.EnableRBACAuthorization,
		AccessPolicies:            append([]authz.AccessPolicy(nil), r.Props.AccessPolicies...),
		EnablePurgeProtection:     r.Props.EnablePurgeProtection,
		SoftDeleteRetentionInDays: r.Props.SoftDeleteRetentionInDays,
		PublicNetworkAccess:       r.Props.PublicNetworkAccess,
	}
	if acl := r.Props.NetworkACLs; acl != nil {
		c := *acl
		c.IPRules = append([]vault.IPRule(nil), acl.IPRules...)
		vi.NetworkACLs = &c
	}
	return vi
}
