package storage

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/identity"
)

// Resource types and store layout.
const (
	Namespace     = "Microsoft.Storage"
	AccountType   = "Microsoft.Storage/storageAccounts"
	BlobSvcType   = "Microsoft.Storage/storageAccounts/blobServices"
	ContainerType = "Microsoft.Storage/storageAccounts/blobServices/containers"
	BlobType      = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"

	prefix          = "rp/storage/"
	namesPrefix     = prefix + "names/"
	scopePrefix     = prefix + "scope/"
	containerPrefix = prefix + "containers/"
	metaPrefix      = prefix + "blobmeta/"
	idPrefix        = prefix + "blobids/"
	chunkPrefix     = prefix + "blobs/"
	retentionPrefix = prefix + "retention/"
	purgePrefix     = prefix + "purge/"
)

// APIVersions are the Microsoft.Storage api-versions served.
var APIVersions = []string{"2021-09-01", "2022-09-01", "2023-01-01", "2023-05-01"}

// Limits.
const (
	// MaxAppendBytes caps one append (Azure's append-block limit is 4 MiB;
	// audit events are far smaller).
	MaxAppendBytes = 1 << 20
	// MaxBlobBytes caps a blob's total size.
	MaxBlobBytes = 4 << 30
	// MaxBlobNameLength caps a blob name in bytes (store keys embed it).
	MaxBlobNameLength = 900
	// MaxBlobSegments caps the "/"-separated segments of a blob name, as
	// Azure does.
	MaxBlobSegments = 254
	// MaxReadChunk caps the content one GET of a blob returns.
	MaxReadChunk = 4 << 20
	// MaxReadBlob caps ReadBlob, which returns a whole blob.
	MaxReadBlob = 64 << 20
	// MaxListBlobs caps one blob listing; a narrower prefix lists more.
	MaxListBlobs = 100000
	// MaxContainers caps the containers of one account.
	MaxContainers = 1000
	// MaxRetentionDays caps a retention rule (Azure's diagnostic setting
	// retention allowed 0-365).
	MaxRetentionDays = 365
)

// SKUs offered, with their tier.
var skus = map[string]string{
	"standard_lrs": "Standard_LRS", "standard_grs": "Standard_GRS", "standard_ragrs": "Standard_RAGRS",
	"standard_zrs": "Standard_ZRS", "premium_lrs": "Premium_LRS", "premium_zrs": "Premium_ZRS",
	"standard_gzrs": "Standard_GZRS", "standard_ragzrs": "Standard_RAGZRS",
}

var kinds = map[string]string{
	"storage": "Storage", "storagev2": "StorageV2", "blobstorage": "BlobStorage",
	"filestorage": "FileStorage", "blockblobstorage": "BlockBlobStorage",
}

// record is a stored account.
type record struct {
	InternalID     string            `json:"internalId"`
	Name           string            `json:"name"`
	SubscriptionID string            `json:"subscriptionId"`
	ResourceGroup  string            `json:"resourceGroup"`
	Location       string            `json:"location"`
	SKU            string            `json:"sku"`
	Kind           string            `json:"kind"`
	Tags           map[string]string `json:"tags"`
	CreationTime   time.Time         `json:"creationTime"`
	SystemData     *arm.SystemData   `json:"systemData,omitempty"`
	// Identity is the identity block as of the account's last write.
	Identity *identity.IdentityBlock `json:"identity,omitempty"`
}

func (r *record) id() arm.ResourceID {
	return arm.NewResourceID(r.SubscriptionID, r.ResourceGroup, Namespace, "storageAccounts", r.Name)
}

func nameKey(name string) string { return namesPrefix + strings.ToLower(name) }
func scopeKey(sub, rg, name string) string {
	return scopeRGPrefix(sub, rg) + strings.ToLower(name)
}
func scopeSubPrefix(sub string) string    { return scopePrefix + strings.ToLower(sub) + "/" }
func scopeRGPrefix(sub, rg string) string { return scopeSubPrefix(sub) + strings.ToLower(rg) + "/" }

func containerKey(aid, c string) string { return containerPrefix + aid + "/" + c }
func metaKey(aid, c, path string) string {
	return metaPrefix + aid + "/" + c + "/" + path
}
func idKey(aid, blobID string) string { return idPrefix + aid + "/" + blobID }
func chunkBlobPrefix(aid, blobID string) string {
	return chunkPrefix + aid + "/" + blobID + "/"
}
func chunkKey(aid, blobID string, offset int64) string {
	return chunkBlobPrefix(aid, blobID) + fmt.Sprintf("%016x", offset)
}
func retentionKey(aid, c, pfx string) string { return retentionPrefix + aid + "/" + c + "/" + pfx }

// ValidateAccountName applies Azure's storage account naming rule.
func ValidateAccountName(name string) error {
	ok := len(name) >= 3 && len(name) <= 24
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			ok = false
		}
	}
	if !ok {
		return azerr.New(http.StatusBadRequest, "AccountNameInvalid",
			"%s is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.",
			clip(name, 40)).WithTarget("name")
	}
	return nil
}

// ValidateContainerName applies Azure's container naming rule: 3-63
// lowercase letters, digits and single hyphens, starting and ending with a
// letter or digit.
func ValidateContainerName(name string) error {
	bad := azerr.New(http.StatusBadRequest, "InvalidResourceName",
		"The specified resource name '%s' is invalid: container names are 3 to 63 lowercase letters, digits and single hyphens, starting and ending with a letter or digit.",
		clip(name, 70))
	if len(name) < 3 || len(name) > 63 || name[0] == '-' || name[len(name)-1] == '-' || strings.Contains(name, "--") {
		return bad
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return bad
		}
	}
	return nil
}

// ValidateBlobName checks a blob name: 1-MaxBlobNameLength bytes of
// printable characters, "/"-separated segments that are neither empty nor
// "." or "..", at most MaxBlobSegments of them.
func ValidateBlobName(name string) error {
	bad := func(why string) error {
		return azerr.New(http.StatusBadRequest, "InvalidBlobName", "The blob name '%s' is invalid: %s.", clip(name, 100), why)
	}
	if name == "" || len(name) > MaxBlobNameLength {
		return bad(fmt.Sprintf("it must be 1 to %d bytes long", MaxBlobNameLength))
	}
	segs := strings.Split(name, "/")
	if len(segs) > MaxBlobSegments {
		return bad(fmt.Sprintf("it has more than %d path segments", MaxBlobSegments))
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return bad("a path segment is empty or a dot segment")
		}
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || r == '\\' || r == '\uFFFD' {
			return bad("it contains a control character, a backslash or invalid UTF-8")
		}
	}
	return nil
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// accountProps is the properties object of an account as ARM renders it.
type accountProps struct {
	ProvisioningState        string            `json:"provisioningState"`
	CreationTime             time.Time         `json:"creationTime"`
	PrimaryEndpoints         map[string]string `json:"primaryEndpoints"`
	PrimaryLocation          string            `json:"primaryLocation"`
	StatusOfPrimary          string            `json:"statusOfPrimary"`
	AccessTier               string            `json:"accessTier,omitempty"`
	SupportsHTTPSTrafficOnly bool              `json:"supportsHttpsTrafficOnly"`
	MinimumTLSVersion        string            `json:"minimumTlsVersion"`
	AllowBlobPublicAccess    bool              `json:"allowBlobPublicAccess"`
	PublicNetworkAccess      string            `json:"publicNetworkAccess"`
}

type sku struct {
	Name string `json:"name"`
	Tier string `json:"tier"`
}

// account is the ARM rendering of a storage account.
type account struct {
	ID         string                  `json:"id"`
	Name       string                  `json:"name"`
	Type       string                  `json:"type"`
	Location   string                  `json:"location"`
	Kind       string                  `json:"kind"`
	SKU        sku                     `json:"sku"`
	Tags       map[string]string       `json:"tags"`
	Identity   *identity.IdentityBlock `json:"identity,omitempty"`
	SystemData *arm.SystemData         `json:"systemData,omitempty"`
	Properties accountProps            `json:"properties"`
}

func (p *Provider) render(r *record) account {
	tags := r.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	tier := "Standard"
	if strings.HasPrefix(r.SKU, "Premium") {
		tier = "Premium"
	}
	props := accountProps{
		ProvisioningState: "Succeeded", CreationTime: r.CreationTime.UTC(),
		PrimaryEndpoints: map[string]string{"blob": "https://" + r.Name + ".blob." + p.opts.EndpointSuffix + "/"},
		PrimaryLocation:  r.Location, StatusOfPrimary: "available", SupportsHTTPSTrafficOnly: true,
		MinimumTLSVersion: "TLS1_2", PublicNetworkAccess: "Enabled",
	}
	if r.Kind == "StorageV2" || r.Kind == "BlobStorage" {
		props.AccessTier = "Hot"
	}
	return account{ID: r.id().String(), Name: r.Name, Type: AccountType, Location: r.Location, Kind: r.Kind,
		SKU: sku{Name: r.SKU, Tier: tier}, Tags: tags, Identity: r.Identity, SystemData: r.SystemData, Properties: props}
}

func generic(r *record) arm.GenericResource {
	return arm.GenericResource{ID: r.id().String(), Name: r.Name, Type: AccountType, Location: r.Location, Tags: r.Tags}
}

// containerRecord is a stored container.
type containerRecord struct {
	Name         string    `json:"name"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
}

// blobMeta is a stored blob's properties.
type blobMeta struct {
	ID           string    `json:"id"`
	Container    string    `json:"container"`
	Name         string    `json:"name"`
	Size         int64     `json:"size"`
	Appends      int64     `json:"appends"`
	Created      time.Time `json:"created"`
	LastModified time.Time `json:"lastModified"`
}

// BlobInfo describes one blob.
type BlobInfo struct {
	// ID addresses the blob in the ARM routes.
	ID           string
	Container    string
	Name         string
	Size         int64
	Created      time.Time
	LastModified time.Time
}

func (m *blobMeta) info() BlobInfo {
	return BlobInfo{ID: m.ID, Container: m.Container, Name: m.Name, Size: m.Size, Created: m.Created, LastModified: m.LastModified}
}
