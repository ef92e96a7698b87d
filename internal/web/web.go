package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
)

//go:embed templates/*.html static/portal.css
var assets embed.FS

// Prefix is where the router mounts the portal.
const Prefix = "/portal"

// portalClientID is the client the portal's tokens are issued to: the Azure
// portal's public application id, so audit events name the portal as the
// client (appid) of every call it makes.
const portalClientID = "c44b4083-3bb0-49c1-b47d-974e53cbdf3c"

// Options configure the portal.
type Options struct {
	// BaseURL is the server's own URL (no trailing slash): the token
	// endpoint, ARM, /audit and /rotation live there, and it is the ARM
	// token audience.
	BaseURL string
	// VaultAudience is the data-plane token audience.
	VaultAudience string
	// Client reaches this server (every host name, vault hosts included)
	// and trusts its certificate.
	Client *http.Client
	Logger *slog.Logger
	Now    func() time.Time
	// IdleTimeout ends a session unused this long (default 30m);
	// MaxLifetime ends any session this long after sign-in (default 8h).
	IdleTimeout time.Duration
	MaxLifetime time.Duration
	// MaxSessions bounds the sessions held in memory (default 10000).
	MaxSessions int
	// Forward, when set, marks each call the portal makes with the
	// browser's address, so the API judges (firewall) and records (audit)
	// the browser, not the server the portal runs in.
	Forward func(req *http.Request, clientIP string)
}

// Portal serves /portal.
type Portal struct {
	opts     Options
	log      *slog.Logger
	sessions *sessionStore
	pages    map[string]*template.Template
	css      []byte
	mux      *http.ServeMux
}

// New builds the portal.
func New(opts Options) (*Portal, error) {
	if opts.BaseURL == "" || opts.Client == nil || opts.VaultAudience == "" {
		return nil, errors.New("web: BaseURL, VaultAudience and Client are required")
	}
	opts.BaseURL = strings.TrimRight(opts.BaseURL, "/")
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Minute
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = 8 * time.Hour
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 10000
	}
	p := &Portal{opts: opts, log: opts.Logger, pages: map[string]*template.Template{}}
	p.sessions = newSessionStore(opts.Now, opts.IdleTimeout, opts.MaxLifetime, opts.MaxSessions)
	css, err := assets.ReadFile("static/portal.css")
	if err != nil {
		return nil, err
	}
	p.css = css
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		p.pages[base] = t
	}
	p.routes()
	return p, nil
}

func (p *Portal) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /portal/{$}", p.serveHome)
	m.HandleFunc("GET /portal", p.serveHome)
	m.HandleFunc("GET /portal/static/portal.css", p.serveCSS)
	m.HandleFunc("GET /portal/signin", p.serveSignInForm)
	m.HandleFunc("POST /portal/signin", p.serveSignIn)
	m.HandleFunc("POST /portal/signout", p.withSession(p.serveSignOut))
	m.HandleFunc("GET /portal/subscriptions", p.withSession(p.serveSubscriptions))
	m.HandleFunc("GET /portal/subscriptions/{sub}", p.withSession(p.serveSubscription))
	m.HandleFunc("GET /portal/subscriptions/{sub}/resourcegroups/{rg}", p.withSession(p.serveResourceGroup))
	m.HandleFunc("GET /portal/vaults", p.withSession(listPage(p, typeVaults, apiKeyVault, "vaults", "Key vaults", func(v vaultRes) string { return v.Name })))
	m.HandleFunc("GET /portal/vaults/{sub}/{rg}/{name}", p.withSession(p.serveVault))
	m.HandleFunc("GET /portal/vaults/{sub}/{rg}/{name}/secrets/{secret}", p.withSession(p.serveSecretVersions))
	m.HandleFunc("GET /portal/vaults/{sub}/{rg}/{name}/logs", p.withSession(p.serveAuditLog))
	m.HandleFunc("GET /portal/vaults/{sub}/{rg}/{name}/insights", p.withSession(p.serveInsights))
	m.HandleFunc("POST /portal/vaults/{sub}/{rg}/{name}/roleassignments", p.withSession(p.addRoleAssignment(typeVaults)))
	m.HandleFunc("GET /portal/identities/{sub}/{rg}/{name}", p.withSession(p.serveIdentity))
	m.HandleFunc("POST /portal/identities/{sub}/{rg}/{name}/roleassignments", p.withSession(p.addRoleAssignment(typeIdentities)))
	m.HandleFunc("GET /portal/clusters", p.withSession(listPage(p, typeClusters, apiNetworkCloud, "clusters", "Operator Nexus clusters", func(c clusterRes) string { return c.Name })))
	m.HandleFunc("GET /portal/clusters/{sub}/{rg}/{name}", p.withSession(p.serveCluster))
	m.HandleFunc("GET /portal/devices", p.withSession(listPage(p, typeDevices, apiEdge, "devices", "Stack Edge devices", func(d deviceRes) string { return d.Name })))
	m.HandleFunc("GET /portal/devices/{sub}/{rg}/{name}", p.withSession(p.serveDevice))
	m.HandleFunc("POST /portal/devices/{sub}/{rg}/{name}/sync", p.withSession(p.serveDeviceSync))
	m.HandleFunc("POST /portal/devices/{sub}/{rg}/{name}/recover", p.withSession(p.serveDeviceRecover))
	p.mux = m
}

// ServeHTTP serves every request under /portal.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// No script, no framing, forms only to the portal, nothing cached: pages
	// show secrets' metadata, access policies and audit events.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // no-referrer would make the browser send "Origin: null" on our own forms
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	// The portal is only served over TLS; browsers should never try it in
	// the clear (no includeSubDomains: vault hosts share the domain).
	h.Set("Strict-Transport-Security", "max-age=31536000")
	if r.URL.Path != Prefix+"/static/portal.css" {
		h.Set("Cache-Control", "no-store")
	}
	info := principal.InfoFrom(r.Context())
	if info.OperationName == "" {
		info.OperationName = "PortalView"
	}
	// A request is answered by a pattern or by the portal's own 404/405 page.
	if _, pattern := p.mux.Handler(r); pattern == "" {
		p.renderError(w, r, nil, http.StatusNotFound, "Not found", "There is no portal page at this address.")
		return
	}
	p.mux.ServeHTTP(w, r)
}

func (p *Portal) serveCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(p.css)
}

func (p *Portal) serveHome(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.sessions.lookup(r); ok {
		http.Redirect(w, r, Prefix+"/subscriptions", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
}

// crumb is one breadcrumb link.
type crumb struct {
	Name, Href string
}

// view is what every page template gets.
type view struct {
	Title  string
	User   string
	CSRF   string
	Flash  string
	Crumbs []crumb
	Data   any
}

func (p *Portal) render(w http.ResponseWriter, s *session, status int, name, title string, crumbs []crumb, data any) {
	t, ok := p.pages[name]
	if !ok {
		http.Error(w, "portal template missing", http.StatusInternalServerError)
		return
	}
	v := view{Title: title, Crumbs: crumbs, Data: data}
	if s != nil {
		v.User, v.CSRF, v.Flash = s.upn, s.csrf, s.takeFlash()
	}
	var b strings.Builder
	if err := t.Execute(&b, v); err != nil {
		p.log.Error("portal: render", "page", name, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// errorData is the error and access-denied pages' data.
type errorData struct {
	Heading, Message string
	Status           int
}

func (p *Portal) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, heading, msg string) {
	p.renderPage(w, r, s, "error", status, heading, msg)
}

func (p *Portal) renderPage(w http.ResponseWriter, r *http.Request, s *session, name string, status int, heading, msg string) {
	if d := principal.InfoFrom(r.Context()); d.ResultDescription == "" {
		d.ResultDescription = heading
	}
	p.render(w, s, status, name, heading, nil, errorData{Heading: heading, Message: msg, Status: status})
}

// fail renders an API failure: the access-denied page for 403, sign-in for
// a token the API no longer accepts, the API's own (public) message else.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	switch {
	case errors.Is(err, errSignedOut):
		p.sessions.drop(s)
		clearCookie(w)
		http.Redirect(w, r, signInURL(r), http.StatusSeeOther)
	case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
		p.renderPage(w, r, s, "denied", http.StatusForbidden, "You do not have access",
			"keyhaven refused this view for your account: "+ae.Message)
	case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
		p.renderError(w, r, s, http.StatusNotFound, "Not found", ae.Message)
	case errors.As(err, &ae) && ae.Status < 500:
		p.renderError(w, r, s, ae.Status, "The request was refused", fmt.Sprintf("%s (%d %s)", ae.Message, ae.Status, ae.Code))
	case errors.As(err, &ae):
		p.renderError(w, r, s, http.StatusBadGateway, "The request failed", fmt.Sprintf("%s (%d %s)", ae.Message, ae.Status, ae.Code))
	default:
		p.log.Warn("portal: API call failed", "err", err)
		p.renderError(w, r, s, http.StatusBadGateway, "The request failed", "keyhaven's API could not be reached.")
	}
}

// signInURL is the sign-in page that returns to the requested page.
func signInURL(r *http.Request) string {
	if r.Method == http.MethodGet && safeNext(r.URL.RequestURI()) != "" {
		return Prefix + "/signin?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	return Prefix + "/signin"
}

// safeNext accepts only a portal path as a place to return to (never
// another origin).
func safeNext(next string) string {
	if len(next) > 2048 || !strings.HasPrefix(next, Prefix+"/") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, Prefix+"/signin") || strings.Contains(next, "//") {
		return ""
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || path.Clean(u.Path) != u.Path || !strings.HasPrefix(u.Path, Prefix+"/") {
		return ""
	}
	return next
}

var funcs = template.FuncMap{
	"unix": func(v *int64) string {
		if v == nil {
			return ""
		}
		return time.Unix(*v, 0).UTC().Format("2006-01-02 15:04:05Z")
	},
	"yesno": func(b bool) string {
		if b {
			return "Yes"
		}
		return "No"
	},
	"join": strings.Join,
	"timefmt": func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return ""
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}
