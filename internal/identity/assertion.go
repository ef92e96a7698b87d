package identity

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// assertionClaims are the claims of a client assertion (RFC 7523).
type assertionClaims struct {
	Iss string           `json:"iss"`
	Sub string           `json:"sub"`
	Aud jwt.Audience     `json:"aud"`
	Exp *jwt.NumericDate `json:"exp"`
	Nbf *jwt.NumericDate `json:"nbf"`
}

// decodeThumbprint accepts the encodings clients use for x5t in practice
// (base64url with or without padding, standard base64).
func decodeThumbprint(v string) []byte {
	for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.StdEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			return b
		}
	}
	return nil
}

// assertionAudiences are the token endpoint URLs a client may name as aud.
func (s *Service) assertionAudiences(tr *tokenRequest) []string {
	segs := []string{tr.tenantSeg}
	if tr.tenant != nil {
		segs = append(segs, tr.tenant.ID, tr.tenant.Domain)
	}
	var out []string
	for _, seg := range segs {
		out = append(out, s.base+"/"+seg+"/oauth2/v2.0/token", s.base+"/"+seg+"/oauth2/token")
	}
	return out
}

// verifyAssertion checks a client assertion: signed (RS256, PS256 or ES256)
// by the key of a certificate registered on app (chosen by x5t when sent),
// iss = sub = client_id, aud = this token endpoint, within exp/nbf.
func (s *Service) verifyAssertion(ctx context.Context, tr *tokenRequest, app *appRecord) *oauthError {
	if tr.assertType != assertionTypeJWT {
		return &oauthError{status: 400, code: "invalid_request", aadsts: 900144,
			desc: "client_assertion_type must be " + assertionTypeJWT + "."}
	}
	if tr.assertion == "" {
		return errMissing("client_assertion")
	}
	tok, err := jwt.ParseSigned(tr.assertion, []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256})
	if err != nil || len(tok.Headers) != 1 {
		return &oauthError{status: 401, code: "invalid_client", aadsts: 50027,
			desc: "JWT token is invalid or malformed."}
	}
	h := tok.Headers[0]
	var want []byte
	var wantS256 bool
	if v, ok := h.ExtraHeaders["x5t#S256"].(string); ok {
		want, wantS256 = decodeThumbprint(v), true
	} else if v, ok := h.ExtraHeaders["x5t"].(string); ok {
		want = decodeThumbprint(v)
	}
	now := s.now()
	verified := false
	for i := range app.Keys {
		k := &app.Keys[i]
		if want != nil {
			var tp []byte
			if wantS256 {
				d := sha256.Sum256(k.CertDER)
				tp = d[:]
			} else {
				d := sha1.Sum(k.CertDER)
				tp = d[:]
			}
			if string(tp) != string(want) { // thumbprints are public: no constant time needed
				continue
			}
		}
		if now.After(k.End) {
			continue
		}
		cert, err := x509.ParseCertificate(k.CertDER)
		if err != nil {
			continue
		}
		if tok.Claims(cert.PublicKey) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return &oauthError{status: 401, code: "invalid_client", aadsts: 700027,
			desc: fmt.Sprintf("Client assertion failed signature validation: no valid certificate registered on application '%s' verifies it.", app.AppID)}
	}
	var c assertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil { // verified above
		return &oauthError{status: 401, code: "invalid_client", aadsts: 50027, desc: "JWT token is invalid or malformed."}
	}
	if !strings.EqualFold(c.Iss, app.AppID) || !strings.EqualFold(c.Sub, app.AppID) {
		return &oauthError{status: 401, code: "invalid_client", aadsts: 700021,
			desc: "Client assertion application identifier doesn't match 'client_id' parameter."}
	}
	audOK := false
	for _, a := range c.Aud {
		for _, want := range s.assertionAudiences(tr) {
			if strings.EqualFold(strings.TrimRight(a, "/"), want) {
				audOK = true
			}
		}
	}
	if !audOK {
		return &oauthError{status: 401, code: "invalid_client", aadsts: 700027,
			desc: "Client assertion audience claim does not match this token endpoint."}
	}
	skew := s.opts.ClockSkew
	if c.Exp == nil || now.After(c.Exp.Time().Add(skew)) || (c.Nbf != nil && c.Nbf.Time().After(now.Add(skew))) {
		return &oauthError{status: 401, code: "invalid_client", aadsts: 700024,
			desc: "Client assertion is not within its valid time range."}
	}
	return nil
}
