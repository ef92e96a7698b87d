package rotation

import (
	"context"
	"time"
)

// This file is the contract between the Microsoft.NetworkCloud provider
// (internal/providers/networkcloud), which owns clusters, machines and their
// archive settings, and the rotation engine (this package), which owns
// credentials, their rotation state machine and delivery. The provider calls
// Engine; the engine calls back through ArchiveResolver.

// Kind is a managed credential kind, as the Nexus platform has them.
type Kind string

const (
	KindBMC              Kind = "BMCCredential"                 // per bare-metal machine (Redfish account)
	KindConsoleUser      Kind = "ConsoleUser"                   // per machine: password and SSH key
	KindStorageAdmin     Kind = "StorageApplianceAdministrator" // per storage appliance
	KindLocalPathStorage Kind = "LocalPathStorageKey"           // per cluster, platform-held
)

// Target is one credential the platform manages on one resource.
type Target struct {
	ClusterID string // cluster resource ID
	// OwnerID is the resource holding the credential: a bareMetalMachine or
	// storageAppliance resource ID, or the cluster itself for cluster-wide kinds.
	OwnerID   string
	OwnerName string
	Kind      Kind
	// Endpoint selects the driver: "redfish+https://host:port" or
	// "redfish+http://..." (BMC), "postgres://host:port/db" (a PostgreSQL role),
	// or "" for a credential keyhaven holds outright (platform driver).
	Endpoint string
	Username string
	// Initial is the credential as first configured (e.g. the BMC password the
	// customer supplied at cluster create); sealed by the engine on receipt,
	// nil when the engine generates the first value itself.
	Initial            []byte
	RotationPeriodDays int // default 60
	ExpirePeriodDays   int // default 90
}

// ArchivePath says whose identity delivers rotated credentials.
type ArchivePath string

const (
	// PathClusterManager: legacy secretArchive {keyVaultId, useKeyVault};
	// delivered with the cluster manager's identity; passes a vault firewall
	// whose bypass is AzureServices (trusted platform service).
	PathClusterManager ArchivePath = "ClusterManager"
	// PathCluster: secretArchiveSettings {vaultUri, associatedIdentity};
	// delivered with the cluster's identity; refused when the vault firewall
	// is on (the guide's warning).
	PathCluster ArchivePath = "Cluster"
)

// Archive is where a cluster's rotated credentials go, resolved afresh for
// every delivery attempt so configuration fixes take effect on retry.
type Archive struct {
	Path     ArchivePath
	VaultURI string // https://{vault}.{domain}[:port]/
	VaultID  string // vault resource ID when configured by ID (legacy path)
	// IdentityObjectID is the principal (system- or user-assigned managed
	// identity) that writes to the vault.
	IdentityObjectID string
	// UserAssignedIdentityID is set when that identity is user-assigned: the
	// platform principal then needs Managed Identity Operator on it.
	UserAssignedIdentityID string
	// EncryptionPublicKey, when set (PEM, RSA >= 3072 bits), makes archived
	// values encrypted to the customer's key.
	EncryptionPublicKey string
}

// ArchiveResolver is implemented by the networkcloud provider.
type ArchiveResolver interface {
	// ResolveArchive returns the cluster's archive, or an *azerr.Error whose
	// Code names what is missing (e.g. SecretArchiveNotConfigured,
	// IdentityNotConfigured).
	ResolveArchive(ctx context.Context, clusterID string) (*Archive, error)
	// OwnerState returns the machine state of an owner resource ("Ready",
	// "Provisioning", "Cordoned", ...); a cordoned owner is never rotated.
	OwnerState(ctx context.Context, ownerID string) (string, error)
}

// ArchiveReference points at the secret version holding a credential.
type ArchiveReference struct {
	KeyVaultID    string `json:"keyVaultId,omitempty"`
	KeyVaultURI   string `json:"keyVaultUri,omitempty"`
	SecretName    string `json:"secretName,omitempty"`
	SecretVersion string `json:"secretVersion,omitempty"`
}

// Status is one entry of an owner's secretRotationStatus.
type Status struct {
	SecretType             string            `json:"secretType"`
	LastRotationTime       *time.Time        `json:"lastRotationTime,omitempty"`
	RotationPeriodDays     int               `json:"rotationPeriodDays"`
	ExpirePeriodDays       int               `json:"expirePeriodDays"`
	SecretArchiveReference *ArchiveReference `json:"secretArchiveReference,omitempty"`
}

// ClusterState summarises rotation for a cluster's detailedStatus: Healthy,
// or the failing condition by name with a public message.
type ClusterState struct {
	Healthy bool
	Code    string // e.g. "MissingRoleAssignment", "VaultFirewallEnabled", "ArchivePending"
	Message string
}

// Engine is what the networkcloud provider needs of rotation.
type Engine interface {
	// UpsertTargets registers or updates a cluster's credentials (idempotent).
	UpsertTargets(ctx context.Context, targets []Target) error
	// RemoveCluster stops managing a deleted cluster's credentials.
	RemoveCluster(ctx context.Context, clusterID string) error
	// RequestRotation queues an on-demand rotation of the given kinds (all
	// when empty) for a cluster; it returns once the request is durable.
	RequestRotation(ctx context.Context, clusterID string, kinds []Kind) error
	// Status returns the secretRotationStatus entries of an owner resource.
	Status(ctx context.Context, ownerID string) ([]Status, error)
	// ClusterState returns the rotation health of a cluster.
	ClusterState(ctx context.Context, clusterID string) (ClusterState, error)
}
