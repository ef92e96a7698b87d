package networkcloud

import (
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/rotation"
)

// Namespace and resource types.
const (
	Namespace            = "Microsoft.NetworkCloud"
	ClusterManagerType   = Namespace + "/clusterManagers"
	ClusterType          = Namespace + "/clusters"
	BareMetalMachineType = Namespace + "/bareMetalMachines"
	StorageApplianceType = Namespace + "/storageAppliances"

	typeManagers   = "clusterManagers"
	typeClusters   = "clusters"
	typeMachines   = "bareMetalMachines"
	typeAppliances = "storageAppliances"

	prefix = "rp/networkcloud/"
)

// APIVersions are the Microsoft.NetworkCloud api-versions served. The
// rotateCredential action first appears in 2026-05-01-preview; keyhaven
// serves it under every version (the guide's CLI speaks 2024/2025 ones).
var APIVersions = []string{
	"2023-07-01", "2024-06-01-preview", "2024-07-01", "2024-10-01-preview", "2025-02-01",
	"2025-09-01", "2026-05-01-preview",
}

// Limits on request content.
const (
	MaxRacks              = 32
	MaxMachinesPerRack    = 64
	MaxAppliancesPerRack  = 8
	MaxUsernameLength     = 64
	MaxPasswordLength     = 256
	MaxEndpointLength     = 2048
	MaxIDPropertyLength   = arm.MaxIDLength
	MaxFreeTextLength     = 256
	MaxCredentialsPerCall = 16
	MaxPublicKeyPEMLength = 16 << 10
	MinEncryptionKeyBits  = 3072
	MaxEncryptionKeyBits  = 16384
	MaxClusterVersionLen  = 64
	MaxManagedRGNameLen   = 75
)

// Enum values, exactly as the networkcloud spec spells them.
const (
	identitySystemSelector = "SystemAssignedIdentity"
	identityUserSelector   = "UserAssignedIdentity"

	useKeyVaultTrue  = "True"
	useKeyVaultFalse = "False"

	cordoned   = "Cordoned"
	uncordoned = "Uncordoned"

	customLocationType = "CustomLocation"
)

// Cluster deployment states (ClusterDetailedStatus values).
const (
	statusPendingDeployment = "PendingDeployment"
	statusDeploying         = "Deploying"
	statusRunning           = "Running"
	statusDegraded          = "Degraded"
	statusFailed            = "Failed"
)

// Owner states handed to the rotation engine (OwnerState).
const (
	OwnerReady        = "Ready"
	OwnerProvisioning = "Provisioning"
	OwnerCordoned     = "Cordoned"
)

// AllKinds lists the managed credential kinds, in the order they render.
var AllKinds = []rotation.Kind{
	rotation.KindBMC, rotation.KindConsoleUser, rotation.KindLocalPathStorage, rotation.KindStorageAdmin,
}

// consoleUsername is the OS-level user the ConsoleUser credential belongs to.
const consoleUsername = "nc-console"

// extendedLocation is ARM's extendedLocation envelope property.
type extendedLocation struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

type managedRGConfig struct {
	Location string `json:"location,omitempty"`
	Name     string `json:"name,omitempty"`
}

// actionState is ActionState of the spec (a read-only status entry).
type actionState struct {
	ActionType    string `json:"actionType,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	StartTime     string `json:"startTime,omitempty"`
	EndTime       string `json:"endTime,omitempty"`
	Message       string `json:"message,omitempty"`
	Status        string `json:"status,omitempty"`
}

// managerRecord is a stored cluster manager. Its identity lives in the
// identity service, keyed by its resource ID.
type managerRecord struct {
	Name                 string            `json:"name"`
	SubscriptionID       string            `json:"subscriptionId"`
	ResourceGroup        string            `json:"resourceGroup"`
	Location             string            `json:"location"`
	Tags                 map[string]string `json:"tags"`
	AnalyticsWorkspaceID string            `json:"analyticsWorkspaceId,omitempty"`
	FabricControllerID   string            `json:"fabricControllerId"`
	AvailabilityZones    []string          `json:"availabilityZones,omitempty"`
	VMSize               string            `json:"vmSize,omitempty"`
	ManagedRG            managedRGConfig   `json:"managedResourceGroupConfiguration"`
	ProvisioningState    string            `json:"provisioningState"`
	SystemData           *arm.SystemData   `json:"systemData,omitempty"`
}

func (m *managerRecord) id() arm.ResourceID {
	return arm.NewResourceID(m.SubscriptionID, m.ResourceGroup, Namespace, typeManagers, m.Name)
}

// customLocationID is the manager's managerExtendedLocation: the custom
// location clusters name in their extendedLocation to belong to it.
func (m *managerRecord) customLocationID() string {
	return arm.NewResourceID(m.SubscriptionID, m.ManagedRG.Name, "Microsoft.ExtendedLocation", "customLocations", m.Name+"-cl").String()
}

// adminCredentials is AdministrativeCredentials. Password is input only: it
// is handed to the rotation engine and blanked before anything is stored or
// rendered.
type adminCredentials struct {
	Username string `json:"username"`
	Password string `json:"password,omitempty"`
}

// machineConfig is BareMetalMachineConfigurationData plus keyhaven's
// endpoint extension: bmcConnectionString (read-only in Azure) may be given
// as the machine's Redfish service, e.g. "redfish+https://127.0.0.1:9443";
// bmcEndpoint is accepted as an alias.
type machineConfig struct {
	BMCConnectionString string            `json:"bmcConnectionString,omitempty"`
	BMCEndpoint         string            `json:"bmcEndpoint,omitempty"`
	BMCCredentials      *adminCredentials `json:"bmcCredentials,omitempty"`
	BMCMacAddress       string            `json:"bmcMacAddress"`
	BootMacAddress      string            `json:"bootMacAddress"`
	MachineDetails      string            `json:"machineDetails,omitempty"`
	MachineName         string            `json:"machineName,omitempty"`
	RackSlot            int64             `json:"rackSlot"`
	SerialNumber        string            `json:"serialNumber"`
}

// applianceConfig is StorageApplianceConfigurationData plus keyhaven's
// adminEndpoint extension naming where the administrator credential lives:
// "redfish+https://..." or "postgres://host:port/db".
type applianceConfig struct {
	AdminCredentials     *adminCredentials `json:"adminCredentials,omitempty"`
	AdminEndpoint        string            `json:"adminEndpoint,omitempty"`
	RackSlot             int64             `json:"rackSlot"`
	SerialNumber         string            `json:"serialNumber"`
	StorageApplianceName string            `json:"storageApplianceName,omitempty"`
}

// rackDefinition is RackDefinition.
type rackDefinition struct {
	AvailabilityZone                  string            `json:"availabilityZone,omitempty"`
	BareMetalMachineConfigurationData []machineConfig   `json:"bareMetalMachineConfigurationData,omitempty"`
	NetworkRackID                     string            `json:"networkRackId"`
	RackLocation                      string            `json:"rackLocation,omitempty"`
	RackSerialNumber                  string            `json:"rackSerialNumber"`
	RackSkuID                         string            `json:"rackSkuId"`
	StorageApplianceConfigurationData []applianceConfig `json:"storageApplianceConfigurationData,omitempty"`
}

// secretArchive is ClusterSecretArchive (the legacy, cluster-manager path).
type secretArchive struct {
	KeyVaultID  string `json:"keyVaultId"`
	UseKeyVault string `json:"useKeyVault"`
}

// identitySelector is IdentitySelector.
type identitySelector struct {
	IdentityType                   string `json:"identityType,omitempty"`
	UserAssignedIdentityResourceID string `json:"userAssignedIdentityResourceId,omitempty"`
}

// secretArchiveSettings is SecretArchiveSettings (the cluster-identity path).
type secretArchiveSettings struct {
	AssociatedIdentity  *identitySelector `json:"associatedIdentity,omitempty"`
	EncryptionPublicKey string            `json:"encryptionPublicKey,omitempty"`
	VaultURI            string            `json:"vaultUri,omitempty"`
}

// clusterRecord is a stored cluster: never any password.
type clusterRecord struct {
	Name             string            `json:"name"`
	SubscriptionID   string            `json:"subscriptionId"`
	ResourceGroup    string            `json:"resourceGroup"`
	Location         string            `json:"location"`
	Tags             map[string]string `json:"tags"`
	ExtendedLocation extendedLocation  `json:"extendedLocation"`
	ClusterManagerID string            `json:"clusterManagerId,omitempty"`

	AggregatorOrSingleRack rackDefinition         `json:"aggregatorOrSingleRackDefinition"`
	ComputeRacks           []rackDefinition       `json:"computeRackDefinitions"`
	AnalyticsWorkspaceID   string                 `json:"analyticsWorkspaceId,omitempty"`
	ClusterLocation        string                 `json:"clusterLocation,omitempty"`
	ClusterType            string                 `json:"clusterType"`
	ClusterVersion         string                 `json:"clusterVersion"`
	NetworkFabricID        string                 `json:"networkFabricId"`
	ManagedRG              *managedRGConfig       `json:"managedResourceGroupConfiguration,omitempty"`
	SecretArchive          *secretArchive         `json:"secretArchive,omitempty"`
	SecretArchiveSettings  *secretArchiveSettings `json:"secretArchiveSettings,omitempty"`
	// EncryptionPublicKey is keyhaven's cluster-level key (both archive
	// paths); secretArchiveSettings.encryptionPublicKey wins on its path.
	EncryptionPublicKey string `json:"encryptionPublicKey,omitempty"`

	ProvisioningState string          `json:"provisioningState"`
	DeployState       string          `json:"deployState"`
	DeployMessage     string          `json:"deployMessage,omitempty"`
	ActionStates      []actionState   `json:"actionStates,omitempty"`
	SystemData        *arm.SystemData `json:"systemData,omitempty"`
}

func (c *clusterRecord) id() arm.ResourceID {
	return arm.NewResourceID(c.SubscriptionID, c.ResourceGroup, Namespace, typeClusters, c.Name)
}

func (c *clusterRecord) racks() []rackDefinition {
	return append([]rackDefinition{c.AggregatorOrSingleRack}, c.ComputeRacks...)
}

// machineRecord is a stored bareMetalMachines resource, created by deploy.
type machineRecord struct {
	Name                string            `json:"name"`
	SubscriptionID      string            `json:"subscriptionId"`
	ResourceGroup       string            `json:"resourceGroup"`
	Location            string            `json:"location"`
	Tags                map[string]string `json:"tags"`
	ExtendedLocation    extendedLocation  `json:"extendedLocation"`
	ClusterID           string            `json:"clusterId"`
	BMCConnectionString string            `json:"bmcConnectionString,omitempty"`
	BMCUsername         string            `json:"bmcUsername"`
	BMCMacAddress       string            `json:"bmcMacAddress"`
	BootMacAddress      string            `json:"bootMacAddress"`
	MachineDetails      string            `json:"machineDetails"`
	RackSlot            int64             `json:"rackSlot"`
	SerialNumber        string            `json:"serialNumber"`
	CordonStatus        string            `json:"cordonStatus"`
	ActionStates        []actionState     `json:"actionStates,omitempty"`
	SystemData          *arm.SystemData   `json:"systemData,omitempty"`
}

func (m *machineRecord) id() arm.ResourceID {
	return arm.NewResourceID(m.SubscriptionID, m.ResourceGroup, Namespace, typeMachines, m.Name)
}

// applianceRecord is a stored storageAppliances resource, created by deploy.
type applianceRecord struct {
	Name             string            `json:"name"`
	SubscriptionID   string            `json:"subscriptionId"`
	ResourceGroup    string            `json:"resourceGroup"`
	Location         string            `json:"location"`
	Tags             map[string]string `json:"tags"`
	ExtendedLocation extendedLocation  `json:"extendedLocation"`
	ClusterID        string            `json:"clusterId"`
	AdminEndpoint    string            `json:"adminEndpoint,omitempty"`
	AdminUsername    string            `json:"administratorUsername"`
	RackSlot         int64             `json:"rackSlot"`
	SerialNumber     string            `json:"serialNumber"`
	SystemData       *arm.SystemData   `json:"systemData,omitempty"`
}

func (a *applianceRecord) id() arm.ResourceID {
	return arm.NewResourceID(a.SubscriptionID, a.ResourceGroup, Namespace, typeAppliances, a.Name)
}

// Store keys: rp/networkcloud/{type}/{sub}/{rg}/{name}, all lower case, so a
// resource group or subscription lists with one prefix scan.
func typePrefix(typ string) string { return prefix + strings.ToLower(typ) + "/" }
func subPrefix(typ, sub string) string {
	return typePrefix(typ) + strings.ToLower(sub) + "/"
}
func rgPrefix(typ, sub, rg string) string { return subPrefix(typ, sub) + strings.ToLower(rg) + "/" }
func resKey(typ, sub, rg, name string) string {
	return rgPrefix(typ, sub, rg) + strings.ToLower(name)
}

// keyOf is the store key of a parsed resource ID of one of our types.
func keyOf(id arm.ResourceID) string {
	return resKey(id.TypePath(), id.SubscriptionID, id.ResourceGroup, id.Name())
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// setAction records the latest state of an action type (one entry per type).
func setAction(states []actionState, s actionState) []actionState {
	for i := range states {
		if strings.EqualFold(states[i].ActionType, s.ActionType) {
			states[i] = s
			return states
		}
	}
	return append(states, s)
}
