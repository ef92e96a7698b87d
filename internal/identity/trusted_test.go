package identity

import (
	"testing"
)

// TestTrustedTokens: IssueToken(..., Trusted()) marks the token so Verify
// reports principal.Platform (the vault firewall's AzureServices bypass);
// without the option, or through a forged claim, nothing changes.
func TestTrustedTokens(t *testing.T) {
	e := newEnv(t)
	sys, err := e.svc.EnsureSystemAssigned(e.ctx, "", "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.NetworkCloud/clusterManagers/cm1")
	if err != nil {
		t.Fatal(err)
	}
	uaiID := "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
	uai, err := e.svc.CreateUserAssigned(e.ctx, "", uaiID)
	if err != nil {
		t.Fatal(err)
	}
	_, sp := e.app("worker")
	u := e.user("carol@keyhaven.local", "correct horse battery")
	const aud = "https://vault.localhost:8443"
	cases := []struct {
		name     string
		oid      string
		opts     []IssueOption
		platform bool
		status   int // IssueToken error status; 0 = success
	}{
		{name: "ok/system-assigned-trusted", oid: sys.PrincipalID, opts: []IssueOption{Trusted()}, platform: true},
		{name: "ok/user-assigned-trusted", oid: uai.PrincipalID, opts: []IssueOption{Trusted()}, platform: true},
		{name: "ok/service-principal-trusted", oid: sp.ObjectID, opts: []IssueOption{Trusted()}, platform: true},
		{name: "ok/system-assigned-plain", oid: sys.PrincipalID},
		{name: "ok/nil-option-ignored", oid: uai.PrincipalID, opts: []IssueOption{nil}},
		{name: "ok/platform-sp-plain", oid: e.boot.PlatformObjectID, platform: true},
		{name: "fail/user-trusted", oid: u.ObjectID, opts: []IssueOption{Trusted()}, status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, _, err := e.svc.IssueToken(e.ctx, tc.oid, aud, tc.opts...)
			if tc.status != 0 {
				ae, ok := asAz(err)
				if !ok || ae.Status != tc.status {
					t.Fatalf("want status %d, got %v", tc.status, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, hasClaim := claimsOf(t, tok)["xms_kh_trusted"]
			trustedOpt := len(tc.opts) > 0 && tc.opts[0] != nil
			if hasClaim != trustedOpt {
				t.Fatalf("xms_kh_trusted present = %v, want %v", hasClaim, trustedOpt)
			}
			if p := e.mustVerify(tok); p.Platform != tc.platform {
				t.Fatalf("Platform = %v, want %v", p.Platform, tc.platform)
			}
		})
	}

	t.Run("fail/forged-claim", func(t *testing.T) {
		// A token carrying the claim but not signed by the service's key is
		// refused outright; the claim alone grants nothing.
		tok, _, err := e.svc.IssueToken(e.ctx, sys.PrincipalID, aud, Trusted())
		if err != nil {
			t.Fatal(err)
		}
		other := newEnv(t)
		c := claimsOf(t, tok)
		forged := signWithService(t, other.svc, c)
		if _, err := e.svc.Verify(e.ctx, forged); err == nil {
			t.Fatal("token signed by another key verified")
		}
	})
}
