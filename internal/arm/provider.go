package arm

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// Provider is a resource provider: one namespace (e.g. Microsoft.KeyVault)
// and the resource types it serves.
type Provider interface {
	// Namespace is the provider namespace, e.g. "Microsoft.KeyVault".
	Namespace() string
	// ResourceTypes lists the types served, each with its api-versions and
	// handler.
	ResourceTypes() []ResourceType
}

// GroupResources is implemented by providers that hold resources in
// resource groups. The server uses it for generic resource lists and to
// cascade a resource group delete.
type GroupResources interface {
	// ListResources lists the provider's live resources in a subscription,
	// limited to one resource group when resourceGroup is not "".
	ListResources(ctx context.Context, subscriptionID, resourceGroup string) ([]GenericResource, error)
	// DeleteGroupResources deletes everything the provider holds in the
	// resource group (as a DELETE of each resource would).
	DeleteGroupResources(ctx context.Context, subscriptionID, resourceGroup string) error
}

// ResourceType is one type of a provider.
type ResourceType struct {
	// Name is the type path inside the namespace: "vaults",
	// "vaults/accessPolicies", "locations/deletedVaults",
	// "checkNameAvailability".
	Name string
	// APIVersions lists the supported api-versions, newest last.
	APIVersions []string
	// Locations lists where the type is offered ("" means everywhere).
	Locations []string
	Handler   Handler
	// ActionPermissions maps a POST action name of this type to the RBAC
	// action it requires, where that differs from the derived
	// "{ns}/{type}/{name}/action" (e.g. a keyhaven extension action that a
	// built-in role grants under another name).
	ActionPermissions map[string]string
	// OperationName, when set, names a request of this type in the audit
	// log (Key Vault's VaultGet, VaultPut, ...) in place of its RBAC action.
	// It is asked before authorization, so refused requests carry it too.
	OperationName func(req *Request) string
}

// Handler serves the requests for one resource type.
type Handler interface {
	ServeARM(ctx context.Context, req *Request) (*Response, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) (*Response, error)

// ServeARM calls f.
func (f HandlerFunc) ServeARM(ctx context.Context, req *Request) (*Response, error) {
	return f(ctx, req)
}

// Kind says what a request path names.
type Kind int

const (
	// KindResource: the path names one resource (".../vaults/v1").
	KindResource Kind = iota
	// KindCollection: a GET of a type without a name (".../vaults").
	KindCollection
	// KindAction: a POST whose last segment is an action
	// (".../deletedVaults/v1/purge", ".../checkNameAvailability").
	KindAction
)

// Request is a parsed, authenticated and authorized ARM request as a
// provider handler receives it.
type Request struct {
	// ID is the request path as a resource ID.
	ID ResourceID
	// Target is the resource the request acts on: ID itself, or for an
	// action ID without its trailing action segment.
	Target     ResourceID
	Kind       Kind
	ActionName string // KindAction only, e.g. "purge"
	Method     string
	APIVersion string
	// Action is the RBAC action that was authorized, e.g.
	// "Microsoft.KeyVault/vaults/write".
	Action    string
	Query     url.Values
	Header    http.Header
	Body      []byte // at most Options.MaxBodyBytes
	Principal *principal.Principal
	// Now is the request time from the server's clock.
	Now time.Time

	srv  *Server
	path string // the URL path as received, for nextLink
}

// Allowed reports whether the caller may perform action on another
// resource than the one requested (a linked scope, such as a user-assigned
// identity being attached). A scope that does not parse is not allowed.
func (r *Request) Allowed(ctx context.Context, action, scope string) (bool, error) {
	id, err := ParseResourceID(scope)
	if err != nil || r.srv == nil {
		return false, nil
	}
	return r.srv.allowed(ctx, r.Principal, action, id)
}

// Tenant is the tenant of the request's subscription (where the identities
// of a resource in it live), else the caller's.
func (r *Request) Tenant(ctx context.Context) string {
	if r.srv != nil && r.ID.SubscriptionID != "" {
		if t, err := r.srv.SubscriptionTenant(ctx, r.ID.SubscriptionID); err == nil && t != "" {
			return t
		}
	}
	if r.Principal != nil {
		return r.Principal.TenantID
	}
	return ""
}

// Response is what a handler answers. A nil Body sends no content.
type Response struct {
	Status int
	Body   any
	Header http.Header
}

// OK is a 200 with body.
func OK(body any) *Response { return &Response{Status: http.StatusOK, Body: body} }

// Created is a 201 with body.
func Created(body any) *Response { return &Response{Status: http.StatusCreated, Body: body} }

// NoContent is a 204.
func NoContent() *Response { return &Response{Status: http.StatusNoContent} }

// WriteGuard is consulted before every mutating request (any method but
// GET/HEAD), after authorization. The locks provider implements it: it
// returns an error (e.g. 409 ScopeLocked) when a lock at id or an ancestor
// forbids method, and for a DELETE of a scope (e.g. a resource group) when a
// lock beneath it does.
type WriteGuard interface {
	BeforeWrite(ctx context.Context, id ResourceID, method string) error
}

// AuditHook is told of every ARM request once it has been answered. The
// server's own audit log reads principal.Info instead; this is for
// in-process consumers (metrics, tests).
type AuditHook interface {
	ARMRequest(ctx context.Context, rec AuditRecord)
}

// AuditRecord summarizes one answered ARM request.
type AuditRecord struct {
	Time       time.Time
	Method     string
	Path       string
	APIVersion string
	Action     string
	Scope      string
	Status     int
	ErrorCode  string
	Principal  *principal.Principal
}

// LocationOffered reports whether loc (any casing/spacing) is a region the
// server offers.
func (r *Request) LocationOffered(loc string) bool { return r.srv.ValidLocation(loc) }

// Locations returns the regions the server offers, normalized.
func (r *Request) Locations() []string { return r.srv.Locations() }
