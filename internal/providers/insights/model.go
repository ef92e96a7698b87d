package insights

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// Names and store layout.
const (
	Namespace   = "Microsoft.Insights"
	SettingType = "Microsoft.Insights/diagnosticSettings"

	prefix         = "rp/insights/"
	settingsPrefix = prefix + "settings/"
)

// APIVersions are the diagnosticSettings api-versions served.
var APIVersions = []string{"2017-05-01-preview", "2021-05-01-preview"}

// Limits (Azure allows 5 settings per resource).
const (
	MaxSettingsPerResource = 5
	MaxEntries             = 50
	MaxNameLength          = 190
	MaxRetentionDays       = 365
)

// LogCategories describes what settings on one resource type may select.
type LogCategories struct {
	// Categories are the log categories, e.g. "AuditEvent".
	Categories []string
	// Groups maps a category group ("audit", "allLogs") to its categories.
	Groups map[string][]string
	// Metrics are the metric categories, e.g. "AllMetrics".
	Metrics []string
}

// DefaultResourceTypes are the types diagnostic settings may be put on
// when Options.ResourceTypes is nil (keys are lower case).
var DefaultResourceTypes = map[string]LogCategories{
	"microsoft.keyvault/vaults": {
		Categories: []string{"AuditEvent", "AzurePolicyEvaluationDetails"},
		Groups: map[string][]string{
			"audit":   {"AuditEvent"},
			"allLogs": {"AuditEvent", "AzurePolicyEvaluationDetails"},
		},
		Metrics: []string{"AllMetrics"},
	},
}

// RetentionPolicy is a category's retention, as Azure's (deprecated) field.
type RetentionPolicy struct {
	Enabled bool `json:"enabled"`
	Days    int  `json:"days"`
}

// LogSetting selects one log category or category group.
type LogSetting struct {
	Category        string           `json:"category,omitempty"`
	CategoryGroup   string           `json:"categoryGroup,omitempty"`
	Enabled         bool             `json:"enabled"`
	RetentionPolicy *RetentionPolicy `json:"retentionPolicy,omitempty"`
}

// MetricSetting selects one metric category.
type MetricSetting struct {
	Category        string           `json:"category,omitempty"`
	TimeGrain       string           `json:"timeGrain,omitempty"`
	Enabled         bool             `json:"enabled"`
	RetentionPolicy *RetentionPolicy `json:"retentionPolicy,omitempty"`
}

// Properties are a setting's properties, in Azure's shape.
type Properties struct {
	StorageAccountID            string          `json:"storageAccountId,omitempty"`
	WorkspaceID                 string          `json:"workspaceId,omitempty"`
	EventHubAuthorizationRuleID string          `json:"eventHubAuthorizationRuleId,omitempty"`
	EventHubName                string          `json:"eventHubName,omitempty"`
	MarketplacePartnerID        string          `json:"marketplacePartnerId,omitempty"`
	LogAnalyticsDestinationType string          `json:"logAnalyticsDestinationType,omitempty"`
	Logs                        []LogSetting    `json:"logs"`
	Metrics                     []MetricSetting `json:"metrics"`
}

// record is a stored setting.
type record struct {
	ResourceID string          `json:"resourceId"`
	Name       string          `json:"name"`
	Properties Properties      `json:"properties"`
	SystemData *arm.SystemData `json:"systemData,omitempty"`
}

func settingsKeyPrefix(resourceID string) string {
	return settingsPrefix + strings.ToLower(resourceID) + "/#/"
}

func settingKey(resourceID, name string) string {
	return settingsKeyPrefix(resourceID) + strings.ToLower(name)
}

// setting is the ARM rendering of a diagnostic setting.
type setting struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	SystemData *arm.SystemData `json:"systemData,omitempty"`
	Properties Properties      `json:"properties"`
}

func render(r *record) setting {
	props := r.Properties
	if props.Logs == nil {
		props.Logs = []LogSetting{}
	}
	if props.Metrics == nil {
		props.Metrics = []MetricSetting{}
	}
	return setting{ID: r.ResourceID + "/providers/" + Namespace + "/diagnosticSettings/" + r.Name, Name: r.Name,
		Type: SettingType, SystemData: r.SystemData, Properties: props}
}

// validateName refuses names Azure refuses and names that would not fit a
// store key.
func validateName(name string) error {
	if name == "" || len(name) > MaxNameLength || strings.ContainsAny(name, "<>*%&:\\?+/#|\"'") ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return arm.InvalidResourceName("The diagnostic setting name '%s' is invalid: use 1 to %d characters, none of <>*%%&:\\?+/#|\"' or control characters.",
			clip(name, 60), MaxNameLength)
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func badRequest(format string, args ...any) *azerr.Error {
	return azerr.New(http.StatusBadRequest, "BadRequest", format, args...)
}

// Destination is one storage account a resource's audit events go to.
type Destination struct {
	SettingName      string
	StorageAccountID string
	// Categories are the enabled log categories (groups resolved).
	Categories []string
	// RetentionDays is the longest retention among Categories, or 0 when
	// any of them is kept without limit.
	RetentionDays int
}

// BlobPath is the blob an event of resourceID at t is appended to, in
// Azure Monitor's layout (UTC hour partitions).
func BlobPath(resourceID string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("resourceId=%s/y=%04d/m=%02d/d=%02d/h=%02d/m=00/PT1H.json",
		strings.ToUpper(strings.TrimRight(resourceID, "/")), t.Year(), int(t.Month()), t.Day(), t.Hour())
}

// ContainerFor is the container of a log category: insights-logs-{category}.
func ContainerFor(category string) string { return "insights-logs-" + strings.ToLower(category) }

// blobPrefix is the blob name prefix of every event of resourceID.
func blobPrefix(resourceID string) string {
	return "resourceId=" + strings.ToUpper(strings.TrimRight(resourceID, "/")) + "/"
}
