package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

// DefaultDomain is the default tenant's domain.
const DefaultDomain = "keyhaven.local"

// PlatformAppName is the display name of keyhaven's own platform application.
const PlatformAppName = "keyhaven-platform"

func errTenantNotFound(t string) *azerr.Error {
	return azerr.NotFound("TenantNotFound", "Tenant '%s' not found.", truncate(t, 100))
}

func errObjectNotFound(id string) *azerr.Error {
	return azerr.NotFound("Request_ResourceNotFound", "Resource '%s' does not exist or one of its queried reference-property objects are not present.", truncate(id, 100))
}

// ---- tenants ----

// CreateTenant creates a tenant owning domain.
func (s *Service) CreateTenant(ctx context.Context, domain, displayName string) (*Tenant, error) {
	d, err := normalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	if err := validDisplayName(displayName); err != nil {
		return nil, err
	}
	var t *Tenant
	err = s.st.Update(ctx, func(tx store.Tx) error {
		var err error
		t, err = s.createTenantTx(ctx, tx, d, displayName)
		return err
	})
	return t, err
}

func (s *Service) createTenantTx(ctx context.Context, tx store.Tx, domain, displayName string) (*Tenant, error) {
	if _, err := tx.Get(ctx, kDomain+domain); err == nil {
		return nil, azerr.Conflict("The domain '%s' is already used by a tenant.", domain)
	} else if !isNotFound(err) {
		return nil, err
	}
	t := &Tenant{ID: newGUID(), Domain: domain, DisplayName: displayName, Created: s.now()}
	if _, err := store.PutJSON(ctx, tx, kTenant+t.ID, t, store.Absent); err != nil {
		return nil, err
	}
	if err := putString(ctx, tx, kDomain+domain, t.ID, store.Absent); err != nil {
		return nil, err
	}
	return t, nil
}

// GetTenant returns a tenant by id (GUID) or domain.
func (s *Service) GetTenant(ctx context.Context, idOrDomain string) (*Tenant, error) {
	return s.getTenant(ctx, s.st, idOrDomain)
}

func (s *Service) getTenant(ctx context.Context, r store.Reader, idOrDomain string) (*Tenant, error) {
	if idOrDomain == "" || len(idOrDomain) > maxDomainLen {
		return nil, errTenantNotFound(idOrDomain)
	}
	id := strings.ToLower(idOrDomain)
	if !isGUID(id) {
		d, err := normalizeDomain(idOrDomain)
		if err != nil {
			return nil, errTenantNotFound(idOrDomain)
		}
		id, err = getString(ctx, r, kDomain+d)
		if isNotFound(err) {
			return nil, errTenantNotFound(idOrDomain)
		} else if err != nil {
			return nil, err
		}
	}
	var t Tenant
	if _, err := store.LoadJSON(ctx, r, kTenant+id, &t); isNotFound(err) {
		return nil, errTenantNotFound(idOrDomain)
	} else if err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTenants returns every tenant.
func (s *Service) ListTenants(ctx context.Context) ([]*Tenant, error) {
	recs, err := listAll(ctx, s.st, kTenant)
	if err != nil {
		return nil, err
	}
	var out []*Tenant
	for _, rec := range recs {
		t, err := store.DecodeJSON[Tenant](rec)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// DefaultTenant returns the tenant created by Bootstrap.
func (s *Service) DefaultTenant(ctx context.Context) (*Tenant, error) {
	id, err := getString(ctx, s.st, kDefaultTenant)
	if isNotFound(err) {
		return nil, azerr.NotFound("TenantNotFound", "The directory has not been bootstrapped.")
	} else if err != nil {
		return nil, err
	}
	return s.GetTenant(ctx, id)
}

// resolveTenantID turns "" into the default tenant and checks the tenant exists.
func (s *Service) resolveTenantID(ctx context.Context, r store.Reader, tenantID string) (string, error) {
	if tenantID == "" {
		id, err := getString(ctx, r, kDefaultTenant)
		if isNotFound(err) {
			return "", azerr.NotFound("TenantNotFound", "The directory has not been bootstrapped.")
		}
		return id, err
	}
	t, err := s.getTenant(ctx, r, tenantID)
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// ---- principals ----

func (s *Service) getPrincipal(ctx context.Context, r store.Reader, objectID string) (*principalRecord, int64, error) {
	if !validID(objectID) {
		return nil, 0, errObjectNotFound(objectID)
	}
	var p principalRecord
	ver, err := store.LoadJSON(ctx, r, kPrincipal+strings.ToLower(objectID), &p)
	if isNotFound(err) {
		return nil, 0, errObjectNotFound(objectID)
	}
	if err != nil {
		return nil, 0, err
	}
	return &p, ver, nil
}

// LookupPrincipal returns any principal by object id.
func (s *Service) LookupPrincipal(ctx context.Context, objectID string) (*DirectoryObject, error) {
	p, _, err := s.getPrincipal(ctx, s.st, objectID)
	if err != nil {
		return nil, err
	}
	return p.object(), nil
}

// SetPrincipalEnabled enables or disables sign-in for a principal. Tokens
// already issued stop verifying at once.
func (s *Service) SetPrincipalEnabled(ctx context.Context, objectID string, enabled bool) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		p, ver, err := s.getPrincipal(ctx, tx, objectID)
		if err != nil {
			return err
		}
		p.Enabled = enabled
		_, err = store.PutJSON(ctx, tx, kPrincipal+p.ObjectID, p, ver)
		return err
	})
}

// ---- users ----

// CreateUser creates a user; the UPN's domain must belong to the tenant.
func (s *Service) CreateUser(ctx context.Context, req CreateUserRequest) (*User, error) {
	domain, err := splitUPN(req.UserPrincipalName)
	if err != nil {
		return nil, err
	}
	if req.DisplayName == "" {
		req.DisplayName = req.UserPrincipalName[:strings.IndexByte(req.UserPrincipalName, '@')]
	}
	if err := validDisplayName(req.DisplayName); err != nil {
		return nil, err
	}
	if err := validPassword(req.Password); err != nil {
		return nil, err
	}
	hash := hashPassword(req.Password) // outside the transaction: it may be retried
	var u *User
	err = s.st.Update(ctx, func(tx store.Tx) error {
		tid := req.TenantID
		if tid == "" {
			tid = domain
		}
		t, err := s.getTenant(ctx, tx, tid)
		if err != nil {
			return err
		}
		if t.Domain != domain {
			return badRequest("BadParameter", "The domain portion of the userPrincipalName property is invalid. You must use one of the verified domain names in your organization.")
		}
		rec, err := s.createUserTx(ctx, tx, t.ID, req.UserPrincipalName, req.DisplayName, hash, !req.Disabled)
		if err != nil {
			return err
		}
		u = rec.user()
		return nil
	})
	return u, err
}

func (s *Service) createUserTx(ctx context.Context, tx store.Tx, tenantID, upn, displayName, hash string, enabled bool) (*principalRecord, error) {
	key := kUPN + strings.ToLower(upn)
	if _, err := tx.Get(ctx, key); err == nil {
		return nil, badRequest("Request_BadRequest", "Another object with the same value for property userPrincipalName already exists.")
	} else if !isNotFound(err) {
		return nil, err
	}
	p := &principalRecord{ObjectID: newGUID(), TenantID: tenantID, Kind: principal.User, DisplayName: displayName,
		Enabled: enabled, Created: s.now(), UPN: upn, PasswordHash: hash}
	if _, err := store.PutJSON(ctx, tx, kPrincipal+p.ObjectID, p, store.Absent); err != nil {
		return nil, err
	}
	if err := putString(ctx, tx, key, p.ObjectID, store.Absent); err != nil {
		return nil, err
	}
	return p, nil
}

// userByIDOrUPN finds a user by object id or UPN.
func (s *Service) userByIDOrUPN(ctx context.Context, r store.Reader, idOrUPN string) (*principalRecord, int64, error) {
	id := idOrUPN
	if strings.Contains(idOrUPN, "@") {
		if len(idOrUPN) > maxUPNLen {
			return nil, 0, errObjectNotFound(idOrUPN)
		}
		var err error
		id, err = getString(ctx, r, kUPN+strings.ToLower(idOrUPN))
		if isNotFound(err) {
			return nil, 0, errObjectNotFound(idOrUPN)
		} else if err != nil {
			return nil, 0, err
		}
	}
	p, ver, err := s.getPrincipal(ctx, r, id)
	if err != nil {
		return nil, 0, err
	}
	if p.Kind != principal.User {
		return nil, 0, errObjectNotFound(idOrUPN)
	}
	return p, ver, nil
}

// GetUser returns a user by object id or UPN.
func (s *Service) GetUser(ctx context.Context, idOrUPN string) (*User, error) {
	p, _, err := s.userByIDOrUPN(ctx, s.st, idOrUPN)
	if err != nil {
		return nil, err
	}
	return p.user(), nil
}

// ListUsers returns the users of tenantID ("" for every tenant), by UPN.
func (s *Service) ListUsers(ctx context.Context, tenantID string) ([]*User, error) {
	ps, err := s.listPrincipals(ctx, tenantID, principal.User)
	if err != nil {
		return nil, err
	}
	out := make([]*User, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.user())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].UserPrincipalName < out[j].UserPrincipalName })
	return out, nil
}

// SetUserPassword replaces a user's password.
func (s *Service) SetUserPassword(ctx context.Context, idOrUPN, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	hash := hashPassword(password)
	return s.st.Update(ctx, func(tx store.Tx) error {
		p, ver, err := s.userByIDOrUPN(ctx, tx, idOrUPN)
		if err != nil {
			return err
		}
		p.PasswordHash = hash
		_, err = store.PutJSON(ctx, tx, kPrincipal+p.ObjectID, p, ver)
		return err
	})
}

// DeleteUser deletes a user; tokens already issued to it stop verifying.
func (s *Service) DeleteUser(ctx context.Context, idOrUPN string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		p, _, err := s.userByIDOrUPN(ctx, tx, idOrUPN)
		if err != nil {
			return err
		}
		if err := tx.Delete(ctx, kPrincipal+p.ObjectID, store.Any); err != nil {
			return err
		}
		return tx.Delete(ctx, kUPN+strings.ToLower(p.UPN), store.Any)
	})
}

func (s *Service) listPrincipals(ctx context.Context, tenantID string, kinds ...principal.Kind) ([]*principalRecord, error) {
	if tenantID != "" {
		t, err := s.GetTenant(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		tenantID = t.ID
	}
	recs, err := listAll(ctx, s.st, kPrincipal)
	if err != nil {
		return nil, err
	}
	var out []*principalRecord
	for _, rec := range recs {
		p, err := store.DecodeJSON[principalRecord](rec)
		if err != nil {
			return nil, err
		}
		if tenantID != "" && p.TenantID != tenantID {
			continue
		}
		for _, k := range kinds {
			if p.Kind == k {
				out = append(out, p)
				break
			}
		}
	}
	return out, nil
}

// ---- applications and service principals ----

// CreateApplication registers an application and creates its service
// principal. tenantID "" means the default tenant.
func (s *Service) CreateApplication(ctx context.Context, tenantID, displayName string) (*Application, *ServicePrincipal, error) {
	if err := validDisplayName(displayName); err != nil {
		return nil, nil, err
	}
	var app *appRecord
	var sp *principalRecord
	err := s.st.Update(ctx, func(tx store.Tx) error {
		tid, err := s.resolveTenantID(ctx, tx, tenantID)
		if err != nil {
			return err
		}
		app, sp, err = s.createAppTx(ctx, tx, tid, displayName)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return app.application(), sp.servicePrincipal(), nil
}

func (s *Service) createAppTx(ctx context.Context, tx store.Tx, tenantID, displayName string) (*appRecord, *principalRecord, error) {
	now := s.now()
	app := &appRecord{ObjectID: newGUID(), AppID: newGUID(), TenantID: tenantID, DisplayName: displayName,
		SPObjectID: newGUID(), Created: now}
	sp := &principalRecord{ObjectID: app.SPObjectID, TenantID: tenantID, Kind: principal.ServicePrincipal,
		DisplayName: displayName, AppID: app.AppID, Enabled: true, Created: now}
	for _, w := range []struct {
		key string
		v   any
	}{{kApp + app.AppID, app}, {kPrincipal + sp.ObjectID, sp}} {
		if _, err := store.PutJSON(ctx, tx, w.key, w.v, store.Absent); err != nil {
			return nil, nil, err
		}
	}
	if err := putString(ctx, tx, kAppObj+app.ObjectID, app.AppID, store.Absent); err != nil {
		return nil, nil, err
	}
	if err := putString(ctx, tx, kClientID+app.AppID, sp.ObjectID, store.Absent); err != nil {
		return nil, nil, err
	}
	return app, sp, nil
}

// getApp finds an application by appId, application object id or its
// service principal's object id.
func (s *Service) getApp(ctx context.Context, r store.Reader, id string) (*appRecord, int64, error) {
	if !validID(id) {
		return nil, 0, errObjectNotFound(id)
	}
	id = strings.ToLower(id)
	var app appRecord
	ver, err := store.LoadJSON(ctx, r, kApp+id, &app)
	if isNotFound(err) {
		appID, err2 := getString(ctx, r, kAppObj+id)
		if isNotFound(err2) {
			var p principalRecord
			if _, err3 := store.LoadJSON(ctx, r, kPrincipal+id, &p); err3 == nil && p.Kind == principal.ServicePrincipal {
				appID, err2 = p.AppID, nil
			}
		}
		if isNotFound(err2) {
			return nil, 0, errObjectNotFound(id)
		} else if err2 != nil {
			return nil, 0, err2
		}
		ver, err = store.LoadJSON(ctx, r, kApp+appID, &app)
	}
	if isNotFound(err) {
		return nil, 0, errObjectNotFound(id)
	}
	if err != nil {
		return nil, 0, err
	}
	return &app, ver, nil
}

// GetApplication returns an application by appId or object id.
func (s *Service) GetApplication(ctx context.Context, id string) (*Application, error) {
	app, _, err := s.getApp(ctx, s.st, id)
	if err != nil {
		return nil, err
	}
	return app.application(), nil
}

// ListApplications returns the applications of tenantID ("" for all).
func (s *Service) ListApplications(ctx context.Context, tenantID string) ([]*Application, error) {
	if tenantID != "" {
		t, err := s.GetTenant(ctx, tenantID)
		if err != nil {
			return nil, err
		}
		tenantID = t.ID
	}
	recs, err := listAll(ctx, s.st, kApp)
	if err != nil {
		return nil, err
	}
	var out []*Application
	for _, rec := range recs {
		a, err := store.DecodeJSON[appRecord](rec)
		if err != nil {
			return nil, err
		}
		if tenantID == "" || a.TenantID == tenantID {
			out = append(out, a.application())
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].DisplayName < out[j].DisplayName })
	return out, nil
}

// DeleteApplication deletes an application and its service principal.
func (s *Service) DeleteApplication(ctx context.Context, id string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		app, _, err := s.getApp(ctx, tx, id)
		if err != nil {
			return err
		}
		if bp, err := s.bootstrapRecord(ctx, tx); err == nil && bp.PlatformAppID == app.AppID {
			return badRequest("Request_BadRequest", "The platform application cannot be deleted.")
		}
		for _, k := range []string{kApp + app.AppID, kAppObj + app.ObjectID, kPrincipal + app.SPObjectID, kClientID + app.AppID} {
			if err := tx.Delete(ctx, k, store.Any); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddPassword adds a client secret to an application and returns it with
// SecretText set; this is the only time the secret is available. A zero end
// means two years from now.
func (s *Service) AddPassword(ctx context.Context, appID, displayName string, end time.Time) (*PasswordCredential, error) {
	now := s.now()
	if end.IsZero() {
		end = now.AddDate(2, 0, 0)
	}
	if !end.After(now) || end.After(now.AddDate(10, 0, 0)) {
		return nil, badRequest("BadParameter", "endDateTime must be in the future and at most 10 years away.")
	}
	if displayName != "" {
		if err := validDisplayName(displayName); err != nil {
			return nil, err
		}
	}
	secret := newClientSecret()
	hash, err := s.secretHash(ctx, secret)
	if err != nil {
		return nil, err
	}
	cred := passwordCredRecord{KeyID: newGUID(), DisplayName: displayName, Hint: secret[:3], Hash: hash,
		Start: now, End: end.UTC()}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		app, ver, err := s.getApp(ctx, tx, appID)
		if err != nil {
			return err
		}
		if len(app.Passwords) >= maxCredentials {
			return badRequest("BadParameter", "An application can have at most %d password credentials.", maxCredentials)
		}
		app.Passwords = append(app.Passwords, cred)
		_, err = store.PutJSON(ctx, tx, kApp+app.AppID, app, ver)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &PasswordCredential{KeyID: cred.KeyID, DisplayName: cred.DisplayName, Hint: cred.Hint,
		StartDateTime: cred.Start, EndDateTime: cred.End, SecretText: secret}, nil
}

// newClientSecret returns 40 characters (~236 bits) shaped like Entra's
// secrets: three characters, "8Q~", then the rest.
func newClientSecret() string {
	r := strings.NewReplacer("-", ".", "_", "~").Replace(randomToken(30))
	return r[:3] + "8Q~" + r[3:37]
}

// RemovePassword removes a client secret by key id.
func (s *Service) RemovePassword(ctx context.Context, appID, keyID string) error {
	return s.st.Update(ctx, func(tx store.Tx) error {
		app, ver, err := s.getApp(ctx, tx, appID)
		if err != nil {
			return err
		}
		for i, p := range app.Passwords {
			if strings.EqualFold(p.KeyID, keyID) {
				app.Passwords = append(app.Passwords[:i], app.Passwords[i+1:]...)
				_, err := store.PutJSON(ctx, tx, kApp+app.AppID, app, ver)
				return err
			}
		}
		return azerr.NotFound("Request_ResourceNotFound", "No password credential with keyId '%s'.", truncate(keyID, 64))
	})
}

const maxCertPEM = 16 << 10

// AddCertificate registers a certificate (PEM) whose private key the
// application signs client assertions with.
func (s *Service) AddCertificate(ctx context.Context, appID string, certPEM []byte, displayName string) (*KeyCredential, error) {
	if len(certPEM) > maxCertPEM {
		return nil, badRequest("BadParameter", "The certificate is larger than %d bytes.", maxCertPEM)
	}
	block, rest := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" || strings.TrimSpace(string(rest)) != "" {
		return nil, badRequest("BadParameter", "Expected exactly one PEM CERTIFICATE block.")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, badRequest("BadParameter", "The certificate could not be parsed.")
	}
	switch k := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, badRequest("BadParameter", "RSA certificate keys must be at least 2048 bits.")
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, badRequest("BadParameter", "EC certificate keys must use P-256.")
		}
	default:
		return nil, badRequest("BadParameter", "Only RSA and EC P-256 certificates are supported.")
	}
	now := s.now()
	if !cert.NotAfter.After(now) {
		return nil, badRequest("BadParameter", "The certificate has expired.")
	}
	if displayName == "" {
		displayName = cert.Subject.CommonName
	}
	if displayName != "" {
		if err := validDisplayName(displayName); err != nil {
			return nil, err
		}
	}
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	kc := keyCredRecord{KeyID: newGUID(), DisplayName: displayName,
		X5T: base64.RawURLEncoding.EncodeToString(s1[:]), X5TS256: base64.RawURLEncoding.EncodeToString(s256[:]),
		CertDER: cert.Raw, Start: cert.NotBefore.UTC(), End: cert.NotAfter.UTC()}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		app, ver, err := s.getApp(ctx, tx, appID)
		if err != nil {
			return err
		}
		if len(app.Keys) >= maxCredentials {
			return badRequest("BadParameter", "An application can have at most %d key credentials.", maxCredentials)
		}
		for _, k := range app.Keys {
			if k.X5T == kc.X5T {
				return azerr.Conflict("This certificate is already registered.")
			}
		}
		app.Keys = append(app.Keys, kc)
		_, err = store.PutJSON(ctx, tx, kApp+app.AppID, app, ver)
		return err
	})
	if err != nil {
		return nil, err
	}
	out := kc.credential()
	return &out, nil
}

// GetServicePrincipal returns a service principal (or managed identity) by
// object id or by appId/clientId.
func (s *Service) GetServicePrincipal(ctx context.Context, id string) (*ServicePrincipal, error) {
	p, err := s.spByIDOrAppID(ctx, s.st, id)
	if err != nil {
		return nil, err
	}
	return p.servicePrincipal(), nil
}

func (s *Service) spByIDOrAppID(ctx context.Context, r store.Reader, id string) (*principalRecord, error) {
	if !validID(id) {
		return nil, errObjectNotFound(id)
	}
	id = strings.ToLower(id)
	p, _, err := s.getPrincipal(ctx, r, id)
	if err != nil {
		var ae *azerr.Error
		if !errors.As(err, &ae) || ae.Status != 404 {
			return nil, err
		}
		oid, err2 := getString(ctx, r, kClientID+id)
		if isNotFound(err2) {
			return nil, err
		} else if err2 != nil {
			return nil, err2
		}
		if p, _, err = s.getPrincipal(ctx, r, oid); err != nil {
			return nil, err
		}
	}
	if p.Kind != principal.ServicePrincipal && p.Kind != principal.ManagedIdentity {
		return nil, errObjectNotFound(id)
	}
	return p, nil
}

// ListServicePrincipals returns the service principals and managed
// identities of tenantID ("" for all).
func (s *Service) ListServicePrincipals(ctx context.Context, tenantID string) ([]*ServicePrincipal, error) {
	ps, err := s.listPrincipals(ctx, tenantID, principal.ServicePrincipal, principal.ManagedIdentity)
	if err != nil {
		return nil, err
	}
	out := make([]*ServicePrincipal, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.servicePrincipal())
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].DisplayName != out[j].DisplayName {
			return out[i].DisplayName < out[j].DisplayName
		}
		return out[i].ObjectID < out[j].ObjectID
	})
	return out, nil
}

// ---- bootstrap ----

type bootstrapRecord struct {
	TenantID      string    `json:"tenantId"`
	AdminObjectID string    `json:"adminObjectId"`
	AdminUPN      string    `json:"adminUpn"`
	PlatformAppID string    `json:"platformAppId"`
	PlatformSPID  string    `json:"platformSpId"`
	Created       time.Time `json:"created"`
}

func (s *Service) bootstrapRecord(ctx context.Context, r store.Reader) (*bootstrapRecord, error) {
	var b bootstrapRecord
	if _, err := store.LoadJSON(ctx, r, kBootstrap, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Bootstrap creates, once, the default tenant (domain keyhaven.local), the
// admin user admin@keyhaven.local with a random password (returned only by
// the call that created it) and the platform application with its service
// principal. Later calls, on any replica, return the same directory.
func (s *Service) Bootstrap(ctx context.Context) (*BootstrapResult, error) {
	if b, err := s.bootstrapRecord(ctx, s.st); err == nil {
		return s.bootstrapResult(ctx, b, "")
	} else if !isNotFound(err) {
		return nil, err
	}
	password := randomToken(24)
	hash := hashPassword(password)
	var b *bootstrapRecord
	created := false
	err := s.st.Update(ctx, func(tx store.Tx) error {
		created = false
		if existing, err := s.bootstrapRecord(ctx, tx); err == nil {
			b = existing
			return nil
		} else if !isNotFound(err) {
			return err
		}
		t, err := s.createTenantTx(ctx, tx, DefaultDomain, "keyhaven")
		if err != nil {
			return err
		}
		upn := "admin@" + DefaultDomain
		admin, err := s.createUserTx(ctx, tx, t.ID, upn, "keyhaven administrator", hash, true)
		if err != nil {
			return err
		}
		app, sp, err := s.createAppTx(ctx, tx, t.ID, PlatformAppName)
		if err != nil {
			return err
		}
		b = &bootstrapRecord{TenantID: t.ID, AdminObjectID: admin.ObjectID, AdminUPN: upn,
			PlatformAppID: app.AppID, PlatformSPID: sp.ObjectID, Created: s.now()}
		if err := putString(ctx, tx, kDefaultTenant, t.ID, store.Absent); err != nil {
			return err
		}
		created = true
		_, err = store.PutJSON(ctx, tx, kBootstrap, b, store.Absent)
		return err
	})
	if errors.Is(err, store.ErrConflict) {
		// Another replica bootstrapped concurrently.
		if b, err2 := s.bootstrapRecord(ctx, s.st); err2 == nil {
			return s.bootstrapResult(ctx, b, "")
		}
	}
	if err != nil {
		return nil, err
	}
	if !created {
		password = ""
	}
	return s.bootstrapResult(ctx, b, password)
}

func (s *Service) bootstrapResult(ctx context.Context, b *bootstrapRecord, password string) (*BootstrapResult, error) {
	t, err := s.GetTenant(ctx, b.TenantID)
	if err != nil {
		return nil, err
	}
	return &BootstrapResult{TenantID: b.TenantID, TenantDomain: t.Domain, AdminObjectID: b.AdminObjectID,
		AdminUPN: b.AdminUPN, AdminPassword: password, PlatformAppID: b.PlatformAppID,
		PlatformObjectID: b.PlatformSPID, Created: password != ""}, nil
}

// platformInfo returns the cached bootstrap record (it never changes once
// written), or nil before bootstrap.
func (s *Service) platformInfo(ctx context.Context) (*bootstrapRecord, error) {
	s.platformMu.Lock()
	defer s.platformMu.Unlock()
	if s.platform != nil {
		return s.platform, nil
	}
	b, err := s.bootstrapRecord(ctx, s.st)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.platform = b
	return b, nil
}

// PlatformAppID returns the platform application's appId.
func (s *Service) PlatformAppID(ctx context.Context) (string, error) {
	b, err := s.platformInfo(ctx)
	if err != nil {
		return "", err
	}
	if b == nil {
		return "", azerr.NotFound("TenantNotFound", "The directory has not been bootstrapped.")
	}
	return b.PlatformAppID, nil
}

// ---- store helpers ----

// listAll lists every record under prefix, page by page, up to maxListResults.
func listAll(ctx context.Context, r store.Reader, prefix string) ([]store.Record, error) {
	var out []store.Record
	after := ""
	for {
		page, err := r.List(ctx, prefix, store.ListOptions{After: after, Limit: 500})
		if err != nil {
			return nil, err
		}
		out = append(out, page...)
		if len(page) < 500 || len(out) >= maxListResults {
			return out, nil
		}
		after = page[len(page)-1].Key
	}
}
