package arm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Options configures a Server.
type Options struct {
	// BaseURL is the server's external URL, e.g. "https://localhost:8443".
	// Without its trailing slash it is also the ARM token audience.
	BaseURL string
	// TenantID names the authority in 401 challenges when the caller's
	// tenant is unknown (the default tenant).
	TenantID string
	// PageSize is the default list page size (default 100).
	PageSize int
	// MaxBodyBytes caps request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Locations are the regions offered (default: a list of Azure's public
	// region names).
	Locations []string
	// SyncOperations runs long-running operations before answering 202
	// (still polled the normal way). For tests and single-step tools.
	SyncOperations bool
	// NewID returns a fresh lowercase GUID (default uuid.NewString).
	NewID func() string
	// ReplicaID names this process as the owner of the operations it runs.
	// It must be unique per process among replicas sharing a store
	// (default: hostname-pid-random).
	ReplicaID string
	// OperationLeaseTTL is how long a running operation's owner may go
	// without renewing its lease before SweepOperations on any replica fails
	// the operation (default 30 s; the owner renews every TTL/3). It must
	// exceed the clock skew between replicas.
	OperationLeaseTTL time.Duration
	Logger            *slog.Logger
}

// DefaultLocations are offered when Options.Locations is empty.
var DefaultLocations = []string{
	"eastus", "eastus2", "westus", "westus2", "westus3", "centralus", "northcentralus", "southcentralus",
	"westcentralus", "canadacentral", "canadaeast", "brazilsouth", "northeurope", "westeurope", "uksouth",
	"ukwest", "francecentral", "germanywestcentral", "swedencentral", "switzerlandnorth", "norwayeast",
	"polandcentral", "italynorth", "eastasia", "southeastasia", "japaneast", "japanwest", "koreacentral",
	"australiaeast", "australiasoutheast", "centralindia", "southindia", "uaenorth", "southafricanorth",
	"qatarcentral", "israelcentral", "mexicocentral", "spaincentral",
}

// Server is the ARM control plane: an http.Handler for every path that
// starts with /subscriptions, /providers or /tenants.
type Server struct {
	st   store.Store
	dec  authz.Decider
	clk  clock.Clock
	opts Options

	mu        sync.RWMutex
	providers map[string]Provider // by lowercase namespace
	guards    []WriteGuard
	audits    []AuditHook

	wg sync.WaitGroup
}

// New returns an ARM server over st, authorizing with dec.
func New(st store.Store, dec authz.Decider, clk clock.Clock, opts Options) *Server {
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.PageSize <= 0 {
		opts.PageSize = 100
	}
	opts.PageSize = min(opts.PageSize, MaxPageSize)
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if len(opts.Locations) == 0 {
		opts.Locations = DefaultLocations
	}
	locs := make([]string, 0, len(opts.Locations))
	for _, l := range opts.Locations {
		locs = append(locs, NormalizeLocation(l))
	}
	opts.Locations = locs
	if opts.NewID == nil {
		opts.NewID = uuid.NewString
	}
	if opts.ReplicaID == "" {
		opts.ReplicaID = defaultReplicaID()
	}
	if opts.OperationLeaseTTL <= 0 {
		opts.OperationLeaseTTL = DefaultOperationLeaseTTL
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if clk == nil {
		clk = clock.Real{}
	}
	return &Server{st: st, dec: dec, clk: clk, opts: opts, providers: map[string]Provider{}}
}

// Register adds a resource provider. It panics on a duplicate namespace or
// on Microsoft.Resources, which the server serves itself (a wiring bug).
func (s *Server) Register(p Provider) {
	ns := strings.ToLower(p.Namespace())
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.providers[ns]; dup || ns == "microsoft.resources" {
		panic("arm: provider namespace registered twice: " + p.Namespace())
	}
	s.providers[ns] = p
}

// AddWriteGuard adds a hook run before every mutating request (locks).
func (s *Server) AddWriteGuard(g WriteGuard) {
	s.mu.Lock()
	s.guards = append(s.guards, g)
	s.mu.Unlock()
}

// AddAuditHook adds a hook told of every answered request.
func (s *Server) AddAuditHook(h AuditHook) {
	s.mu.Lock()
	s.audits = append(s.audits, h)
	s.mu.Unlock()
}

// Locations returns the regions offered, normalized.
func (s *Server) Locations() []string { return append([]string(nil), s.opts.Locations...) }

// ValidLocation reports whether loc (in any casing/spacing) is offered.
func (s *Server) ValidLocation(loc string) bool {
	n := NormalizeLocation(loc)
	for _, l := range s.opts.Locations {
		if l == n {
			return true
		}
	}
	return false
}

func (s *Server) provider(ns string) Provider {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.providers[strings.ToLower(ns)]
}

func (s *Server) sortedProviders() []Provider {
	s.mu.RLock()
	out := make([]Provider, 0, len(s.providers))
	for _, p := range s.providers {
		out = append(out, p)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace() < out[j].Namespace() })
	return out
}

// call is the state of one request, shared by the routes.
type call struct {
	w          http.ResponseWriter
	r          *http.Request
	p          *principal.Principal
	segs       []string
	body       []byte
	apiVersion string
	action     string
	scope      string
}

type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
}

func (sw *statusWriter) WriteHeader(code int) {
	if sw.status == 0 {
		sw.status = code
		sw.code = sw.Header().Get("x-ms-error-code")
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if sw.status == 0 {
		sw.WriteHeader(http.StatusOK)
	}
	return sw.ResponseWriter.Write(b)
}

// ServeHTTP serves one ARM request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w}
	c := &call{w: sw, r: r}
	if err := s.serve(c); err != nil {
		e := azerr.From(err)
		if e.Cause != nil {
			s.opts.Logger.Error("arm: request failed", "method", r.Method, "path", r.URL.Path, "code", e.Code, "cause", e.Cause)
		}
		info := principal.InfoFrom(r.Context())
		if info.ResultDescription == "" {
			info.ResultDescription = e.Message
		}
		if r.Method == http.MethodHead {
			sw.Header().Set("x-ms-error-code", e.Code)
			sw.WriteHeader(e.Status)
		} else {
			azerr.Write(sw, e)
		}
	}
	s.mu.RLock()
	hooks := s.audits
	s.mu.RUnlock()
	if len(hooks) > 0 {
		rec := AuditRecord{Time: s.clk.Now().UTC(), Method: r.Method, Path: r.URL.Path, APIVersion: c.apiVersion,
			Action: c.action, Scope: c.scope, Status: sw.status, ErrorCode: sw.code, Principal: c.p}
		for _, h := range hooks {
			h.ARMRequest(r.Context(), rec)
		}
	}
}

// audience forms accepted: the base URL with or without a trailing slash,
// with or without "/.default".
func (s *Server) audienceOK(aud string) bool {
	aud = strings.TrimSuffix(aud, "/.default")
	aud = strings.TrimRight(aud, "/")
	return strings.EqualFold(aud, s.opts.BaseURL)
}

func (s *Server) authenticate(c *call) error {
	info := principal.InfoFrom(c.r.Context())
	p := info.Principal
	tenant := s.opts.TenantID
	if p != nil && p.TenantID != "" {
		tenant = p.TenantID
	}
	if tenant == "" {
		tenant = "common"
	}
	var e *azerr.Error
	switch {
	case p == nil && info.AuthError != "":
		e = azerr.New(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: %s", info.AuthError)
	case p == nil:
		e = azerr.New(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	case !s.audienceOK(p.Audience):
		e = azerr.New(http.StatusUnauthorized, "InvalidAuthenticationToken",
			"The access token has been obtained for wrong audience or resource '%s'. It should exactly match with one of the allowed audiences '%s','%s/'.",
			trunc(p.Audience, 200), s.opts.BaseURL, s.opts.BaseURL)
	default:
		c.p = p
		return nil
	}
	desc := strings.ReplaceAll(e.Message, `"`, "'")
	c.w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s/%s", error="invalid_token", error_description="%s"`,
		s.opts.BaseURL, tenant, desc))
	return e
}

// authorize asks the Decider and records the action and scope for audit.
func (s *Server) authorize(c *call, action string, scope ResourceID) error {
	c.action, c.scope = action, scope.String()
	info := principal.InfoFrom(c.r.Context())
	// The scope is also the object acted on (properties.id), as Key Vault's
	// control-plane events name the vault.
	info.OperationName, info.OperationVersion, info.ResourceID, info.ObjectID = action, c.apiVersion, c.scope, c.scope
	ok, err := s.allowed(c.r.Context(), c.p, action, scope)
	if err != nil {
		return err
	}
	if !ok {
		return AuthorizationFailed(c.p.ObjectID, action, c.scope)
	}
	info.IsRBACAuthorized = true
	return nil
}

func (s *Server) allowed(ctx context.Context, p *principal.Principal, action string, scope ResourceID) (bool, error) {
	d, err := s.dec.Decide(ctx, authz.Request{Principal: p, Action: action, Scope: scope.String()})
	if err != nil {
		return false, azerr.Internal(fmt.Errorf("authorize %s: %w", action, err))
	}
	return d.Allowed, nil
}

func (s *Server) guard(ctx context.Context, id ResourceID, method string) error {
	if method == http.MethodGet || method == http.MethodHead {
		return nil
	}
	s.mu.RLock()
	guards := s.guards
	s.mu.RUnlock()
	for _, g := range guards {
		if err := g.BeforeWrite(ctx, id, method); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) readBody(c *call) error {
	r := c.r
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
		return nil
	}
	tooLarge := azerr.New(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
		"The request content size exceeds the maximum of %d bytes.", s.opts.MaxBodyBytes)
	if r.ContentLength > s.opts.MaxBodyBytes {
		return tooLarge
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
	if err != nil {
		return InvalidRequestContent("The request content could not be read.")
	}
	if int64(len(b)) > s.opts.MaxBodyBytes {
		return tooLarge
	}
	c.body = b
	return nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		azerr.Write(w, azerr.Internal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (s *Server) writeResponse(c *call, resp *Response) {
	for k, vs := range resp.Header {
		for _, v := range vs {
			c.w.Header().Add(k, v)
		}
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	if c.r.Method == http.MethodHead {
		if status == http.StatusOK {
			status = http.StatusNoContent
		}
		c.w.WriteHeader(status)
		return
	}
	if resp.Body == nil {
		c.w.WriteHeader(status)
		return
	}
	writeJSON(c.w, status, resp.Body)
}

func (s *Server) serve(c *call) error {
	if err := s.authenticate(c); err != nil {
		return err
	}
	path := strings.Trim(c.r.URL.Path, "/")
	if path == "" {
		return azerr.NotFound("NotFound", "The requested path is not served by the resource manager.")
	}
	c.segs = strings.Split(path, "/")
	if len(c.segs) > 64 {
		return azerr.New(http.StatusBadRequest, "InvalidRequestUri", "The request path has too many segments.")
	}
	if err := s.readBody(c); err != nil {
		return err
	}
	v, err := apiVersionFrom(c.r.URL.Query())
	if err != nil {
		return err
	}
	c.apiVersion = v
	if handled, err := s.serveCore(c); handled || err != nil {
		return err
	}
	return s.serveProvider(c)
}

// serveProvider routes a request to the provider of its last namespace.
func (s *Server) serveProvider(c *call) error {
	ctx := c.r.Context()
	id, err := ParseResourceID(c.r.URL.Path)
	if err != nil {
		return err
	}
	b := id.last()
	if b == nil || len(b.Types) == 0 {
		return azerr.NotFound("NotFound", "The requested path is not served by the resource manager.")
	}
	prov := s.provider(b.Namespace)
	if prov == nil {
		return azerr.New(http.StatusBadRequest, "InvalidResourceNamespace", "The resource namespace '%s' is invalid.", b.Namespace)
	}
	method := c.r.Method
	req := &Request{ID: id, Target: id, Method: method, APIVersion: c.apiVersion, Query: c.r.URL.Query(),
		Header: c.r.Header, Body: c.body, Principal: c.p, Now: s.clk.Now().UTC(), srv: s, path: c.r.URL.Path}
	if method == http.MethodHead {
		req.Method = http.MethodGet
	}
	ns := b.Namespace
	typePath := strings.Join(b.Types, "/")
	var verb string
	switch {
	case len(b.Names) == len(b.Types):
		req.Kind = KindResource
		switch req.Method {
		case http.MethodGet:
			verb = "read"
		case http.MethodPut, http.MethodPatch:
			verb = "write"
		case http.MethodDelete:
			verb = "delete"
		default:
			return MethodNotAllowed(method)
		}
	case req.Method == http.MethodPost:
		req.Kind = KindAction
		req.ActionName = b.Types[len(b.Types)-1]
		if len(b.Types) > 1 {
			typePath = strings.Join(b.Types[:len(b.Types)-1], "/")
		}
		req.Target, _ = id.Parent()
		verb = "action"
	case req.Method == http.MethodGet:
		req.Kind = KindCollection
		verb = "read"
	default:
		return MethodNotAllowed(method)
	}
	var rt *ResourceType
	for _, t := range prov.ResourceTypes() {
		if strings.EqualFold(t.Name, typePath) {
			rt = &t
			break
		}
	}
	if rt == nil {
		return azerr.New(http.StatusBadRequest, "InvalidResourceType",
			"The resource type '%s' could not be found in the namespace '%s' for api version '%s'.", typePath, ns, c.apiVersion)
	}
	if err := checkProviderVersion(*rt, prov.Namespace(), "", c.apiVersion, s.opts.Locations); err != nil {
		return err
	}
	req.Action = prov.Namespace() + "/" + strings.Join(b.Types, "/") + "/" + verb
	if req.Kind == KindAction {
		for name, perm := range rt.ActionPermissions {
			if strings.EqualFold(name, req.ActionName) {
				req.Action = perm
			}
		}
	}
	err = s.authorize(c, req.Action, req.Target)
	if rt.OperationName != nil {
		if n := rt.OperationName(req); n != "" {
			principal.InfoFrom(c.r.Context()).OperationName = n
		}
	}
	if err != nil {
		return err
	}
	if id.SubscriptionID != "" {
		if _, err := s.getSubscription(ctx, id.SubscriptionID); err != nil {
			return err
		}
		if id.ResourceGroup != "" {
			g, err := s.getGroup(ctx, id.SubscriptionID, id.ResourceGroup)
			if err != nil {
				return err
			}
			if g.Properties.ProvisioningState == "Deleting" && req.Method != http.MethodGet {
				return azerr.New(http.StatusConflict, "ResourceGroupBeingDeleted",
					"The resource group '%s' is in deprovisioning state and cannot perform this operation.", g.Name)
			}
		}
	}
	if err := s.guard(ctx, req.Target, req.Method); err != nil {
		return err
	}
	resp, err := rt.Handler.ServeARM(ctx, req)
	if err != nil {
		return err
	}
	if resp == nil {
		resp = NoContent()
	}
	s.writeResponse(c, resp)
	return nil
}
