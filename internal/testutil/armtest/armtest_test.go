package armtest

import (
	"testing"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
)

const (
	tenant = "22222222-2222-2222-2222-222222222222"
	sub    = "11111111-1111-1111-1111-111111111111"
	rgPath = "/subscriptions/" + sub + "/resourceGroups/"
	rgV    = "?api-version=2021-04-01"
)

func TestEnv(t *testing.T) {
	dec := &Deny{}
	e := New(t, Options{})
	if !e.Clock.Now().Equal(DefaultNow) {
		t.Fatalf("clock starts at %v, want %v", e.Clock.Now(), DefaultNow)
	}
	e.Serve(dec, arm.Options{TenantID: tenant, SyncOperations: true})
	e.Subscriptions(tenant, sub)
	e.Caller = User(tenant, "33333333-3333-3333-3333-333333333333", "admin@keyhaven.local")
	e.ResourceGroups(e.Caller, sub, "rg1")

	cases := []struct {
		name   string
		deny   string
		path   string
		status int
		code   string
	}{
		{name: "ok/get", path: rgPath + "rg1" + rgV, status: 200},
		{name: "ok/full-url", path: Base + rgPath + "rg1" + rgV, status: 200},
		{name: "fail/missing", path: rgPath + "nope" + rgV, status: 404, code: "ResourceGroupNotFound"},
		{name: "fail/denied", deny: "Microsoft.Resources/subscriptions/resourceGroups/read", path: rgPath + "rg1" + rgV, status: 403, code: "AuthorizationFailed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.deny != "" {
				dec.Set(c.deny, true)
				defer dec.Set(c.deny, false)
			}
			r := e.Must("GET", c.path, nil, c.status)
			if c.code == "" {
				if m := r.JSON(t); m["name"] != "rg1" {
					t.Fatalf("body %v", m)
				}
				return
			}
			if got := r.ErrCode(t); got != c.code {
				t.Fatalf("code %q, want %q", got, c.code)
			}
			if r.ErrMessage(t) == "" || r.ErrField(t, "code") != c.code || r.ErrField(t, "nosuch") != "" {
				t.Fatalf("error fields of %s", r.Body.String())
			}
		})
	}

	t.Run("ok/list", func(t *testing.T) {
		vals := e.Must("GET", "/subscriptions/"+sub+"/resourcegroups"+rgV, nil, 200).Values(t)
		if len(vals) != 1 || vals[0]["name"] != "rg1" {
			t.Fatalf("values %v", vals)
		}
	})
	t.Run("ok/string-body-sent-as-is", func(t *testing.T) {
		r := e.Do("PUT", rgPath+"rg2"+rgV, `{"location":"westeurope"}`)
		if r.Code != 201 {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
	})
}

func TestAllowAll(t *testing.T) {
	d, err := AllowAll{}.Decide(t.Context(), authz.Request{Action: "anything/write"})
	if err != nil || !d.Allowed {
		t.Fatalf("AllowAll = %+v, %v", d, err)
	}
}

func TestIdentity(t *testing.T) {
	e := New(t, Options{})
	ids, boot := e.Identity()
	if ids == nil || boot.TenantID == "" || boot.AdminObjectID == "" || boot.AdminUPN == "" {
		t.Fatalf("Identity() = %v, %+v", ids, boot)
	}
	if _, again := e.Identity(); again.TenantID != boot.TenantID || again.Created {
		t.Fatalf("second bootstrap on the same store = %+v, want the same directory", again)
	}
}
