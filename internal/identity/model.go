package identity

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// Tenant is a directory (an Entra tenant).
type Tenant struct {
	ID          string    `json:"id"`
	Domain      string    `json:"domain"`
	DisplayName string    `json:"displayName"`
	Created     time.Time `json:"created"`
}

// DirectoryObject is any principal in the directory: a user, an
// application's service principal or a managed identity.
type DirectoryObject struct {
	ObjectID    string
	TenantID    string
	Kind        principal.Kind
	AppID       string // service principal: appId; managed identity: clientId
	DisplayName string
	Enabled     bool
	UPN         string // users
	// MIResourceID is the managed identity's resource: for system-assigned the
	// owner's resource ID, for user-assigned the identity's own ID.
	MIResourceID   string
	SystemAssigned bool
	Created        time.Time
}

// User is a directory user.
type User struct {
	ObjectID          string
	TenantID          string
	UserPrincipalName string
	DisplayName       string
	Enabled           bool
	Created           time.Time
}

// CreateUserRequest describes a new user.
type CreateUserRequest struct {
	// TenantID, when empty, is the tenant owning the UPN's domain.
	TenantID          string
	UserPrincipalName string
	DisplayName       string
	Password          string
	Disabled          bool
}

// Application is an app registration; each has exactly one service principal
// in its tenant.
type Application struct {
	ObjectID            string // the application object's id (Graph "id")
	AppID               string // the client id
	TenantID            string
	DisplayName         string
	ServicePrincipalID  string // object id of its service principal
	PasswordCredentials []PasswordCredential
	KeyCredentials      []KeyCredential
	Created             time.Time
}

// ServicePrincipal is an application's (or a managed identity's) principal.
type ServicePrincipal struct {
	ObjectID     string
	AppID        string
	TenantID     string
	DisplayName  string
	Enabled      bool
	Kind         principal.Kind // ServicePrincipal or ManagedIdentity
	MIResourceID string         // managed identities only
}

// PasswordCredential is a client secret's metadata. SecretText is set only in
// the value AddPassword returns; it is never stored or shown again.
type PasswordCredential struct {
	KeyID         string
	DisplayName   string
	Hint          string // first 3 characters of the secret
	StartDateTime time.Time
	EndDateTime   time.Time
	SecretText    string
}

// KeyCredential is a registered certificate.
type KeyCredential struct {
	KeyID            string
	DisplayName      string
	Thumbprint       string // x5t: base64url SHA-1 of the DER certificate
	ThumbprintSHA256 string // x5t#S256
	StartDateTime    time.Time
	EndDateTime      time.Time
}

// ManagedIdentity is a system- or user-assigned managed identity.
type ManagedIdentity struct {
	PrincipalID    string // objectId
	ClientID       string
	TenantID       string
	ResourceID     string // system: the owner's resource ID; user: the identity's own ID
	Name           string
	SystemAssigned bool
	Created        time.Time
}

// BootstrapResult describes the default directory. AdminPassword is set only
// by the call that created the admin user.
type BootstrapResult struct {
	TenantID         string
	TenantDomain     string
	AdminObjectID    string
	AdminUPN         string
	AdminPassword    string
	PlatformAppID    string
	PlatformObjectID string // the platform service principal's object id
	Created          bool
}

// principalRecord is the stored form of every principal kind.
type principalRecord struct {
	ObjectID       string         `json:"objectId"`
	TenantID       string         `json:"tenantId"`
	Kind           principal.Kind `json:"kind"`
	DisplayName    string         `json:"displayName"`
	AppID          string         `json:"appId,omitempty"`
	Enabled        bool           `json:"enabled"`
	Created        time.Time      `json:"created"`
	UPN            string         `json:"upn,omitempty"`
	PasswordHash   string         `json:"passwordHash,omitempty"`
	MIResourceID   string         `json:"miResourceId,omitempty"`
	SystemAssigned bool           `json:"systemAssigned,omitempty"`
}

func (p *principalRecord) object() *DirectoryObject {
	return &DirectoryObject{ObjectID: p.ObjectID, TenantID: p.TenantID, Kind: p.Kind, AppID: p.AppID,
		DisplayName: p.DisplayName, Enabled: p.Enabled, UPN: p.UPN, MIResourceID: p.MIResourceID,
		SystemAssigned: p.SystemAssigned, Created: p.Created}
}

func (p *principalRecord) user() *User {
	return &User{ObjectID: p.ObjectID, TenantID: p.TenantID, UserPrincipalName: p.UPN,
		DisplayName: p.DisplayName, Enabled: p.Enabled, Created: p.Created}
}

func (p *principalRecord) servicePrincipal() *ServicePrincipal {
	return &ServicePrincipal{ObjectID: p.ObjectID, AppID: p.AppID, TenantID: p.TenantID,
		DisplayName: p.DisplayName, Enabled: p.Enabled, Kind: p.Kind, MIResourceID: p.MIResourceID}
}

func (p *principalRecord) managedIdentity() *ManagedIdentity {
	return &ManagedIdentity{PrincipalID: p.ObjectID, ClientID: p.AppID, TenantID: p.TenantID,
		ResourceID: p.MIResourceID, Name: p.DisplayName, SystemAssigned: p.SystemAssigned, Created: p.Created}
}

type passwordCredRecord struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName,omitempty"`
	Hint        string    `json:"hint"`
	Hash        string    `json:"hash"` // hex HMAC-SHA256 under the pepper
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
}

type keyCredRecord struct {
	KeyID       string    `json:"keyId"`
	DisplayName string    `json:"displayName,omitempty"`
	X5T         string    `json:"x5t"`
	X5TS256     string    `json:"x5tS256"`
	CertDER     []byte    `json:"cert"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
}

type appRecord struct {
	ObjectID    string               `json:"objectId"`
	AppID       string               `json:"appId"`
	TenantID    string               `json:"tenantId"`
	DisplayName string               `json:"displayName"`
	SPObjectID  string               `json:"spObjectId"`
	Passwords   []passwordCredRecord `json:"passwords,omitempty"`
	Keys        []keyCredRecord      `json:"keys,omitempty"`
	Created     time.Time            `json:"created"`
}

func (a *appRecord) application() *Application {
	out := &Application{ObjectID: a.ObjectID, AppID: a.AppID, TenantID: a.TenantID, DisplayName: a.DisplayName,
		ServicePrincipalID: a.SPObjectID, Created: a.Created,
		PasswordCredentials: []PasswordCredential{}, KeyCredentials: []KeyCredential{}}
	for _, p := range a.Passwords {
		out.PasswordCredentials = append(out.PasswordCredentials, PasswordCredential{KeyID: p.KeyID,
			DisplayName: p.DisplayName, Hint: p.Hint, StartDateTime: p.Start, EndDateTime: p.End})
	}
	for _, k := range a.Keys {
		out.KeyCredentials = append(out.KeyCredentials, k.credential())
	}
	return out
}

func (k *keyCredRecord) credential() KeyCredential {
	return KeyCredential{KeyID: k.KeyID, DisplayName: k.DisplayName, Thumbprint: k.X5T,
		ThumbprintSHA256: k.X5TS256, StartDateTime: k.Start, EndDateTime: k.End}
}

// Input limits.
const (
	maxUPNLen         = 113 // Entra's limit
	maxDisplayNameLen = 256
	minPasswordLen    = 8
	maxPasswordLen    = 256
	maxDomainLen      = 253
	maxIDLen          = 64 // object ids, app ids, key ids
	maxResourceIDLen  = 700
	maxCredentials    = 32
	maxUserAssigned   = 64
	maxListResults    = 10000
)

func badRequest(code, format string, args ...any) *azerr.Error {
	return azerr.New(400, code, format, args...)
}

func validDisplayName(s string) error {
	if s == "" {
		return badRequest("BadParameter", "displayName is required.")
	}
	if len(s) > maxDisplayNameLen || !utf8.ValidString(s) {
		return badRequest("BadParameter", "displayName must be valid UTF-8 of at most %d bytes.", maxDisplayNameLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return badRequest("BadParameter", "displayName must not contain control characters.")
		}
	}
	return nil
}

// normalizeDomain validates a DNS domain name and lower-cases it.
func normalizeDomain(d string) (string, error) {
	d = strings.ToLower(strings.TrimSpace(d))
	if d == "" || len(d) > maxDomainLen || !strings.Contains(d, ".") {
		return "", badRequest("BadParameter", "domain must be a DNS name of at most %d characters.", maxDomainLen)
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", badRequest("BadParameter", "domain %q is not a valid DNS name.", d)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", badRequest("BadParameter", "domain %q is not a valid DNS name.", d)
			}
		}
	}
	return d, nil
}

// splitUPN validates local@domain and returns the lower-cased domain.
func splitUPN(upn string) (string, error) {
	if len(upn) == 0 || len(upn) > maxUPNLen {
		return "", badRequest("BadParameter", "userPrincipalName must be at most %d characters.", maxUPNLen)
	}
	at := strings.IndexByte(upn, '@')
	if at <= 0 || at != strings.LastIndexByte(upn, '@') || at == len(upn)-1 {
		return "", badRequest("BadParameter", "userPrincipalName must have the form alias@domain.")
	}
	for _, c := range upn[:at] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_'+", c)) {
			return "", badRequest("BadParameter", "userPrincipalName contains a character that is not allowed.")
		}
	}
	return normalizeDomain(upn[at+1:])
}

func validPassword(p string) error {
	if len(p) < minPasswordLen || len(p) > maxPasswordLen || !utf8.ValidString(p) {
		return badRequest("BadParameter", "The password must be %d to %d characters long.", minPasswordLen, maxPasswordLen)
	}
	return nil
}

// validID checks an object/app id used as a store key component.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	_, err := uuid.Parse(s)
	return err == nil
}

// normResourceID validates an ARM resource ID and returns its store key form
// (lower-cased: resource IDs compare case-insensitively).
func normResourceID(id string) (string, error) {
	if len(id) < 2 || len(id) > maxResourceIDLen || id[0] != '/' || strings.HasSuffix(id, "/") || strings.Contains(id, "//") {
		return "", badRequest("InvalidResourceId", "'%s' is not a valid resource ID.", truncate(id, 100))
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f || r > 0x7e {
			return "", badRequest("InvalidResourceId", "The resource ID contains characters that are not allowed.")
		}
	}
	return strings.ToLower(id), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func lastSegment(id string) string {
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		return id[i+1:]
	}
	return id
}
