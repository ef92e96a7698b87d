package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

func TestIssueVerifyRoundTrip(t *testing.T) {
	e := newEnv(t)
	u := e.user("alice@keyhaven.local", "correct horse battery")
	_, sp := e.app("app-one")
	sys, err := e.svc.EnsureSystemAssigned(e.ctx, "", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.NetworkCloud/clusters/c1")
	if err != nil {
		t.Fatal(err)
	}
	uaiID := "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
	uai, err := e.svc.CreateUserAssigned(e.ctx, "", uaiID)
	if err != nil {
		t.Fatal(err)
	}
	const aud = "https://vault.localhost:8443"
	cases := []struct {
		name      string
		oid       string
		kind      principal.Kind
		appID     string
		upn       string
		mirid     string
		idtyp     string
		platform  bool
		wantClaim map[string]string
	}{
		{name: "ok/user", oid: u.ObjectID, kind: principal.User, appID: e.boot.PlatformAppID, upn: u.UserPrincipalName, idtyp: "user",
			wantClaim: map[string]string{"upn": u.UserPrincipalName, "preferred_username": u.UserPrincipalName}},
		{name: "ok/admin-user", oid: e.boot.AdminObjectID, kind: principal.User, appID: e.boot.PlatformAppID, upn: "admin@keyhaven.local", idtyp: "user"},
		{name: "ok/service-principal", oid: sp.ObjectID, kind: principal.ServicePrincipal, appID: sp.AppID, idtyp: "app"},
		{name: "ok/platform", oid: e.boot.PlatformObjectID, kind: principal.ServicePrincipal, appID: e.boot.PlatformAppID, idtyp: "app", platform: true},
		{name: "ok/system-assigned-mi", oid: sys.PrincipalID, kind: principal.ManagedIdentity, appID: sys.ClientID, mirid: sys.ResourceID, idtyp: "app"},
		{name: "ok/user-assigned-mi", oid: uai.PrincipalID, kind: principal.ManagedIdentity, appID: uai.ClientID, mirid: uaiID, idtyp: "app"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, exp, err := e.svc.IssueToken(e.ctx, tc.oid, aud)
			if err != nil {
				t.Fatal(err)
			}
			if want := testStart.Add(time.Hour); !exp.Equal(want) {
				t.Errorf("expiresOn = %v, want %v", exp, want)
			}
			p := e.mustVerify(tok)
			want := principal.Principal{TenantID: e.boot.TenantID, ObjectID: tc.oid, AppID: tc.appID, Kind: tc.kind,
				UPN: tc.upn, MIResourceID: tc.mirid, Platform: tc.platform, TokenID: p.TokenID, Audience: aud}
			if *p != want {
				t.Errorf("principal = %+v\nwant        %+v", *p, want)
			}
			if p.TokenID == "" {
				t.Error("empty TokenID")
			}
			c := claimsOf(t, tok)
			for k, v := range map[string]string{"iss": testBase + "/" + e.boot.TenantID + "/v2.0", "aud": aud, "oid": tc.oid,
				"sub": tc.oid, "tid": e.boot.TenantID, "appid": tc.appID, "azp": tc.appID, "idtyp": tc.idtyp, "ver": "2.0",
				"xms_mirid": tc.mirid, "jti": p.TokenID, "uti": p.TokenID} {
				got, _ := c[k].(string)
				if got != v {
					t.Errorf("claim %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tc.wantClaim {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %q", k, c[k], v)
				}
			}
			for _, k := range []string{"iat", "nbf", "exp"} {
				if _, ok := c[k].(float64); !ok {
					t.Errorf("claim %s missing", k)
				}
			}
			h := headerOf(t, tok)
			if h["alg"] != "RS256" || h["typ"] != "JWT" || h["kid"] == "" {
				t.Errorf("header = %v", h)
			}
		})
	}
}

func TestIssueTokenRefused(t *testing.T) {
	e := newEnv(t)
	u := e.user("bob@keyhaven.local", "correct horse battery")
	if err := e.svc.SetPrincipalEnabled(e.ctx, u.ObjectID, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, oid, aud string
		status         int
	}{
		{"fail/unknown-principal", newGUID(), "https://x", 404},
		{"fail/disabled", u.ObjectID, "https://x", 403},
		{"fail/empty-audience", u.ObjectID, "", 400},
		{"fail/audience-with-space", u.ObjectID, "https://x y", 400},
		{"fail/audience-too-long", u.ObjectID, "https://" + strings.Repeat("a", 600), 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.svc.IssueToken(e.ctx, tc.oid, tc.aud)
			if err == nil {
				t.Fatal("issued")
			}
			if a, ok := asAz(err); !ok || a.Status != tc.status {
				t.Fatalf("want status %d, got %v", tc.status, err)
			}
		})
	}
}

// TestVerifyRefusesForgedTokens is the table of tokens that must never verify.
func TestVerifyRefusesForgedTokens(t *testing.T) {
	e := newEnv(t)
	u := e.user("carol@keyhaven.local", "correct horse battery")
	_, sp := e.app("victim")
	other, err := e.svc.CreateTenant(e.ctx, "other.example", "other")
	if err != nil {
		t.Fatal(err)
	}
	good, _, err := e.svc.IssueToken(e.ctx, u.ObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := e.svc.keySetFor(e.ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	kid := ks.activeKID
	pub := ks.pub[kid]
	parts := strings.Split(good, ".")

	now := testStart.Unix()
	base := func(mut func(c map[string]any)) map[string]any {
		c := map[string]any{"iss": e.svc.Issuer(e.boot.TenantID), "aud": testBase, "iat": now, "nbf": now, "exp": now + 3600,
			"oid": u.ObjectID, "sub": u.ObjectID, "tid": e.boot.TenantID, "idtyp": "user", "ver": "2.0", "jti": "j1",
			"appid": e.boot.PlatformAppID, "upn": "carol@keyhaven.local"}
		if mut != nil {
			mut(c)
		}
		return c
	}
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	hs256 := func(key []byte) string {
		signing := enc(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + parts[1]
		m := hmac.New(sha256.New, key)
		m.Write([]byte(signing))
		return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(pub)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	foreign, _ := rsa.GenerateKey(rand.Reader, 2048)
	signForeign := func(kid string, claims any) string {
		sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: foreign, KeyID: kid}},
			(&jose.SignerOptions{}).WithType("JWT"))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := jwt.Signed(sig).Claims(claims).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	tamper := func() string {
		c := claimsOf(t, good)
		c["oid"] = e.boot.AdminObjectID
		c["sub"] = e.boot.AdminObjectID
		return parts[0] + "." + enc(c) + "." + parts[2]
	}
	deleted := e.user("dave@keyhaven.local", "correct horse battery")
	deletedTok, _, _ := e.svc.IssueToken(e.ctx, deleted.ObjectID, testBase)
	if err := e.svc.DeleteUser(e.ctx, deleted.ObjectID); err != nil {
		t.Fatal(err)
	}
	disabled := e.user("erin@keyhaven.local", "correct horse battery")
	disabledTok, _, _ := e.svc.IssueToken(e.ctx, disabled.ObjectID, testBase)
	if err := e.svc.SetPrincipalEnabled(e.ctx, disabled.ObjectID, false); err != nil {
		t.Fatal(err)
	}
	idTok, err := e.svc.issueID(e.ctx, mustPrincipal(t, e, u.ObjectID), e.boot.PlatformAppID)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		tok  string
		code string
	}{
		{"fail/empty", "", CodeInvalidToken},
		{"fail/garbage", "not.a.jwt", CodeInvalidToken},
		{"fail/too-large", strings.Repeat("a", maxTokenLen+1), CodeInvalidToken},
		{"fail/alg-none", enc(map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + parts[1] + ".", CodeInvalidToken},
		{"fail/hs256-with-public-key-pem", hs256(pubPEM), CodeInvalidToken},
		{"fail/hs256-with-public-key-der", hs256(pubDER), CodeInvalidToken},
		{"fail/unknown-kid", signForeign("no-such-kid", base(nil)), CodeInvalidToken},
		{"fail/missing-kid", signForeign("", base(nil)), CodeInvalidToken},
		{"fail/foreign-key-with-real-kid", signForeign(kid, base(nil)), CodeInvalidToken},
		{"fail/tampered-payload", tamper(), CodeInvalidToken},
		{"fail/truncated-signature", good[:len(good)-4], CodeInvalidToken},
		{"fail/wrong-issuer-host", signWithService(t, e.svc, base(func(c map[string]any) { c["iss"] = "https://evil.example/" + e.boot.TenantID + "/v2.0" })), CodeInvalidToken},
		{"fail/v1-issuer", signWithService(t, e.svc, base(func(c map[string]any) { c["iss"] = testBase + "/" + e.boot.TenantID + "/" })), CodeInvalidToken},
		{"fail/issuer-tenant-mismatch", signWithService(t, e.svc, base(func(c map[string]any) { c["iss"] = e.svc.Issuer(other.ID) })), CodeTokenTenant},
		{"fail/tid-of-other-tenant", signWithService(t, e.svc, base(func(c map[string]any) { c["iss"], c["tid"] = e.svc.Issuer(other.ID), other.ID })), CodeTokenTenant},
		{"fail/unknown-tenant", signWithService(t, e.svc, base(func(c map[string]any) { id := newGUID(); c["iss"], c["tid"] = e.svc.Issuer(id), id })), CodeTokenTenant},
		{"fail/expired", signWithService(t, e.svc, base(func(c map[string]any) { c["exp"] = now - 181 })), CodeExpiredToken},
		{"fail/not-yet-valid", signWithService(t, e.svc, base(func(c map[string]any) { c["nbf"] = now + 600 })), CodeInvalidToken},
		{"fail/issued-in-future", signWithService(t, e.svc, base(func(c map[string]any) { c["iat"] = now + 600 })), CodeInvalidToken},
		{"fail/no-exp", signWithService(t, e.svc, base(func(c map[string]any) { delete(c, "exp") })), CodeInvalidToken},
		{"fail/missing-oid", signWithService(t, e.svc, base(func(c map[string]any) { delete(c, "oid") })), CodeInvalidToken},
		{"fail/missing-tid", signWithService(t, e.svc, base(func(c map[string]any) { delete(c, "tid") })), CodeInvalidToken},
		{"fail/unknown-oid", signWithService(t, e.svc, base(func(c map[string]any) { c["oid"] = newGUID() })), CodeInvalidToken},
		{"fail/two-audiences", signWithService(t, e.svc, base(func(c map[string]any) { c["aud"] = []string{"a", "b"} })), CodeInvalidToken},
		{"fail/user-claims-app-type", signWithService(t, e.svc, base(func(c map[string]any) { c["idtyp"] = "app" })), CodeInvalidToken},
		{"fail/sp-with-wrong-appid", signWithService(t, e.svc, base(func(c map[string]any) { c["oid"], c["idtyp"], c["appid"] = sp.ObjectID, "app", e.boot.PlatformAppID })), CodeInvalidToken},
		{"fail/id-token", idTok, CodeInvalidToken},
		{"fail/deleted-principal", deletedTok, CodeInvalidToken},
		{"fail/disabled-principal", disabledTok, CodeInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := e.svc.Verify(e.ctx, tc.tok)
			if err == nil {
				t.Fatalf("verified as %+v", p)
			}
			wantAzErr(t, err, 401, tc.code)
			if a, _ := asAz(err); len(tc.tok) > 20 && strings.Contains(a.Message, tc.tok[:20]) {
				t.Error("error message quotes the token")
			}
		})
	}
	t.Run("ok/expired-within-skew", func(t *testing.T) {
		tok := signWithService(t, e.svc, base(func(c map[string]any) { c["exp"] = now - 60 }))
		e.mustVerify(tok)
	})
	t.Run("ok/good-token-still-verifies", func(t *testing.T) { e.mustVerify(good) })
}

func mustPrincipal(t *testing.T, e *env, oid string) *principalRecord {
	t.Helper()
	p, _, err := e.svc.getPrincipal(e.ctx, e.st, oid)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyExpiryByClock(t *testing.T) {
	e := newEnv(t)
	tok, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(time.Hour + time.Minute) // within the 2m skew
	e.mustVerify(tok)
	e.clk.Advance(2 * time.Minute)
	_, err = e.svc.Verify(e.ctx, tok)
	wantAzErr(t, err, 401, CodeExpiredToken)
}

func TestSigningKeyRotation(t *testing.T) {
	e := newEnv(t)
	old, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	oldKID := headerOf(t, old)["kid"].(string)
	if err := e.svc.RotateSigningKey(e.ctx); err != nil {
		t.Fatal(err)
	}
	fresh, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	newKID := headerOf(t, fresh)["kid"].(string)
	if newKID == oldKID {
		t.Fatal("rotation did not change the signing key")
	}
	kids := func() []string {
		set, err := e.svc.JWKS(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range set.Keys {
			out = append(out, k.KeyID)
		}
		return out
	}
	if got := kids(); len(got) != 2 {
		t.Fatalf("JWKS after rotation = %v, want old and new", got)
	}
	e.mustVerify(old)
	e.mustVerify(fresh)

	// Another replica with a cold cache verifies both.
	r2 := e.replica()
	if _, err := r2.Verify(e.ctx, old); err != nil {
		t.Fatalf("replica verify old: %v", err)
	}

	// Once every token the old key signed has expired, it leaves the JWKS.
	e.clk.Advance(e.svc.retention() + time.Second)
	if got := kids(); len(got) != 1 || got[0] != newKID {
		t.Fatalf("JWKS after retention = %v, want only %s", got, newKID)
	}
	_, err = e.svc.Verify(e.ctx, old)
	wantAzErr(t, err, 401, CodeInvalidToken) // unknown kid now (and expired anyway)
}

func TestSigningKeyAutoRotationAndReplicas(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.KeyRotationInterval = 2 * time.Hour })
	r2 := e.replica(func(o *Options) { o.KeyRotationInterval = 2 * time.Hour })
	t1, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	// Replicas share keys: r2 verifies what svc signed.
	if _, err := r2.Verify(e.ctx, t1); err != nil {
		t.Fatalf("replica: %v", err)
	}
	e.clk.Advance(2*time.Hour + time.Second)
	t2, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	if headerOf(t, t1)["kid"] == headerOf(t, t2)["kid"] {
		t.Fatal("key was not rotated after the interval")
	}
	// r2 rotates too when due, but must not create a second new key: it picks
	// up the one svc installed.
	t3, _, err := r2.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		t.Fatal(err)
	}
	if headerOf(t, t3)["kid"] != headerOf(t, t2)["kid"] {
		t.Fatal("replicas disagree on the active key")
	}
	e.mustVerify(t3)
	var st keyState
	if _, err := store.LoadJSON(e.ctx, e.st, kSigning, &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Keys) != 2 {
		t.Fatalf("stored keys = %d, want 2 (active + retired)", len(st.Keys))
	}
	// The private key is sealed, not stored in the clear.
	for _, k := range st.Keys {
		if _, err := x509.ParsePKCS8PrivateKey(k.Sealed); err == nil {
			t.Fatal("private key stored unsealed")
		}
	}
}

func TestVerifyUnknownKidReloadIsRateLimited(t *testing.T) {
	e := newEnv(t)
	tok, _, _ := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	e.mustVerify(tok)
	r2 := e.replica()
	if _, err := r2.JWKS(e.ctx); err != nil { // warm r2's cache
		t.Fatal(err)
	}
	if err := e.svc.RotateSigningKey(e.ctx); err != nil {
		t.Fatal(err)
	}
	fresh, _, _ := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	// r2's cache does not know the new kid: it reloads once and verifies.
	if _, err := r2.Verify(e.ctx, fresh); err != nil {
		t.Fatalf("replica did not pick up the new key: %v", err)
	}
}
