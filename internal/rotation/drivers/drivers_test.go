package drivers

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/redfishtest"
)

func TestRegistryFor(t *testing.T) {
	r, err := New(Options{AllowPlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, endpoint string
		want           string
	}{
		{"ok/platform", "", "drivers.Platform"},
		{"ok/redfish-https", "redfish+https://10.0.0.1:443", "*drivers.Redfish"},
		{"ok/redfish-http", "REDFISH+HTTP://bmc", "*drivers.Redfish"},
		{"ok/postgres", "postgres://db:5432/app", "*drivers.Postgres"},
		{"ok/postgresql", "postgresql://db/app", "*drivers.Postgres"},
		{"fail/unknown-scheme", "ssh://host", ""},
		{"fail/no-scheme", "host:22", ""},
		{"fail/too-long", "redfish+https://" + strings.Repeat("a", MaxEndpointLen), ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := r.For(tc.endpoint)
			if tc.want == "" {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("want ErrUnsupported, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := typeName(d); got != tc.want {
				t.Fatalf("driver %s, want %s", got, tc.want)
			}
		})
	}
}

func typeName(d Driver) string {
	switch d.(type) {
	case Platform:
		return "drivers.Platform"
	case *Redfish:
		return "*drivers.Redfish"
	case *Postgres:
		return "*drivers.Postgres"
	}
	return "?"
}

func TestRedfish(t *testing.T) {
	ctx := context.Background()
	bmc := redfishtest.New(t, map[string]string{"root": "initial-pass-1", "operator": "operator-pass"})
	d, err := NewRedfish(Options{RootCAs: bmc.CertPool(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("ok/login", func(t *testing.T) {
		if err := d.Login(ctx, bmc.Endpoint, "root", []byte("initial-pass-1")); err != nil {
			t.Fatal(err)
		}
		if n := bmc.Sessions(); n != 0 {
			t.Fatalf("%d sessions left open", n)
		}
	})
	t.Run("fail/login-wrong-password", func(t *testing.T) {
		err := d.Login(ctx, bmc.Endpoint, "root", []byte("wrong-password"))
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("want ErrRejected, got %v", err)
		}
		if strings.Contains(err.Error(), "wrong-password") {
			t.Fatal("error quotes the password")
		}
	})
	t.Run("ok/set-then-verify", func(t *testing.T) {
		if err := d.Set(ctx, bmc.Endpoint, "root", []byte("initial-pass-1"), []byte("Next-Pass-2!")); err != nil {
			t.Fatal(err)
		}
		if got := bmc.Password("root"); got != "Next-Pass-2!" {
			t.Fatal("BMC password not changed")
		}
		if bmc.Password("operator") != "operator-pass" {
			t.Fatal("another account changed")
		}
		if err := d.Login(ctx, bmc.Endpoint, "root", []byte("Next-Pass-2!")); err != nil {
			t.Fatal(err)
		}
		if err := d.Login(ctx, bmc.Endpoint, "root", []byte("initial-pass-1")); !errors.Is(err, ErrRejected) {
			t.Fatalf("old password still accepted: %v", err)
		}
		if n := bmc.Sessions(); n != 0 {
			t.Fatalf("%d sessions left open", n)
		}
	})
	t.Run("fail/set-with-stale-current", func(t *testing.T) {
		err := d.Set(ctx, bmc.Endpoint, "root", []byte("initial-pass-1"), []byte("Another-Pass-3"))
		if !errors.Is(err, ErrRejected) {
			t.Fatalf("want ErrRejected, got %v", err)
		}
	})
	t.Run("fail/set-policy-refused", func(t *testing.T) {
		err := d.Set(ctx, bmc.Endpoint, "root", []byte("Next-Pass-2!"), []byte("short"))
		if err == nil || errors.Is(err, ErrRejected) || strings.Contains(err.Error(), "short") {
			t.Fatalf("want a policy error without the value, got %v", err)
		}
	})
	t.Run("fail/no-such-user", func(t *testing.T) {
		if err := d.Login(ctx, bmc.Endpoint, "nobody", []byte("x")); !errors.Is(err, ErrRejected) {
			t.Fatalf("want ErrRejected, got %v", err)
		}
	})
	t.Run("fail/unreachable", func(t *testing.T) {
		bmc.SetDown(true)
		defer bmc.SetDown(false)
		err := d.Login(ctx, bmc.Endpoint, "root", []byte("Next-Pass-2!"))
		if err == nil || errors.Is(err, ErrRejected) {
			t.Fatalf("want a non-rejection error, got %v", err)
		}
	})
	t.Run("fail/untrusted-certificate", func(t *testing.T) {
		other, err := NewRedfish(Options{Timeout: 5 * time.Second}) // system roots only
		if err != nil {
			t.Fatal(err)
		}
		err = other.Login(ctx, bmc.Endpoint, "root", []byte("Next-Pass-2!"))
		if err == nil || errors.Is(err, ErrRejected) {
			t.Fatalf("want a TLS error, got %v", err)
		}
	})
	t.Run("ok/pinned-self-signed", func(t *testing.T) {
		pinned, err := NewRedfish(Options{PinnedCerts: [][]byte{bmc.Certificate().Raw}, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := pinned.Login(ctx, bmc.Endpoint, "root", []byte("Next-Pass-2!")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/pinned-other-certificate", func(t *testing.T) {
		// A different pinned certificate and no RootCAs: the chain check
		// against the system roots fails.
		pinned, err := NewRedfish(Options{PinnedCerts: [][]byte{[]byte("not a certificate")}, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if err := pinned.Login(ctx, bmc.Endpoint, "root", []byte("Next-Pass-2!")); err == nil || errors.Is(err, ErrRejected) {
			t.Fatalf("want a TLS error, got %v", err)
		}
	})
	t.Run("fail/plain-http-not-enabled", func(t *testing.T) {
		err := d.Login(ctx, "redfish+http://127.0.0.1:1", "root", []byte("x"))
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("want ErrUnsupported, got %v", err)
		}
	})
	t.Run("fail/endpoint-with-path-or-userinfo", func(t *testing.T) {
		for _, ep := range []string{bmc.Endpoint + "/redfish/v1", "redfish+https://u:p@127.0.0.1:1", bmc.Endpoint + "?x=1"} {
			if err := d.Login(ctx, ep, "root", []byte("x")); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("%s: want ErrUnsupported, got %v", ep, err)
			}
		}
	})
}

// TestRedfishAuthModes: the driver opens a session where the BMC offers
// one and falls back to Basic only where it has no session login (404, 405
// on session create); after a rotation the old password is refused by
// both schemes.
func TestRedfishAuthModes(t *testing.T) {
	ctx := context.Background()
	const user, initial, next = "root", "initial-pass-1", "Next-Pass-2!"
	cases := []struct {
		name      string
		auth      redfishtest.Auth
		wantBasic bool // the driver authenticated with Basic, not sessions
	}{
		{"ok/sessions-and-basic", redfishtest.AuthBoth, false},
		{"ok/sessions-only", redfishtest.AuthSessions, false},
		{"ok/basic-only-no-session-service", redfishtest.AuthBasic, true},
		{"ok/basic-only-session-create-405", redfishtest.AuthBasicNoSessionCreate, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bmc := redfishtest.New(t, map[string]string{user: initial, "operator": "operator-pass"})
			bmc.SetAuth(tc.auth)
			d, err := NewRedfish(Options{RootCAs: bmc.CertPool(), Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Login(ctx, bmc.Endpoint, user, []byte("wrong-password")); !errors.Is(err, ErrRejected) {
				t.Fatalf("wrong password: want ErrRejected, got %v", err)
			}
			if err := d.Login(ctx, bmc.Endpoint, user, []byte(initial)); err != nil {
				t.Fatal(err)
			}
			if err := d.Set(ctx, bmc.Endpoint, user, []byte(initial), []byte(next)); err != nil {
				t.Fatal(err)
			}
			if bmc.Password(user) != next || bmc.PatchesFor(user) != 1 || bmc.PatchesFor("operator") != 0 {
				t.Fatalf("password changed %d times; operator %d", bmc.PatchesFor(user), bmc.PatchesFor("operator"))
			}
			if err := d.Login(ctx, bmc.Endpoint, user, []byte(next)); err != nil {
				t.Fatal(err)
			}
			if err := d.Login(ctx, bmc.Endpoint, user, []byte(initial)); !errors.Is(err, ErrRejected) {
				t.Fatalf("old password: want ErrRejected, got %v", err)
			}
			if gotBasic := bmc.BasicRequests() > 0; gotBasic != tc.wantBasic {
				t.Fatalf("Basic used: %v, want %v (session logins %d)", gotBasic, tc.wantBasic, bmc.SessionLogins())
			}
			if !tc.wantBasic && bmc.SessionLogins() == 0 {
				t.Fatal("no session was opened")
			}
			if n := bmc.Sessions(); n != 0 {
				t.Fatalf("%d sessions left open", n)
			}
			// Basic, where the BMC takes it, accepts only the new password.
			if tc.auth == redfishtest.AuthSessions {
				if got := basicStatus(t, bmc, user, next); got != http.StatusUnauthorized {
					t.Fatalf("sessions-only BMC took Basic: status %d", got)
				}
			} else {
				if got := basicStatus(t, bmc, user, initial); got != http.StatusUnauthorized {
					t.Fatalf("Basic with the old password: status %d, want 401", got)
				}
				if got := basicStatus(t, bmc, user, next); got != http.StatusOK {
					t.Fatalf("Basic with the new password: status %d, want 200", got)
				}
			}
		})
	}
}

func TestRedfishAuthFailures(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		auth      redfishtest.Auth
		user      string
		password  string
		rejected  bool // ErrRejected, rather than another error
		wantBasic int  // Basic requests the BMC saw
	}{
		// A refused session login is final: no second attempt with Basic
		// against the BMC's lockout counter.
		{name: "fail/session-refused-no-basic-retry", auth: redfishtest.AuthBoth, user: "root", password: "wrong", rejected: true},
		{name: "fail/basic-wrong-password", auth: redfishtest.AuthBasic, user: "root", password: "wrong", rejected: true},
		{name: "fail/basic-unknown-user", auth: redfishtest.AuthBasic, user: "nobody", password: "pw", rejected: true},
		{name: "fail/basic-user-with-colon", auth: redfishtest.AuthBasic, user: "ro:ot", password: "pw"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bmc := redfishtest.New(t, map[string]string{"root": "initial-pass-1"})
			bmc.SetAuth(tc.auth)
			d, err := NewRedfish(Options{RootCAs: bmc.CertPool(), Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = d.Login(ctx, bmc.Endpoint, tc.user, []byte(tc.password))
			if err == nil || errors.Is(err, ErrRejected) != tc.rejected {
				t.Fatalf("got %v, want rejected=%v", err, tc.rejected)
			}
			if strings.Contains(err.Error(), tc.password) {
				t.Fatal("error quotes the password")
			}
			if n := bmc.BasicRequests(); n != tc.wantBasic {
				t.Fatalf("%d Basic requests accepted, want %d", n, tc.wantBasic)
			}
			if bmc.Patches() != 0 {
				t.Fatal("a password changed")
			}
		})
	}
}

// basicStatus is the status of an account-collection GET with Basic.
func basicStatus(t *testing.T, bmc *redfishtest.Server, user, password string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, bmc.URL+"/redfish/v1/AccountService/Accounts", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, password)
	resp, err := bmc.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestRedfishRefusesForeignReferences(t *testing.T) {
	d := &Redfish{}
	base := "https://bmc:443"
	cases := []struct {
		name, ref string
		ok        bool
	}{
		{"ok/path", "/redfish/v1/AccountService/Accounts/2", true},
		{"ok/absolute-same-origin", "https://bmc:443/redfish/v1/AccountService/Accounts/2", true},
		{"fail/other-host", "https://evil:443/redfish/v1/AccountService/Accounts/2", false},
		{"fail/scheme-relative", "//evil/redfish/v1/AccountService/Accounts/2", false},
		{"fail/outside-prefix", "/redfish/v1/Systems/1", false},
		{"fail/dotdot", "/redfish/v1/AccountService/Accounts/../../Systems", false},
		{"fail/collection-itself", "/redfish/v1/AccountService/Accounts/", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := d.samePath(base, tc.ref, redfishAccounts+"/"); ok != tc.ok {
				t.Fatalf("samePath(%q) = %v, want %v", tc.ref, ok, tc.ok)
			}
		})
	}
}

func TestPlatform(t *testing.T) {
	var p Platform
	if err := p.Login(context.Background(), "", "x", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Set(context.Background(), "", "x", nil, []byte("y")); err != nil {
		t.Fatal(err)
	}
}

func TestScramVerifier(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	cases := []struct {
		name, password, want string
		fail                 bool
	}{
		// Expected value computed independently (Python hashlib/hmac) for
		// the RFC 7677 example password and salt.
		{name: "ok/rfc7677-example", password: "pencil",
			want: "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="},
		{name: "fail/empty", password: "", fail: true},
		{name: "fail/non-ascii", password: "pässword", fail: true},
		{name: "fail/control", password: "a\nb", fail: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := scramVerifier([]byte(tc.password), salt)
			if tc.fail {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v", got, err)
			}
		})
	}
	if quoteLiteral("a'b") != "'a''b'" {
		t.Fatal("quoteLiteral does not double quotes")
	}
}
