package identity

import (
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestBootstrapIdempotent(t *testing.T) {
	e := newEnv(t)
	b := e.boot
	if !b.Created || b.AdminPassword == "" || b.TenantDomain != "keyhaven.local" || b.AdminUPN != "admin@keyhaven.local" ||
		!isGUID(b.TenantID) || !isGUID(b.PlatformAppID) || !isGUID(b.PlatformObjectID) {
		t.Fatalf("first bootstrap = %+v", b)
	}
	// Later calls, on this and other replicas, concurrently, find the same directory.
	var wg sync.WaitGroup
	results := make([]*BootstrapResult, 4)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := e.replica().Bootstrap(e.ctx)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		if r == nil || r.Created || r.AdminPassword != "" || r.TenantID != b.TenantID || r.PlatformAppID != b.PlatformAppID || r.AdminObjectID != b.AdminObjectID {
			t.Fatalf("re-bootstrap = %+v", r)
		}
	}
	if id, err := e.svc.PlatformAppID(e.ctx); err != nil || id != b.PlatformAppID {
		t.Fatalf("PlatformAppID = %q, %v", id, err)
	}
	sp, err := e.svc.GetServicePrincipal(e.ctx, b.PlatformAppID)
	if err != nil || sp.ObjectID != b.PlatformObjectID || sp.DisplayName != PlatformAppName {
		t.Fatalf("platform SP = %+v, %v", sp, err)
	}
	// Exactly one tenant, one user, one application.
	ts, _ := e.svc.ListTenants(e.ctx)
	us, _ := e.svc.ListUsers(e.ctx, "")
	as, _ := e.svc.ListApplications(e.ctx, "")
	if len(ts) != 1 || len(us) != 1 || len(as) != 1 {
		t.Fatalf("tenants %d users %d apps %d", len(ts), len(us), len(as))
	}
	// The admin password signs in.
	code, m := postToken(t, e.svc.Handler(), "keyhaven.local", url.Values{"grant_type": {"password"}, "client_id": {newGUID()},
		"username": {b.AdminUPN}, "password": {b.AdminPassword}, "scope": {testBase + "/.default"}})
	if p := tokenOK(t, e, code, m); p.ObjectID != b.AdminObjectID || p.Platform {
		t.Fatalf("admin principal = %+v", p)
	}
}

func TestUsers(t *testing.T) {
	e := newEnv(t)
	other, err := e.svc.CreateTenant(e.ctx, "Contoso.Example", "Contoso")
	if err != nil {
		t.Fatal(err)
	}
	if other.Domain != "contoso.example" {
		t.Fatalf("domain not normalized: %q", other.Domain)
	}
	cases := []struct {
		name   string
		req    CreateUserRequest
		status int // 0 = ok
	}{
		{"ok/default-tenant-by-domain", CreateUserRequest{UserPrincipalName: "ivy@keyhaven.local", Password: "correct horse battery"}, 0},
		{"ok/other-tenant", CreateUserRequest{TenantID: other.ID, UserPrincipalName: "jack@contoso.example", DisplayName: "Jack", Password: "correct horse battery"}, 0},
		{"ok/domain-inferred", CreateUserRequest{UserPrincipalName: "kim@CONTOSO.example", Password: "correct horse battery"}, 0},
		{"fail/duplicate-case-insensitive", CreateUserRequest{UserPrincipalName: "IVY@keyhaven.local", Password: "correct horse battery"}, 400},
		{"fail/domain-of-other-tenant", CreateUserRequest{TenantID: other.ID, UserPrincipalName: "x@keyhaven.local", Password: "correct horse battery"}, 400},
		{"fail/unknown-domain", CreateUserRequest{UserPrincipalName: "x@nowhere.example", Password: "correct horse battery"}, 404},
		{"fail/no-at", CreateUserRequest{UserPrincipalName: "keyhaven.local", Password: "correct horse battery"}, 400},
		{"fail/two-ats", CreateUserRequest{UserPrincipalName: "a@b@keyhaven.local", Password: "correct horse battery"}, 400},
		{"fail/bad-char", CreateUserRequest{UserPrincipalName: "a b@keyhaven.local", Password: "correct horse battery"}, 400},
		{"fail/upn-too-long", CreateUserRequest{UserPrincipalName: strings.Repeat("a", 110) + "@keyhaven.local", Password: "correct horse battery"}, 400},
		{"fail/password-too-short", CreateUserRequest{UserPrincipalName: "s@keyhaven.local", Password: "short"}, 400},
		{"fail/password-too-long", CreateUserRequest{UserPrincipalName: "s@keyhaven.local", Password: strings.Repeat("p", 257)}, 400},
		{"fail/display-name-control-char", CreateUserRequest{UserPrincipalName: "s@keyhaven.local", DisplayName: "a\x00b", Password: "correct horse battery"}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.svc.CreateUser(e.ctx, tc.req)
			if tc.status != 0 {
				if a, ok := asAz(err); !ok || a.Status != tc.status {
					t.Fatalf("want %d, got %v", tc.status, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.svc.GetUser(e.ctx, strings.ToUpper(u.UserPrincipalName))
			if err != nil || got.ObjectID != u.ObjectID || !got.Enabled {
				t.Fatalf("GetUser = %+v, %v", got, err)
			}
			obj, err := e.svc.LookupPrincipal(e.ctx, u.ObjectID)
			if err != nil || obj.Kind != principal.User || obj.UPN != u.UserPrincipalName {
				t.Fatalf("LookupPrincipal = %+v, %v", obj, err)
			}
		})
	}
	t.Run("ok/list-by-tenant", func(t *testing.T) {
		us, err := e.svc.ListUsers(e.ctx, "contoso.example")
		if err != nil || len(us) != 2 {
			t.Fatalf("ListUsers(contoso) = %d, %v", len(us), err)
		}
	})
	t.Run("ok/password-hashed-with-argon2id", func(t *testing.T) {
		p := mustPrincipal(t, e, mustUser(t, e, "ivy@keyhaven.local").ObjectID)
		if !strings.HasPrefix(p.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") || strings.Contains(p.PasswordHash, "correct horse") {
			t.Fatalf("hash = %q", p.PasswordHash)
		}
		if ok, err := checkPassword(p.PasswordHash, "correct horse battery"); !ok || err != nil {
			t.Fatal("right password refused")
		}
		if ok, _ := checkPassword(p.PasswordHash, "correct horse batterY"); ok {
			t.Fatal("wrong password accepted")
		}
		if err := e.svc.SetUserPassword(e.ctx, "ivy@keyhaven.local", "another good password"); err != nil {
			t.Fatal(err)
		}
		p = mustPrincipal(t, e, p.ObjectID)
		if ok, _ := checkPassword(p.PasswordHash, "another good password"); !ok {
			t.Fatal("new password refused")
		}
	})
	t.Run("ok/delete", func(t *testing.T) {
		if err := e.svc.DeleteUser(e.ctx, "ivy@keyhaven.local"); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.GetUser(e.ctx, "ivy@keyhaven.local")
		wantAzErr(t, err, 404, "Request_ResourceNotFound")
		// The UPN is free again.
		if _, err := e.svc.CreateUser(e.ctx, CreateUserRequest{UserPrincipalName: "ivy@keyhaven.local", Password: "correct horse battery"}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fail/tenant-domain-taken", func(t *testing.T) {
		_, err := e.svc.CreateTenant(e.ctx, "KEYHAVEN.local", "dup")
		wantAzErr(t, err, 409, "Conflict")
	})
}

func mustUser(t *testing.T, e *env, upn string) *User {
	t.Helper()
	u, err := e.svc.GetUser(e.ctx, upn)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestCheckPasswordRejectsMalformedHashes(t *testing.T) {
	for name, h := range map[string]string{
		"fail/empty":        "",
		"fail/bcrypt":       "$2a$10$abcdefghijklmnopqrstuv",
		"fail/huge-memory":  "$argon2id$v=19$m=99999999,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"fail/zero-time":    "$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"fail/bad-base64":   "$argon2id$v=19$m=19456,t=2,p=1$!!!$aGFzaA",
		"fail/wrong-vers":   "$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		"fail/missing-part": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
	} {
		t.Run(name, func(t *testing.T) {
			if ok, err := checkPassword(h, "password"); ok || err == nil {
				t.Fatalf("accepted: %v %v", ok, err)
			}
		})
	}
}

func TestApplications(t *testing.T) {
	e := newEnv(t)
	app, sp := e.app("my-app")
	if app.ServicePrincipalID != sp.ObjectID || sp.AppID != app.AppID || sp.Kind != principal.ServicePrincipal || app.TenantID != e.boot.TenantID {
		t.Fatalf("app %+v sp %+v", app, sp)
	}
	for name, id := range map[string]string{"appId": app.AppID, "objectId": app.ObjectID, "spObjectId": sp.ObjectID} {
		got, err := e.svc.GetApplication(e.ctx, id)
		if err != nil || got.AppID != app.AppID {
			t.Errorf("GetApplication by %s = %+v, %v", name, got, err)
		}
	}
	for name, id := range map[string]string{"appId": app.AppID, "objectId": sp.ObjectID} {
		got, err := e.svc.GetServicePrincipal(e.ctx, id)
		if err != nil || got.ObjectID != sp.ObjectID {
			t.Errorf("GetServicePrincipal by %s = %+v, %v", name, got, err)
		}
	}
	sps, err := e.svc.ListServicePrincipals(e.ctx, "")
	if err != nil || len(sps) != 2 { // platform + my-app
		t.Fatalf("ListServicePrincipals = %d, %v", len(sps), err)
	}
	if _, err := e.svc.AddPassword(e.ctx, app.AppID, "", testStart.AddDate(11, 0, 0)); err == nil {
		t.Error("11-year secret accepted")
	}
	if _, err := e.svc.AddPassword(e.ctx, app.AppID, "", testStart.Add(-1)); err == nil {
		t.Error("already-expired secret accepted")
	}
	for i := 0; i < maxCredentials; i++ {
		if _, err := e.svc.AddPassword(e.ctx, app.AppID, "", testStart.AddDate(1, 0, 0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.AddPassword(e.ctx, app.AppID, "", testStart.AddDate(1, 0, 0)); err == nil {
		t.Error("credential limit not enforced")
	}
	if err := e.svc.DeleteApplication(e.ctx, app.ObjectID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{app.AppID, sp.ObjectID} {
		if _, err := e.svc.GetServicePrincipal(e.ctx, id); err == nil {
			t.Errorf("service principal %s survived its application", id)
		}
	}
	_, err = e.svc.GetApplication(e.ctx, app.AppID)
	wantAzErr(t, err, 404, "Request_ResourceNotFound")
	if err := e.svc.DeleteApplication(e.ctx, e.boot.PlatformAppID); err == nil {
		t.Error("platform application deleted")
	}
	for _, bad := range []string{"", "../x", strings.Repeat("a", 65), "a/b"} {
		if _, err := e.svc.GetApplication(e.ctx, bad); err == nil {
			t.Errorf("GetApplication(%q) succeeded", bad)
		}
	}
}
