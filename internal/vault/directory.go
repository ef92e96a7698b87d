package vault

import (
	"context"

	"github.com/keyhaven/keyhaven/internal/authz"
)

// VaultInfo is what the data plane needs to know about a vault. The control
// plane (providers/keyvault) owns vault records and implements Directory.
type VaultInfo struct {
	// InternalID is stable for the life of the vault, across soft-delete and
	// recovery; a new vault with a reused name gets a new one. Data-plane
	// objects are stored under it, and it is the seal scope.
	InternalID     string
	Name           string
	ResourceID     string // ARM resource ID
	TenantID       string
	SubscriptionID string
	Location       string

	EnableRBACAuthorization   bool
	AccessPolicies            []authz.AccessPolicy
	EnablePurgeProtection     bool
	SoftDeleteRetentionInDays int

	// PublicNetworkAccess is "Enabled" or "Disabled".
	PublicNetworkAccess string
	NetworkACLs         *NetworkACLs // nil: no firewall
}

// NetworkACLs is the vault firewall, in the ARM property shape.
type NetworkACLs struct {
	DefaultAction string   `json:"defaultAction"` // Allow | Deny
	Bypass        string   `json:"bypass"`        // AzureServices | None
	IPRules       []IPRule `json:"ipRules,omitempty"`
}

// IPRule allows an address or CIDR range.
type IPRule struct {
	Value string `json:"value"`
}

// Directory finds active (not deleted) vaults by name. It returns an
// *azerr.Error with status 404 when no active vault has that name.
type Directory interface {
	LookupVault(ctx context.Context, name string) (*VaultInfo, error)
}
