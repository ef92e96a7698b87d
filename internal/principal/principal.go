// Package principal owns the authenticated caller as the rest of keyhaven sees
// it, and the request-scoped values carried in a context: the principal, the
// request id and the caller's network facts. It is a leaf: identity produces
// principals, authz and every handler consume them.
package principal

import "context"

// Kind is the type of a principal, named as Entra ID names them.
type Kind string

const (
	User             Kind = "User"
	ServicePrincipal Kind = "ServicePrincipal"
	ManagedIdentity  Kind = "ManagedIdentity"
)

// Principal is an authenticated caller, as read from a verified access token.
type Principal struct {
	TenantID string // tid
	ObjectID string // oid: the principalId role assignments and policies name
	AppID    string // appid/azp: the client (application) id
	Kind     Kind
	UPN      string // users only
	// MIResourceID is xms_mirid: the resource ID of a managed identity.
	MIResourceID string
	// Platform marks keyhaven's own platform application (trusted service).
	Platform bool
	// TokenID is the token's jti, for correlation; never the token itself.
	TokenID string
	// Audience is the token's aud.
	Audience string
}

// Info is request-scoped metadata set by the server for every request.
type Info struct {
	RequestID     string
	CorrelationID string
	ClientIP      string // caller's address, without port
	TLSVersion    string // e.g. "TLS1_3"
	UserAgent     string
	Principal     *Principal // nil until authenticated
	// AuthError is why a presented bearer token was rejected ("" if none was
	// presented or it verified). Public-safe text, never the token.
	AuthError string

	// Set by the handler that serves the request, for the audit record.
	OperationName     string // e.g. SecretGet, VaultPut
	OperationVersion  string // the api-version
	ResourceID        string // ARM id of the vault or resource
	ObjectID          string // e.g. https://v.vault.localhost:8443/secrets/n/ver
	IsAccessPolicy    bool   // the access-policy model decided
	IsRBACAuthorized  bool   // RBAC decided and allowed
	ResultDescription string // public reason for a refusal or failure
	// ValueHMAC identifies a value the request carried (SecretSet) without
	// revealing it: the handler sets it to HMAC(value).
	ValueHMAC string

	// HMAC, set by the audit log before the handler runs (nil when the
	// request is not audited), keys a value's HMAC under the deployment's
	// audit key, so a handler records ValueHMAC and never stores the value.
	HMAC func(value string) string
}

type ctxKey struct{}

// WithInfo returns ctx carrying info.
func WithInfo(ctx context.Context, info *Info) context.Context {
	return context.WithValue(ctx, ctxKey{}, info)
}

// InfoFrom returns the request info in ctx, or an empty Info (never nil).
func InfoFrom(ctx context.Context) *Info {
	if i, ok := ctx.Value(ctxKey{}).(*Info); ok && i != nil {
		return i
	}
	return &Info{}
}

// From returns the authenticated principal in ctx, or nil.
func From(ctx context.Context) *Principal {
	return InfoFrom(ctx).Principal
}
