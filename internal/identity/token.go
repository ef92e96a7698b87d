package identity

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// Error codes of Verify failures (ARM's names); all are 401.
const (
	CodeInvalidToken = "InvalidAuthenticationToken"
	CodeExpiredToken = "ExpiredAuthenticationToken"
	CodeTokenTenant  = "InvalidAuthenticationTokenTenant"
)

// Limits on what Verify and IssueToken accept.
const (
	maxTokenLen    = 8 << 10
	maxAudienceLen = 512
	maxKIDLen      = 128
)

// accessClaims are the claims of an access token (Entra v2 names).
type accessClaims struct {
	Aud               string `json:"aud"`
	Iss               string `json:"iss"`
	Iat               int64  `json:"iat"`
	Nbf               int64  `json:"nbf"`
	Exp               int64  `json:"exp"`
	AppID             string `json:"appid,omitempty"`
	Azp               string `json:"azp,omitempty"`
	AzpACR            string `json:"azpacr,omitempty"`
	Idtyp             string `json:"idtyp"`
	Name              string `json:"name,omitempty"`
	Oid               string `json:"oid"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Scp               string `json:"scp,omitempty"`
	Sub               string `json:"sub"`
	Tid               string `json:"tid"`
	UPN               string `json:"upn,omitempty"`
	Uti               string `json:"uti"`
	Jti               string `json:"jti"`
	Ver               string `json:"ver"`
	XmsMirid          string `json:"xms_mirid,omitempty"`
	// XmsKhTrusted marks a token issued in process for a trusted platform
	// service (see Trusted); no OAuth grant ever sets it.
	XmsKhTrusted bool `json:"xms_kh_trusted,omitempty"`
}

// idClaims are the claims of an ID token. It has no idtyp, so Verify never
// accepts an ID token as an access token.
type idClaims struct {
	Aud               string `json:"aud"`
	Iss               string `json:"iss"`
	Iat               int64  `json:"iat"`
	Nbf               int64  `json:"nbf"`
	Exp               int64  `json:"exp"`
	Name              string `json:"name,omitempty"`
	Oid               string `json:"oid"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Sub               string `json:"sub"`
	Tid               string `json:"tid"`
	Ver               string `json:"ver"`
}

// issueParams are the request-dependent parts of an access token.
type issueParams struct {
	audience string
	clientID string // users: the client the user signed in through
	scp      string // users: delegated scopes
	azpacr   string // "0" public client, "1" secret, "2" certificate
	trusted  bool   // xms_kh_trusted (IssueToken with Trusted only)
}

// IssueOption adjusts a token signed by IssueToken.
type IssueOption func(*issueParams)

// Trusted marks the token as presented by a trusted platform service acting
// for the principal (the claim xms_kh_trusted): Verify then sets
// principal.Platform, so a vault firewall with bypass AzureServices admits
// it, as Azure admits its trusted services. Only in-process callers of
// IssueToken can ask for it (the rotation engine, delivering through a
// cluster manager's identity); no OAuth grant sets it, and it is refused for
// users. The claim is covered by the token signature like every other.
func Trusted() IssueOption { return func(ip *issueParams) { ip.trusted = true } }

func validAudience(a string) error {
	if a == "" || len(a) > maxAudienceLen || strings.ContainsAny(a, " \t\r\n") {
		return badRequest("BadParameter", "The audience must be 1 to %d characters without whitespace.", maxAudienceLen)
	}
	return nil
}

// issueAccess signs an access token for p.
func (s *Service) issueAccess(ctx context.Context, p *principalRecord, ip issueParams) (string, time.Time, error) {
	ks, err := s.keySetFor(ctx, false)
	if err != nil {
		return "", time.Time{}, err
	}
	now := s.now().Truncate(time.Second)
	exp := now.Add(s.opts.TokenLifetime)
	jti := randomToken(16)
	c := accessClaims{Aud: ip.audience, Iss: s.Issuer(p.TenantID), Iat: now.Unix(), Nbf: now.Unix(), Exp: exp.Unix(),
		Oid: p.ObjectID, Sub: p.ObjectID, Tid: p.TenantID, Name: p.DisplayName, Uti: jti, Jti: jti, Ver: "2.0",
		AzpACR: ip.azpacr, XmsKhTrusted: ip.trusted}
	switch p.Kind {
	case principal.User:
		c.Idtyp = "user"
		c.AppID, c.Azp = ip.clientID, ip.clientID
		c.UPN, c.PreferredUsername = p.UPN, p.UPN
		c.Scp = ip.scp
	case principal.ManagedIdentity:
		c.Idtyp = "app"
		c.AppID, c.Azp = p.AppID, p.AppID
		c.XmsMirid = p.MIResourceID
	default:
		c.Idtyp = "app"
		c.AppID, c.Azp = p.AppID, p.AppID
	}
	raw, err := jwt.Signed(ks.signer).Claims(c).Serialize()
	if err != nil {
		return "", time.Time{}, err
	}
	return raw, exp, nil
}

// issueID signs an OIDC ID token for a user signing in through clientID.
func (s *Service) issueID(ctx context.Context, p *principalRecord, clientID string) (string, error) {
	ks, err := s.keySetFor(ctx, false)
	if err != nil {
		return "", err
	}
	now := s.now().Truncate(time.Second)
	c := idClaims{Aud: clientID, Iss: s.Issuer(p.TenantID), Iat: now.Unix(), Nbf: now.Unix(),
		Exp: now.Add(s.opts.TokenLifetime).Unix(), Name: p.DisplayName, Oid: p.ObjectID,
		PreferredUsername: p.UPN, Sub: p.ObjectID, Tid: p.TenantID, Ver: "2.0"}
	return jwt.Signed(ks.signer).Claims(c).Serialize()
}

// IssueToken issues an access token for the principal objectID, in process
// (no credential): the rotation engine uses it for managed identities. A
// user's token names the platform application as its client. Options (e.g.
// Trusted) adjust the token; calls without options behave as before.
func (s *Service) IssueToken(ctx context.Context, objectID, audience string, opts ...IssueOption) (string, time.Time, error) {
	if err := validAudience(audience); err != nil {
		return "", time.Time{}, err
	}
	p, _, err := s.getPrincipal(ctx, s.st, objectID)
	if err != nil {
		return "", time.Time{}, err
	}
	if !p.Enabled {
		return "", time.Time{}, azerr.Forbidden("The principal '%s' is disabled.", p.ObjectID)
	}
	ip := issueParams{audience: audience}
	for _, o := range opts {
		if o != nil {
			o(&ip)
		}
	}
	if ip.trusted && p.Kind == principal.User {
		return "", time.Time{}, azerr.BadParameter("A trusted-service token cannot be issued for a user.")
	}
	if p.Kind == principal.User {
		if b, err := s.platformInfo(ctx); err == nil && b != nil {
			ip.clientID = b.PlatformAppID
		}
		ip.scp = "user_impersonation"
	}
	return s.issueAccess(ctx, p, ip)
}

// verifyClaims reads claims leniently (numbers may be floats, aud may be a
// list) so that malformed tokens fail our checks rather than decoding.
type verifyClaims struct {
	Iss      string           `json:"iss"`
	Aud      jwt.Audience     `json:"aud"`
	Exp      *jwt.NumericDate `json:"exp"`
	Nbf      *jwt.NumericDate `json:"nbf"`
	Iat      *jwt.NumericDate `json:"iat"`
	Jti      string           `json:"jti"`
	Oid      string           `json:"oid"`
	Tid      string           `json:"tid"`
	AppID    string           `json:"appid"`
	Idtyp    string           `json:"idtyp"`
	XmsMirid string           `json:"xms_mirid"`
	Trusted  bool             `json:"xms_kh_trusted"`
}

func tokenErr(code, msg string) *azerr.Error {
	return azerr.New(http.StatusUnauthorized, code, "%s", msg)
}

// Verify checks an access token issued by this service and returns the
// principal it names. Only RS256 with a published key id is accepted; the
// issuer must be {BaseURL}/{tid}/v2.0 of an existing tenant; exp/nbf are
// checked with the configured skew; the principal must still exist, be
// enabled and match the token. Errors are 401 *azerr.Error with a public
// reason that never quotes the token.
func (s *Service) Verify(ctx context.Context, raw string) (*principal.Principal, error) {
	if raw == "" {
		return nil, tokenErr(CodeInvalidToken, "No access token was presented.")
	}
	if len(raw) > maxTokenLen {
		return nil, tokenErr(CodeInvalidToken, "The access token is too large.")
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, tokenErr(CodeInvalidToken, "The access token is malformed or not signed with RS256.")
	}
	kid := tok.Headers[0].KeyID
	if kid == "" || len(kid) > maxKIDLen {
		return nil, tokenErr(CodeInvalidToken, "The access token does not name a signing key (kid).")
	}
	pub, err := s.publicKey(ctx, kid)
	if err != nil {
		return nil, azerr.Internal(err)
	}
	if pub == nil {
		return nil, tokenErr(CodeInvalidToken, "The access token was signed with an unknown key.")
	}
	if err := tok.Claims(pub); err != nil {
		return nil, tokenErr(CodeInvalidToken, "The access token signature is invalid.")
	}
	var c verifyClaims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil { // signature verified above
		return nil, tokenErr(CodeInvalidToken, "The access token claims are malformed.")
	}
	if c.Idtyp != "app" && c.Idtyp != "user" {
		return nil, tokenErr(CodeInvalidToken, "The token is not an access token.")
	}
	if !isGUID(c.Oid) || !isGUID(c.Tid) {
		return nil, tokenErr(CodeInvalidToken, "The access token lacks a valid oid or tid claim.")
	}
	if c.Iss != s.Issuer(c.Tid) {
		if strings.HasPrefix(c.Iss, s.base+"/") && strings.HasSuffix(c.Iss, "/v2.0") {
			return nil, tokenErr(CodeTokenTenant, "The access token's issuer tenant does not match its tid claim.")
		}
		return nil, tokenErr(CodeInvalidToken, "The access token was not issued by this server.")
	}
	if _, err := s.getTenant(ctx, s.st, c.Tid); err != nil {
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, tokenErr(CodeTokenTenant, "The access token is from an unknown tenant.")
		}
		return nil, azerr.Internal(err)
	}
	now := s.now()
	skew := s.opts.ClockSkew
	if c.Exp == nil || c.Nbf == nil {
		return nil, tokenErr(CodeInvalidToken, "The access token lacks exp or nbf.")
	}
	if now.After(c.Exp.Time().Add(skew)) {
		return nil, tokenErr(CodeExpiredToken, "The access token has expired.")
	}
	if c.Nbf.Time().After(now.Add(skew)) || (c.Iat != nil && c.Iat.Time().After(now.Add(skew))) {
		return nil, tokenErr(CodeInvalidToken, "The access token is not yet valid.")
	}
	if len(c.Aud) != 1 || c.Aud[0] == "" {
		return nil, tokenErr(CodeInvalidToken, "The access token must have exactly one audience.")
	}
	p, _, err := s.getPrincipal(ctx, s.st, c.Oid)
	if err != nil {
		var ae *azerr.Error
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
			return nil, tokenErr(CodeInvalidToken, "The principal of the access token no longer exists.")
		}
		return nil, azerr.Internal(err)
	}
	if !p.Enabled {
		return nil, tokenErr(CodeInvalidToken, "The principal of the access token is disabled.")
	}
	if p.TenantID != c.Tid {
		return nil, tokenErr(CodeTokenTenant, "The principal of the access token belongs to another tenant.")
	}
	if (p.Kind == principal.User) != (c.Idtyp == "user") {
		return nil, tokenErr(CodeInvalidToken, "The access token type does not match its principal.")
	}
	if p.Kind != principal.User && c.AppID != p.AppID {
		return nil, tokenErr(CodeInvalidToken, "The access token's appid does not match its principal.")
	}
	if p.Kind == principal.ManagedIdentity && !strings.EqualFold(c.XmsMirid, p.MIResourceID) {
		return nil, tokenErr(CodeInvalidToken, "The access token's managed identity resource does not match its principal.")
	}
	out := &principal.Principal{TenantID: p.TenantID, ObjectID: p.ObjectID, AppID: c.AppID, Kind: p.Kind,
		UPN: p.UPN, TokenID: c.Jti, Audience: c.Aud[0]}
	if p.Kind == principal.ManagedIdentity {
		out.MIResourceID = p.MIResourceID
	}
	if b, err := s.platformInfo(ctx); err == nil && b != nil {
		// Only the platform's own service principal is trusted as the
		// platform: a user signing in through the platform's client id is not.
		out.Platform = p.Kind == principal.ServicePrincipal && p.ObjectID == b.PlatformSPID
	}
	if c.Trusted && p.Kind != principal.User {
		// Signed by us and only ever set by IssueToken(..., Trusted()).
		out.Platform = true
	}
	return out, nil
}
