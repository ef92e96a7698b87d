package databoxedge

import (
	"regexp"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
)

// Namespace and resource types.
const (
	Namespace  = "Microsoft.DataBoxEdge"
	DeviceType = Namespace + "/dataBoxEdgeDevices"
	AlertType  = "dataBoxEdgeDevices/alerts" // as the spec's examples render it

	typeDevices = "dataBoxEdgeDevices"
	typeAlerts  = "dataBoxEdgeDevices/alerts"

	prefix        = "rp/databoxedge/"
	devicesPrefix = prefix + "devices/"
)

// APIVersions are the Microsoft.DataBoxEdge api-versions served.
var APIVersions = []string{"2022-03-01", "2023-01-01-preview", "2023-07-01", "2023-12-01"}

// Action names (POST .../dataBoxEdgeDevices/{name}/{action}).
const (
	ActionGenerateActivationKey = "generateActivationKey" // keyhaven extension
	ActionRecoverKeyVault       = "recoverKeyVault"       // keyhaven extension
	ActionGetExtendedInfo       = "getExtendedInformation"
	ActionUpdateExtendedInfo    = "updateExtendedInformation"
)

// Names of what activation creates.
const (
	VaultLockName   = "DataBoxEdgeKeyVaultLock"
	StorageLockName = "DataBoxEdgeAuditLogStorageLock"
	DiagSettingName = "DataBoxEdgeKeyVaultAuditLogs"
	// StorageVaultTag is the tag naming the vault on the audit-log account.
	StorageVaultTag = "keyVaultName"
	// CIKPrefix starts the Channel Integrity Key's secret name.
	CIKPrefix = "ase-cik-"
	// CIKBytes is the Channel Integrity Key's length before base64.
	CIKBytes = 32
	// ActivationKeyTTL is how long an activation key may be redeemed.
	ActivationKeyTTL = 72 * time.Hour
	// ActivationKeyPrefix starts every activation key (format version 1).
	ActivationKeyPrefix = "khase1"
)

// Device status values (DataBoxEdgeDeviceStatus).
const (
	StatusReadyToSetup   = "ReadyToSetup"
	StatusOnline         = "Online"
	StatusNeedsAttention = "NeedsAttention"
)

// Key vault sync status values (KeyVaultSyncStatus).
const (
	SyncSynced        = "KeyVaultSynced"
	SyncFailed        = "KeyVaultSyncFailed"
	SyncNotConfigured = "KeyVaultNotConfigured"
	SyncPending       = "KeyVaultSyncPending"
	SyncSyncing       = "KeyVaultSyncing"
	SyncNotSynced     = "KeyVaultNotSynced"
)

var syncStatuses = []string{SyncSynced, SyncFailed, SyncNotConfigured, SyncPending, SyncSyncing, SyncNotSynced}

// Alert types keyhaven raises.
const (
	AlertKeyVaultDeleted      = "KeyVaultDeletedEvent"
	AlertKeyVaultAccessPolicy = "KeyVaultAccessPolicyMissingEvent"
	// AlertKeyVaultSyncFailed: the device reported KeyVaultSyncFailed while
	// the vault and the access policy look fine (keyhaven).
	AlertKeyVaultSyncFailed = "KeyVaultSyncFailedEvent"
)

// skuNames are the SkuName values of the spec.
var skuNames = []string{
	"Gateway", "Edge", "TEA_1Node", "TEA_1Node_UPS", "TEA_1Node_Heater", "TEA_1Node_UPS_Heater", "TEA_4Node_Heater",
	"TEA_4Node_UPS_Heater", "TMA", "TDC", "TCA_Small", "GPU", "TCA_Large", "EdgeP_Base", "EdgeP_High", "EdgePR_Base",
	"EdgePR_Base_UPS", "EP2_64_1VM", "EP2_128_1T4_Mx1_W", "EP2_256_2T4_W", "EdgeMR_Mini", "RCA_Small", "RCA_Large", "RDC",
	"Management", "EP2_64_Mx1_W", "EP2_128_GPU1_Mx1_W", "EP2_256_GPU2_Mx1", "EdgeMR_TCP",
}

var kinds = []string{"AzureDataBoxGateway", "AzureStackEdge", "AzureStackHub", "AzureModularDataCentre"}

var deviceNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,48}[A-Za-z0-9]$`)

// sku is the spec's Sku.
type sku struct {
	Name string `json:"name,omitempty"`
	Tier string `json:"tier,omitempty"`
}

// dataResidency is the spec's DataResidency.
type dataResidency struct {
	Type string `json:"type,omitempty"`
}

// keyVaultLink is what the service stores of a device's vault ("The key
// vault details are stored in the service").
type keyVaultLink struct {
	Name             string `json:"name"`
	ResourceID       string `json:"resourceId"`
	URI              string `json:"uri"`
	StorageAccountID string `json:"storageAccountId,omitempty"`
	CIKName          string `json:"cikName,omitempty"`
	CIKVersion       string `json:"cikVersion,omitempty"`
	// Configured is set once everything activation creates exists (lock,
	// storage, diagnostic setting, CIK); until then a new activation-key
	// request finishes the setup instead of only issuing a key.
	Configured bool `json:"configured"`
}

// activationKey is the stored form of an issued activation key: the hash
// of its one-time secret, never the secret.
type activationKey struct {
	SecretSHA256 string    `json:"secretSha256"`
	IssuedAt     time.Time `json:"issuedAt"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// deviceRecord is a stored dataBoxEdgeDevices resource. Its identity lives
// in the identity service, keyed by its resource ID.
type deviceRecord struct {
	Name              string            `json:"name"`
	SubscriptionID    string            `json:"subscriptionId"`
	ResourceGroup     string            `json:"resourceGroup"`
	Location          string            `json:"location"`
	Tags              map[string]string `json:"tags"`
	SKU               sku               `json:"sku"`
	Kind              string            `json:"kind"`
	Description       string            `json:"description,omitempty"`
	FriendlyName      string            `json:"friendlyName,omitempty"`
	ModelDescription  string            `json:"modelDescription,omitempty"`
	DataResidency     *dataResidency    `json:"dataResidency,omitempty"`
	SerialNumber      string            `json:"serialNumber"`
	ResourceKey       string            `json:"resourceKey"`
	ProvisioningState string            `json:"provisioningState"`
	SystemData        *arm.SystemData   `json:"systemData,omitempty"`

	KeyVault   *keyVaultLink `json:"keyVault,omitempty"`
	SyncStatus string        `json:"syncStatus,omitempty"`
	// SyncError is the device's reason for its last KeyVaultSyncFailed.
	SyncError string `json:"syncError,omitempty"`
	// SyncRequest identifies the latest request to push (recoverKeyVault,
	// syncDeviceSecrets).
	SyncRequest string `json:"syncRequest,omitempty"`
	// SyncedAt is when the device last reported KeyVaultSynced.
	SyncedAt *time.Time `json:"syncedAt,omitempty"`
	// DeviceSecrets maps a DeviceSecretName to the vault secret (version)
	// the device reported storing it in: references only, never values.
	DeviceSecrets map[string]string `json:"deviceSecrets,omitempty"`
	Activation    *activationKey    `json:"activation,omitempty"`
	// ActivatedAt is when an activation key was redeemed (status Online).
	ActivatedAt *time.Time `json:"activatedAt,omitempty"`
}

func (d *deviceRecord) id() arm.ResourceID {
	return arm.NewResourceID(d.SubscriptionID, d.ResourceGroup, Namespace, typeDevices, d.Name)
}

// Store keys: rp/databoxedge/devices/{sub}/{rg}/{name}, lower case.
func subPrefix(sub string) string    { return devicesPrefix + strings.ToLower(sub) + "/" }
func rgPrefix(sub, rg string) string { return subPrefix(sub) + strings.ToLower(rg) + "/" }
func deviceKey(sub, rg, name string) string {
	return rgPrefix(sub, rg) + strings.ToLower(name)
}
func keyOf(id arm.ResourceID) string {
	return deviceKey(id.SubscriptionID, id.ResourceGroup, id.Name())
}

// --- wire shapes (Microsoft.DataBoxEdge 2023-12-01) ---

// deviceProps is DataBoxEdgeDeviceProperties (the subset keyhaven keeps).
type deviceProps struct {
	DataBoxEdgeDeviceStatus string         `json:"dataBoxEdgeDeviceStatus"`
	SerialNumber            string         `json:"serialNumber"`
	Description             string         `json:"description,omitempty"`
	ModelDescription        string         `json:"modelDescription,omitempty"`
	DeviceType              string         `json:"deviceType"`
	FriendlyName            string         `json:"friendlyName,omitempty"`
	ConfiguredRoleTypes     []string       `json:"configuredRoleTypes"`
	NodeCount               int            `json:"nodeCount"`
	DataResidency           *dataResidency `json:"dataResidency,omitempty"`
	ProvisioningState       string         `json:"provisioningState"`
}

// deviceResource is DataBoxEdgeDevice: ARM's envelope plus kind.
type deviceResource struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	SKU        sku               `json:"sku"`
	Kind       string            `json:"kind"`
	Identity   any               `json:"identity,omitempty"`
	SystemData *arm.SystemData   `json:"systemData,omitempty"`
	Properties deviceProps       `json:"properties"`
}

// secretRef is the spec's Secret (a deviceSecrets entry). keyhaven fills
// keyVaultId only: encryptedSecret is never rendered.
type secretRef struct {
	KeyVaultID string `json:"keyVaultId,omitempty"`
}

// extendedInfoProps is DataBoxEdgeDeviceExtendedInfoProperties.
type extendedInfoProps struct {
	ResourceKey                string               `json:"resourceKey"`
	ClientSecretStoreID        string               `json:"clientSecretStoreId,omitempty"`
	ClientSecretStoreURL       string               `json:"clientSecretStoreUrl,omitempty"`
	ChannelIntegrityKeyName    string               `json:"channelIntegrityKeyName,omitempty"`
	ChannelIntegrityKeyVersion string               `json:"channelIntegrityKeyVersion,omitempty"`
	KeyVaultSyncStatus         string               `json:"keyVaultSyncStatus"`
	DeviceSecrets              map[string]secretRef `json:"deviceSecrets"`
	// keyhaven extensions: the device's reason for KeyVaultSyncFailed and
	// the time of its last KeyVaultSynced report.
	KeyVaultSyncError string     `json:"keyVaultSyncError,omitempty"`
	KeyVaultSyncTime  *time.Time `json:"keyVaultSyncTime,omitempty"`
	// KeyVaultSyncRequestID identifies a pending request to push.
	KeyVaultSyncRequestID string `json:"keyVaultSyncRequestId,omitempty"`
}

// extendedInfo is DataBoxEdgeDeviceExtendedInfo.
type extendedInfo struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Properties extendedInfoProps `json:"properties"`
}

// alertErrorDetails is AlertErrorDetails.
type alertErrorDetails struct {
	ErrorCode    string `json:"errorCode"`
	ErrorMessage string `json:"errorMessage"`
	Occurrences  int    `json:"occurrences"`
}

// alertProps is AlertProperties.
type alertProps struct {
	Title               string            `json:"title"`
	AlertType           string            `json:"alertType"`
	AppearedAtDateTime  time.Time         `json:"appearedAtDateTime"`
	Recommendation      string            `json:"recommendation"`
	Severity            string            `json:"severity"`
	ErrorDetails        alertErrorDetails `json:"errorDetails"`
	DetailedInformation map[string]string `json:"detailedInformation"`
}

// alert is Alert.
type alert struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Type       string     `json:"type"`
	Properties alertProps `json:"properties"`
}

// activationKeyResult is the answer of generateActivationKey (keyhaven).
type activationKeyResult struct {
	ActivationKey string    `json:"activationKey"`
	ExpiresOn     time.Time `json:"expiresOn"`
	KeyVaultName  string    `json:"keyVaultName"`
	KeyVaultID    string    `json:"keyVaultId"`
	// KeyVaultCreated is true when this request created (or finished
	// setting up) the vault; false when the vault was not accessed.
	KeyVaultCreated bool `json:"keyVaultCreated"`
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
