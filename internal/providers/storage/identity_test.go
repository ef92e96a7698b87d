package storage

import (
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/providers/identityblock"
	"github.com/keyhaven/keyhaven/internal/testutil/armtest"
)

// identityEnv is an env whose accounts get managed identities from a real
// identity service.
type identityEnv struct {
	*env
	ids *identity.Service
}

func newIdentityEnv(t *testing.T) *identityEnv {
	t.Helper()
	e := &env{Env: armtest.New(t, armtest.Options{}), dec: &armtest.Deny{}}
	ids, boot := e.Identity()
	srv := e.Serve(e.dec, arm.Options{BaseURL: base, TenantID: boot.TenantID, SyncOperations: true})
	e.sp = New(e.Store, e.Clock, Options{Identities: ids})
	srv.Register(e.sp)
	e.Subscriptions(boot.TenantID, sub1)
	e.Caller = armtest.User(boot.TenantID, boot.AdminObjectID, boot.AdminUPN)
	e.ResourceGroups(e.Caller, sub1, "rg1")
	return &identityEnv{env: e, ids: ids}
}

func (e *identityEnv) uai(name string) string {
	e.T.Helper()
	id := rgPath(sub1, "rg1") + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/" + name
	if _, err := e.ids.CreateUserAssigned(e.Ctx, "", id); err != nil {
		e.T.Fatal(err)
	}
	return id
}

func withIdentity(b map[string]any, typ string, uais ...string) map[string]any {
	blk := map[string]any{"type": typ}
	if len(uais) > 0 {
		m := map[string]any{}
		for _, u := range uais {
			m[u] = map[string]any{}
		}
		blk["userAssignedIdentities"] = m
	}
	b["identity"] = blk
	return b
}

// TestAccountIdentity: storage accounts carry system- and user-assigned
// identities as ARM shows them; attaching a user-assigned identity needs
// assign/action on it; deleting the account deletes its system identity.
func TestAccountIdentity(t *testing.T) {
	e := newIdentityEnv(t)
	u1, u2 := e.uai("logs-writer"), e.uai("other")

	sys := acctPath(sub1, "rg1", "sysacct")
	m := e.Must("PUT", sys+stV, withIdentity(acctBody("Standard_ZRS", nil), "SystemAssigned"), 200).JSON(t)
	blk, _ := m["identity"].(map[string]any)
	if blk["type"] != "SystemAssigned" || blk["principalId"] == "" || blk["principalId"] == nil || blk["tenantId"] != e.Caller.TenantID {
		t.Fatalf("system identity block = %v", m["identity"])
	}
	if got := e.Must("GET", sys+stV, nil, 200).JSON(t)["identity"].(map[string]any); got["principalId"] != blk["principalId"] {
		t.Fatalf("GET identity = %v, want principal %v", got, blk["principalId"])
	}

	both := acctPath(sub1, "rg1", "bothacct")
	tests := []struct {
		name, method, path string
		body               map[string]any
		denyAssign         bool
		status             int
		code, wantType     string
		wantUAIs           []string
	}{
		{"fail/uai without assign permission", "PUT", acctPath(sub1, "rg1", "denied"),
			withIdentity(acctBody("Standard_LRS", nil), "UserAssigned", u1), true, 403, "LinkedAuthorizationFailed", "", nil},
		{"fail/unknown uai", "PUT", acctPath(sub1, "rg1", "unknown"),
			withIdentity(acctBody("Standard_LRS", nil), "UserAssigned", u1+"x"), false, 400, "InvalidUserAssignedIdentity", "", nil},
		{"fail/bad type", "PUT", acctPath(sub1, "rg1", "badtype"),
			withIdentity(acctBody("Standard_LRS", nil), "Everything"), false, 400, "InvalidIdentityType", "", nil},
		{"ok/both", "PUT", both, withIdentity(acctBody("Standard_LRS", nil), "SystemAssigned,UserAssigned", u1),
			false, 200, "", "SystemAssigned,UserAssigned", []string{u1}},
		// An identity already attached needs no assign permission again.
		{"ok/patch keeps attached uai without assign", "PATCH", both,
			withIdentity(map[string]any{"tags": map[string]string{"k": "v"}}, "UserAssigned", u1), true, 200, "", "UserAssigned", []string{u1}},
		{"fail/patch adds uai without assign", "PATCH", both,
			withIdentity(map[string]any{}, "UserAssigned", u1, u2), true, 403, "LinkedAuthorizationFailed", "", nil},
		{"ok/patch adds uai", "PATCH", both, withIdentity(map[string]any{}, "UserAssigned", u1, u2), false, 200, "", "UserAssigned", []string{u1, u2}},
		{"ok/patch none", "PATCH", sys, withIdentity(map[string]any{}, "None"), false, 200, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.dec.Set(identityblock.AssignAction, tc.denyAssign)
			defer e.dec.Set(identityblock.AssignAction, false)
			r := e.Do(tc.method, tc.path+stV, tc.body)
			if r.Code != tc.status {
				t.Fatalf("status %d: %s", r.Code, r.Body.String())
			}
			if tc.code != "" {
				if r.ErrCode(t) != tc.code {
					t.Fatalf("code = %s", r.ErrCode(t))
				}
				if tc.method == "PUT" {
					e.Must("GET", tc.path+stV, nil, 404) // a refused create leaves nothing
				}
				return
			}
			got, _ := r.JSON(t)["identity"].(map[string]any)
			if tc.wantType == "" {
				if got != nil {
					t.Fatalf("identity = %v, want none", got)
				}
				return
			}
			if got["type"] != tc.wantType {
				t.Fatalf("type = %v", got["type"])
			}
			ua, _ := got["userAssignedIdentities"].(map[string]any)
			if len(ua) != len(tc.wantUAIs) {
				t.Fatalf("userAssignedIdentities = %v", ua)
			}
			for _, u := range tc.wantUAIs {
				ref, _ := ua[u].(map[string]any)
				if ref == nil || ref["clientId"] == "" || ref["principalId"] == "" {
					t.Fatalf("uai %s = %v in %v", u, ref, ua)
				}
			}
		})
	}

	// PATCH to None deleted the system identity; deleting an account deletes
	// its identities too.
	if b, err := e.ids.GetResourceIdentity(e.Ctx, sys); err != nil || b.Type != identity.IdentityNone {
		t.Fatalf("after None: %+v, %v", b, err)
	}
	e.Must("DELETE", both+stV, nil, 200)
	if b, err := e.ids.GetResourceIdentity(e.Ctx, both); err != nil || b.Type != identity.IdentityNone {
		t.Fatalf("after delete: %+v, %v", b, err)
	}
	if !strings.EqualFold(u1, e.uaiStill(t, u1)) {
		t.Fatal("deleting the account deleted a user-assigned identity")
	}
}

// uaiStill returns the resource ID of a user-assigned identity that must
// still exist.
func (e *identityEnv) uaiStill(t *testing.T, id string) string {
	t.Helper()
	mi, err := e.ids.GetUserAssigned(e.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return mi.ResourceID
}
