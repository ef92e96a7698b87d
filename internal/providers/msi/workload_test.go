package msi

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestWorkloadSecret(t *testing.T) {
	e := newEnv(t, arm.Options{})
	u1 := e.create(sub1, "rg1", "workload-1")
	u2 := e.create(sub1, "rg1", "workload-2")
	id1 := uaiPath(sub1, "rg1", "workload-1")

	r := e.Must("POST", id1+"/issueWorkloadSecret"+vNew, nil, 200)
	if r.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("Cache-Control: %q", r.Header().Get("Cache-Control"))
	}
	ws := r.JSON(t)
	secret, _ := ws["identityHeader"].(string)
	if ws["identityEndpoint"] != miEndpoint || len(secret) < 32 || ws["clientId"] != props(u1)["clientId"] ||
		ws["principalId"] != props(u1)["principalId"] {
		t.Fatalf("issue body: endpoint=%v clientId=%v principalId=%v secretLen=%d", ws["identityEndpoint"], ws["clientId"], ws["principalId"], len(secret))
	}

	cases := []struct {
		name, secret, sel, val string
		status                 int
	}{
		{"ok/client-id", secret, "client_id", props(u1)["clientId"].(string), 200},
		{"ok/mi-res-id", secret, "mi_res_id", id1, 200},
		{"ok/object-id", secret, "object_id", props(u1)["principalId"].(string), 200},
		{"fail/other-identity", secret, "client_id", props(u2)["clientId"].(string), 403},
		{"fail/other-identity-by-resource", secret, "mi_res_id", uaiPath(sub1, "rg1", "workload-2"), 403},
		{"fail/no-selector-no-system-identity", secret, "", "", 400},
		{"fail/wrong-secret", secret[:len(secret)-1] + "x", "client_id", props(u1)["clientId"].(string), 401},
		{"fail/no-secret", "", "client_id", props(u1)["clientId"].(string), 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := e.msiToken(c.secret, c.sel, c.val)
			if code != c.status {
				t.Fatalf("status %d, want %d: %v", code, c.status, body["error_description"])
			}
			if code != 200 {
				return
			}
			if body["client_id"] != props(u1)["clientId"] || body["resource"] != vaultAud || body["token_type"] != "Bearer" {
				t.Fatalf("token response: client_id=%v resource=%v", body["client_id"], body["resource"])
			}
			p, err := e.ids.Verify(e.Ctx, body["access_token"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if p.ObjectID != props(u1)["principalId"] || p.Kind != principal.ManagedIdentity || !strings.EqualFold(p.MIResourceID, id1) ||
				p.Audience != vaultAud {
				t.Fatalf("token principal: %+v", p)
			}
		})
	}

	t.Run("ok/second-identity-own-secret", func(t *testing.T) {
		ws2 := e.Must("POST", u2["id"].(string)+"/issueWorkloadSecret"+v, nil, 200).JSON(t)
		if code, _ := e.msiToken(ws2["identityHeader"].(string), "client_id", props(u2)["clientId"].(string)); code != 200 {
			t.Fatalf("u2 with its own secret: %d", code)
		}
		if code, _ := e.msiToken(ws2["identityHeader"].(string), "client_id", props(u1)["clientId"].(string)); code != 403 {
			t.Fatalf("u2's secret got a token for u1: %d", code)
		}
	})
	t.Run("ok/reissue-replaces", func(t *testing.T) {
		fresh := e.Must("POST", id1+"/issueWorkloadSecret"+v, nil, 200).JSON(t)["identityHeader"].(string)
		if fresh == secret {
			t.Fatal("reissue returned the same secret")
		}
		if code, _ := e.msiToken(secret, "client_id", props(u1)["clientId"].(string)); code != 401 {
			t.Fatalf("replaced secret still works: %d", code)
		}
		if code, _ := e.msiToken(fresh, "client_id", props(u1)["clientId"].(string)); code != 200 {
			t.Fatalf("fresh secret: %d", code)
		}
		secret = fresh
	})
	t.Run("ok/revoke", func(t *testing.T) {
		e.Must("POST", id1+"/revokeWorkloadSecret"+v, nil, 204)
		if code, _ := e.msiToken(secret, "client_id", props(u1)["clientId"].(string)); code != 401 {
			t.Fatalf("revoked secret still works: %d", code)
		}
		e.Must("POST", id1+"/revokeWorkloadSecret"+v, nil, 204) // idempotent
		if blk, err := e.ids.GetResourceIdentity(e.Ctx, id1); err != nil || blk.Type != "None" {
			t.Fatalf("self-attachment left after revoke: %+v %v", blk, err)
		}
	})
	t.Run("fail/missing-identity", func(t *testing.T) {
		for _, act := range []string{"issueWorkloadSecret", "revokeWorkloadSecret"} {
			r := e.Do("POST", uaiPath(sub1, "rg1", "nope")+"/"+act+v, nil)
			if r.Code != 404 || r.ErrCode(t) != "ResourceNotFound" {
				t.Fatalf("%s: %d %s", act, r.Code, r.Body.String())
			}
		}
	})
}

func TestWorkloadSecretAuthorization(t *testing.T) {
	e := newEnv(t, arm.Options{})
	u := e.create(sub1, "rg1", "guarded")
	id := u["id"].(string)
	issueAction := "Microsoft.ManagedIdentity/userAssignedIdentities/issueWorkloadSecret/action"
	customRole := func(name string, actions ...string) string {
		t.Helper()
		d, _, err := e.engine.PutRoleDefinition(e.Ctx, authz.RoleDefinition{ID: uuid.NewString(), RoleName: name,
			Permissions:      []authz.Permission{{Actions: actions}},
			AssignableScopes: []string{"/subscriptions/" + sub1}}, "test")
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	withBoth := customRole("Workload Issuer", "Microsoft.ManagedIdentity/userAssignedIdentities/*/read", issueAction, AssignAction)
	withoutAssign := customRole("Issue Only", issueAction)

	cases := []struct {
		name        string
		role, scope string
		status      int
		action      string // the action a 403 names
	}{
		{"ok/owner-at-group", authz.RoleOwner, rgPath(sub1, "rg1"), 200, ""},
		{"ok/contributor-at-identity", authz.RoleContributor, id, 200, ""},
		{"ok/custom-issue-and-assign", withBoth, id, 200, ""},
		{"fail/no-role", "", "", 403, AssignAction},
		{"fail/reader", authz.RoleReader, rgPath(sub1, "rg1"), 403, AssignAction},
		{"fail/owner-of-other-group", authz.RoleOwner, rgPath(sub1, "rg2"), 403, AssignAction},
		{"fail/custom-without-assign", withoutAssign, id, 403, AssignAction},
		// The ARM core checks assign/action for this POST (ActionPermissions),
		// which is exactly what Managed Identity Operator grants.
		{"ok/managed-identity-operator", authz.RoleManagedIdentityOperator, id, 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := e.user()
			if c.role != "" {
				e.assign(p.ObjectID, c.role, c.scope)
			}
			r := e.DoAs(p, "POST", id+"/issueWorkloadSecret"+v, nil)
			if r.Code != c.status {
				t.Fatalf("status %d: %s", r.Code, r.Body.String())
			}
			if c.status == 200 {
				if r.JSON(t)["identityHeader"] == "" {
					t.Fatal("no secret")
				}
				return
			}
			if r.ErrCode(t) != "AuthorizationFailed" || !strings.Contains(r.ErrMessage(t), "'"+c.action+"'") {
				t.Fatalf("refusal: %s", r.Body.String())
			}
			if strings.Contains(r.Body.String(), "identityHeader") {
				t.Fatal("refusal carries a secret")
			}
		})
	}
	t.Run("fail/reader-cannot-revoke", func(t *testing.T) {
		p := e.user()
		e.assign(p.ObjectID, authz.RoleReader, rgPath(sub1, "rg1"))
		r := e.DoAs(p, "POST", id+"/revokeWorkloadSecret"+v, nil)
		if r.Code != 403 || r.ErrCode(t) != "AuthorizationFailed" {
			t.Fatalf("%d %s", r.Code, r.Body.String())
		}
	})
	t.Run("ok/reader-can-read", func(t *testing.T) {
		p := e.user()
		e.assign(p.ObjectID, authz.RoleReader, rgPath(sub1, "rg1"))
		if r := e.DoAs(p, "GET", id+v, nil); r.Code != 200 {
			t.Fatalf("%d %s", r.Code, r.Body.String())
		}
		if r := e.DoAs(p, "DELETE", id+v, nil); r.Code != 403 {
			t.Fatalf("reader deleted: %d", r.Code)
		}
	})
}

func TestIssueWorkloadSecretFor(t *testing.T) {
	e := newEnv(t, arm.Options{})
	vaultID := rgPath(sub1, "rg1") + "/providers/Microsoft.KeyVault/vaults/kv1"
	mi, err := e.ids.EnsureSystemAssigned(e.Ctx, e.tenant, vaultID)
	if err != nil {
		t.Fatal(err)
	}
	ws, err := e.p.IssueWorkloadSecretFor(e.Ctx, vaultID)
	if err != nil {
		t.Fatal(err)
	}
	if ws.ClientID != mi.ClientID || ws.PrincipalID != mi.PrincipalID || ws.IdentityEndpoint != miEndpoint {
		t.Fatalf("workload secret: %v", ws)
	}
	// A resource's secret defaults to its system-assigned identity.
	code, body := e.msiToken(ws.IdentityHeader, "", "")
	if code != 200 || body["client_id"] != mi.ClientID {
		t.Fatalf("token: %d %v", code, body["error_description"])
	}

	t.Run("ok/secret-hidden-from-fmt-and-slog", func(t *testing.T) {
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("issued", "ws", *ws, "wsp", ws)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("issued", "ws", *ws)
		//lint:ignore S1025 the test is that every formatting verb hides the secret
		for _, s := range []string{fmt.Sprint(ws), fmt.Sprintf("%+v", *ws), fmt.Sprintf("%#v", *ws), fmt.Sprintf("%s", ws), buf.String()} {
			if strings.Contains(s, ws.IdentityHeader) {
				t.Fatalf("secret rendered: %s", s)
			}
		}
	})

	cases := []struct {
		name, id string
		status   int
	}{
		{"fail/not-an-id", "not-an-id", 400},
		{"fail/subscription", "/subscriptions/" + sub1, 400},
		{"fail/missing-user-assigned", uaiPath(sub1, "rg1", "nope"), 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.p.IssueWorkloadSecretFor(e.Ctx, c.id)
			if !isStatus(err, c.status) {
				t.Fatalf("want %d, got %v", c.status, err)
			}
		})
	}
	t.Run("ok/revoke", func(t *testing.T) {
		if err := e.p.RevokeWorkloadSecretFor(e.Ctx, vaultID); err != nil {
			t.Fatal(err)
		}
		if code, _ := e.msiToken(ws.IdentityHeader, "", ""); code != 401 {
			t.Fatalf("revoked: %d", code)
		}
	})
}
