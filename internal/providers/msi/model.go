package msi

import (
	"net/http"
	"strings"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Names the provider serves.
const (
	Namespace = "Microsoft.ManagedIdentity"
	// UserAssignedType is the ARM type of a user-assigned identity.
	UserAssignedType = Namespace + "/userAssignedIdentities"
	// SystemAssignedType is the ARM type of the identities/default extension.
	SystemAssignedType = Namespace + "/identities"
	// AssignAction is what Managed Identity Operator grants and what issuing
	// a workload secret requires.
	AssignAction = UserAssignedType + "/assign/action"
)

// APIVersions are the api-versions served, oldest first. armmsi v1.3.0
// sends 2024-11-30; az CLI sends 2023-01-31.
var APIVersions = []string{
	"2018-11-30", "2021-09-30-preview", "2022-01-31-preview", "2023-01-31", "2023-07-31-preview", "2024-11-30",
}

// isolationScopeSince is the first api-version whose identity shape has
// properties.isolationScope.
const isolationScopeSince = "2024-11-30"

// Isolation scopes (properties.isolationScope).
const (
	IsolationNone     = "None"
	IsolationRegional = "Regional"
)

// Limits.
const (
	minNameLen = 3
	maxNameLen = 128
)

const (
	uaiPrefix = "rp/msi/uai/"
)

// record is the stored ARM side of a user-assigned identity.
type record struct {
	Name           string            `json:"name"`
	SubscriptionID string            `json:"subscriptionId"`
	ResourceGroup  string            `json:"resourceGroup"`
	Location       string            `json:"location"`
	Tags           map[string]string `json:"tags,omitempty"`
	IsolationScope string            `json:"isolationScope,omitempty"`
	TenantID       string            `json:"tenantId"`
	PrincipalID    string            `json:"principalId"`
	ClientID       string            `json:"clientId"`
	SystemData     *arm.SystemData   `json:"systemData,omitempty"`
}

func subPrefix(sub string) string        { return uaiPrefix + strings.ToLower(sub) + "/" }
func rgPrefix(sub, rg string) string     { return subPrefix(sub) + strings.ToLower(rg) + "/" }
func uaiKey(sub, rg, name string) string { return rgPrefix(sub, rg) + strings.ToLower(name) }

func (r *record) id() arm.ResourceID {
	return arm.NewResourceID(r.SubscriptionID, r.ResourceGroup, Namespace, "userAssignedIdentities", r.Name)
}

func (r *record) key() string { return uaiKey(r.SubscriptionID, r.ResourceGroup, r.Name) }

// uaiProps is properties of a user-assigned identity as ARM renders it.
type uaiProps struct {
	TenantID       string `json:"tenantId"`
	PrincipalID    string `json:"principalId"`
	ClientID       string `json:"clientId"`
	IsolationScope string `json:"isolationScope,omitempty"`
}

func tagsOf(r *record) map[string]string {
	if r.Tags == nil {
		return map[string]string{}
	}
	return r.Tags
}

// render returns the identity in the shape of apiVersion.
func render(r *record, apiVersion string) arm.Resource {
	props := uaiProps{TenantID: r.TenantID, PrincipalID: r.PrincipalID, ClientID: r.ClientID}
	if apiVersion >= isolationScopeSince {
		props.IsolationScope = r.IsolationScope
		if props.IsolationScope == "" {
			props.IsolationScope = IsolationNone
		}
	}
	return arm.Resource{ID: r.id().String(), Name: r.Name, Type: UserAssignedType, Location: r.Location,
		Tags: tagsOf(r), SystemData: r.SystemData, Properties: props}
}

func generic(r *record) arm.GenericResource {
	return arm.GenericResource{ID: r.id().String(), Name: r.Name, Type: UserAssignedType, Location: r.Location, Tags: tagsOf(r)}
}

// ValidateIdentityName applies Azure's rules for user-assigned identity
// names: 3 to 128 characters, letters, digits, hyphens and underscores,
// starting with a letter or digit.
func ValidateIdentityName(name string) error {
	bad := func(why string) error {
		return arm.InvalidResourceName("The user-assigned identity name '%s' is invalid: %s", clip(name, 140), why)
	}
	if len(name) < minNameLen || len(name) > maxNameLen {
		return bad("it must be between 3 and 128 characters long.")
	}
	for _, c := range name {
		if !(isAlnum(c) || c == '-' || c == '_') {
			return bad("it may contain only letters, digits, hyphens (-) and underscores (_).")
		}
	}
	if !isAlnum(rune(name[0])) {
		return bad("it must start with a letter or a digit.")
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Request bodies. Pointers tell "absent" from "empty" for PATCH.

type propsIn struct {
	IsolationScope *string `json:"isolationScope"`
}

type identityBody struct {
	Location   *string            `json:"location"`
	Tags       *map[string]string `json:"tags"`
	Properties *propsIn           `json:"properties"`
}

// isolationScope validates properties.isolationScope ("" when absent).
func (b *identityBody) isolationScope() (string, error) {
	if b.Properties == nil || b.Properties.IsolationScope == nil {
		return "", nil
	}
	switch v := *b.Properties.IsolationScope; {
	case strings.EqualFold(v, IsolationNone):
		return IsolationNone, nil
	case strings.EqualFold(v, IsolationRegional):
		return IsolationRegional, nil
	default:
		return "", azerr.New(http.StatusBadRequest, "BadRequest",
			"The value '%s' of properties.isolationScope is invalid. Allowed values: None, Regional.", clip(v, 40)).
			WithTarget("properties.isolationScope")
	}
}
