package vault

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Config configures the data plane. Store, Sealer, Directory, Decider,
// VaultDomain, Port and AuthorityBase are required.
type Config struct {
	Store     store.Store
	Sealer    seal.Sealer
	Directory Directory
	Decider   authz.Decider
	Clock     clock.Clock // default clock.Real
	// VaultDomain is the DNS suffix of vault hosts, e.g. "vault.localhost".
	VaultDomain string
	// Port is the HTTPS port clients use; 443 is left out of URLs.
	Port int
	// AuthorityBase is the identity authority, e.g. "https://localhost:8443";
	// the challenge names "{AuthorityBase}/{tenantId}".
	AuthorityBase string
	Throttle      Throttle
	// Rand is the source of version ids and backup ids (default crypto/rand).
	Rand io.Reader
}

// Service is the Key Vault secrets data plane.
type Service struct {
	st        store.Store
	sealer    seal.Sealer
	dir       Directory
	decider   authz.Decider
	clk       clock.Clock
	rand      io.Reader
	authority string
	resource  string          // challenge resource, e.g. https://vault.localhost:8443
	audiences map[string]bool // accepted token audiences, lower-cased
	limits    *limiter
}

// New validates cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("vault: Config.Store is required")
	case cfg.Sealer == nil:
		return nil, errors.New("vault: Config.Sealer is required")
	case cfg.Directory == nil:
		return nil, errors.New("vault: Config.Directory is required")
	case cfg.Decider == nil:
		return nil, errors.New("vault: Config.Decider is required")
	case cfg.VaultDomain == "" || strings.ContainsAny(cfg.VaultDomain, "/:\" ="):
		return nil, errors.New("vault: Config.VaultDomain must be a host name")
	case cfg.Port <= 0 || cfg.Port > 65535:
		return nil, errors.New("vault: Config.Port must be 1-65535")
	case !strings.HasPrefix(cfg.AuthorityBase, "https://") || strings.ContainsAny(cfg.AuthorityBase, "\" =,"):
		return nil, errors.New("vault: Config.AuthorityBase must be an https URL")
	}
	s := &Service{
		st: cfg.Store, sealer: cfg.Sealer, dir: cfg.Directory, decider: cfg.Decider,
		clk: cfg.Clock, rand: cfg.Rand,
		authority: strings.TrimRight(cfg.AuthorityBase, "/"),
	}
	if s.clk == nil {
		s.clk = clock.Real{}
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	domain := strings.ToLower(cfg.VaultDomain)
	withPort := "https://" + domain + ":" + strconv.Itoa(cfg.Port)
	bare := "https://" + domain
	if cfg.Port == 443 {
		s.resource = bare
	} else {
		s.resource = withPort
	}
	s.audiences = map[string]bool{}
	for _, a := range []string{withPort, bare} {
		s.audiences[a] = true
		s.audiences[a+"/"] = true
	}
	s.limits = newLimiter(s.clk, cfg.Throttle)
	return s, nil
}

// request carries one request through the pipeline.
type request struct {
	w       http.ResponseWriter
	r       *http.Request
	info    *principal.Info
	p       *principal.Principal
	vault   *VaultInfo
	base    string // vault base URL, no trailing slash
	api     string
	route   route
	spec    opSpec
	rawPath string
}

// ServeVault serves one data-plane request for vaultName. baseURL is the
// vault's URL as the client addresses it (no trailing slash needed), e.g.
// "https://v1.vault.localhost:8443" or "https://localhost:8443/vaults/v1";
// object ids are built on it. The server has already stripped any
// "/vaults/{vault}" prefix from r.URL.
func (s *Service) ServeVault(w http.ResponseWriter, r *http.Request, vaultName string, baseURL string) {
	ctx := r.Context()
	info := principal.InfoFrom(ctx)
	rq := &request{w: w, r: r, info: info, base: strings.TrimRight(baseURL, "/"), rawPath: r.URL.EscapedPath()}

	v, err := s.dir.LookupVault(ctx, vaultName)
	if err != nil {
		s.fail(rq, err)
		return
	}
	rq.vault = v
	info.ResourceID = v.ResourceID
	// The route is known from method and path alone, so even a refused or
	// unauthenticated request is audited under its operation and object.
	rt, routeErr := parsePath(r.Method, rq.rawPath)
	if routeErr == nil {
		rq.route = rt
		rq.spec = specOf(rt.Op)
		info.OperationName = rq.spec.Name
		info.ObjectID = rq.objectID()
	}

	// Authentication comes first and never reads the body: the SDKs send
	// their first request bare and expect the challenge.
	if e := s.authenticate(v, info); e != nil {
		s.challenge(w, v)
		s.fail(rq, e)
		return
	}
	rq.p = info.Principal
	if e := s.firewall(v, info); e != nil {
		s.fail(rq, e)
		return
	}
	rq.api = r.URL.Query().Get("api-version")
	info.OperationVersion = clip(rq.api, 40)
	if e := checkAPIVersion(rq.api); e != nil {
		s.fail(rq, e)
		return
	}
	if routeErr != nil {
		s.fail(rq, routeErr)
		return
	}
	if wait := s.limits.take(v.InternalID, rq.spec.Create); wait > 0 {
		s.fail(rq, errThrottled(wait))
		return
	}
	if e := s.authorize(rq); e != nil {
		s.fail(rq, e)
		return
	}
	status, body, err := s.dispatch(rq)
	if err != nil {
		s.fail(rq, err)
		return
	}
	writeJSON(w, status, body)
}

func (s *Service) dispatch(rq *request) (int, any, error) {
	if err := s.guardManaged(rq); err != nil {
		return 0, nil, err
	}
	switch rq.route.Op {
	case opSet:
		return s.setSecret(rq)
	case opGet:
		return s.getSecret(rq)
	case opList:
		return s.listSecrets(rq)
	case opListVersions:
		return s.listVersions(rq)
	case opUpdate:
		return s.updateSecret(rq)
	case opDelete:
		return s.deleteSecret(rq)
	case opGetDeleted:
		return s.getDeleted(rq)
	case opListDeleted:
		return s.listDeleted(rq)
	case opRecover:
		return s.recoverDeleted(rq)
	case opPurge:
		return s.purgeDeleted(rq)
	case opBackup:
		return s.backupSecret(rq)
	case opRestore:
		return s.restoreSecret(rq)
	}
	if isKeyOp(rq.route.Op) {
		return s.dispatchKey(rq)
	}
	if isCertOp(rq.route.Op) {
		return s.dispatchCert(rq)
	}
	return 0, nil, errRouteNotFound(rq.r.Method, rq.rawPath)
}

// fail renders err and records its public description for the audit log.
func (s *Service) fail(rq *request, err error) {
	e := azerr.Write(rq.w, err)
	rq.info.ResultDescription = e.Message
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	h := w.Header()
	// Responses may carry secret values: never cache them.
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	if body == nil {
		w.WriteHeader(status)
		return
	}
	b, err := json.Marshal(body)
	if err != nil {
		azerr.Write(w, azerr.Internal(err))
		return
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// readBody reads the whole body, bounded by limit.
func readBody(rq *request, limit int64) ([]byte, *azerr.Error) {
	if rq.r.ContentLength > limit {
		return nil, errBodyTooLarge(limit)
	}
	b, err := io.ReadAll(io.LimitReader(rq.r.Body, limit+1))
	if err != nil {
		return nil, azerr.BadParameter("The request body could not be read.")
	}
	if int64(len(b)) > limit {
		return nil, errBodyTooLarge(limit)
	}
	return b, nil
}

// newVersion returns a fresh 32-hex-digit version id.
func (s *Service) newVersion() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(s.rand, b[:]); err != nil {
		return "", fmt.Errorf("vault: version id: %w", err)
	}
	return fmt.Sprintf("%x", b[:]), nil
}

// objectID is the audited object of the request: the secret (and version)
// it names, else the collection it lists or posts to.
func (rq *request) objectID() string {
	if rq.route.Name != "" {
		id := rq.base + "/" + rq.spec.kind() + "/" + rq.route.Name
		if rq.route.Version != "" {
			id += "/" + rq.route.Version
		}
		return id
	}
	return rq.base + strings.TrimRight(rq.rawPath, "/")
}
