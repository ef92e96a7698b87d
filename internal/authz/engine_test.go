package authz

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhaven/keyhaven/internal/clock"
	"github.com/keyhaven/keyhaven/internal/principal"
)

const (
	getSecret = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
	setSecret = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
	roleWrite = "Microsoft.Authorization/roleAssignments/write"
)

func TestDecideDeniesByDefault(t *testing.T) {
	e, _, _ := newTestEngine(t)
	p := newPrincipal()
	cases := []struct {
		name string
		req  Request
	}{
		{"fail/no-assignments", Request{Principal: p, Action: getSecret, DataAction: true, Scope: testVault}},
		{"fail/nil-principal", Request{Action: getSecret, DataAction: true, Scope: testVault}},
		{"fail/empty-object-id", Request{Principal: &principal.Principal{TenantID: testTenant}, Action: getSecret, Scope: testVault}},
		{"fail/empty-action", Request{Principal: p, Scope: testVault}},
		{"fail/huge-scope", Request{Principal: p, Action: getSecret, DataAction: true, Scope: "/" + strings.Repeat("a", 5000)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if d.Allowed || d.Reason == "" {
				t.Fatalf("decision = %+v", d)
			}
		})
	}
}

func TestOwnerVersusContributor(t *testing.T) {
	e, _, _ := newTestEngine(t)
	owner, contributor, uaa := newPrincipal(), newPrincipal(), newPrincipal()
	// As the server's bootstrap does for the admin.
	mustAssign(t, e, owner, RoleOwner, "/")
	mustAssign(t, e, contributor, RoleContributor, "/subscriptions/"+testSub)
	mustAssign(t, e, uaa, RoleUserAccessAdministrator, testRG)
	cases := []struct {
		name   string
		p      *principal.Principal
		action string
		data   bool
		scope  string
		want   bool
	}{
		{"ok/owner-role-assignment-write", owner, roleWrite, false, testVault, true},
		{"ok/owner-vault-write-other-subscription", owner, "Microsoft.KeyVault/vaults/write", false, "/subscriptions/" + uuid.NewString(), true},
		{"fail/owner-no-data-actions", owner, getSecret, true, testVault + "/secrets/x", false},
		{"fail/contributor-role-assignment-write", contributor, roleWrite, false, testVault, false},
		{"fail/contributor-role-assignment-delete", contributor, "Microsoft.Authorization/roleAssignments/delete", false, testVault, false},
		{"ok/contributor-role-assignment-read", contributor, "Microsoft.Authorization/roleAssignments/read", false, testVault, true},
		{"ok/contributor-vault-write", contributor, "Microsoft.KeyVault/vaults/write", false, testVault, true},
		{"fail/contributor-other-subscription", contributor, "Microsoft.KeyVault/vaults/write", false, "/subscriptions/" + uuid.NewString(), false},
		{"fail/contributor-no-data-actions", contributor, setSecret, true, testVault + "/secrets/x", false},
		{"ok/uaa-role-assignment-write", uaa, roleWrite, false, testVault, true},
		{"fail/uaa-vault-write", uaa, "Microsoft.KeyVault/vaults/write", false, testVault, false},
		{"fail/uaa-above-its-scope", uaa, roleWrite, false, "/subscriptions/" + testSub, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := decide(t, e, c.p, c.action, c.data, c.scope); d.Allowed != c.want {
				t.Fatalf("Allowed = %v, want %v (%s)", d.Allowed, c.want, d.Reason)
			}
		})
	}
}

func TestDecideScopeBoundaries(t *testing.T) {
	e, _, _ := newTestEngine(t)
	p := newPrincipal()
	mustAssign(t, e, p, RoleKeyVaultSecretsUser, "/subscriptions/a")
	cases := []struct {
		name  string
		scope string
		want  bool
	}{
		{"ok/same", "/subscriptions/a", true},
		{"ok/below", "/subscriptions/a/resourceGroups/x", true},
		{"ok/case-insensitive", "/SUBSCRIPTIONS/A/resourcegroups/X", true},
		{"ok/trailing-slash", "/subscriptions/a/", true},
		{"fail/prefix-not-segment", "/subscriptions/ab", false},
		{"fail/prefix-not-segment-below", "/subscriptions/ab/resourceGroups/x", false},
		{"fail/above", "/subscriptions", false},
		{"fail/root", "/", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if d := decide(t, e, p, getSecret, true, c.scope); d.Allowed != c.want {
				t.Fatalf("Allowed = %v, want %v (%s)", d.Allowed, c.want, d.Reason)
			}
		})
	}
}

// TestImmediateRevocation: assign, allow, delete, and the very next Decide
// refuses, although the first allow was served from the cache.
func TestImmediateRevocation(t *testing.T) {
	ctx := context.Background()
	e, _, _ := newTestEngine(t)
	p := newPrincipal()
	a := mustAssign(t, e, p, RoleKeyVaultSecretsUser, testVault)
	for range 3 { // warm the cache
		if d := decide(t, e, p, getSecret, true, testVault+"/secrets/s"); !d.Allowed {
			t.Fatalf("not allowed: %s", d.Reason)
		}
	}
	if _, err := e.DeleteAssignment(ctx, testVault, a.Name); err != nil {
		t.Fatal(err)
	}
	if d := decide(t, e, p, getSecret, true, testVault+"/secrets/s"); d.Allowed {
		t.Fatalf("still allowed after delete: %s", d.Reason)
	}

	// Same through DeleteForPrincipal (a managed identity was deleted).
	mustAssign(t, e, p, RoleKeyVaultSecretsOfficer, testRG)
	mustAssign(t, e, p, RoleKeyVaultReader, testVault)
	if d := decide(t, e, p, setSecret, true, testVault+"/secrets/s"); !d.Allowed {
		t.Fatalf("not allowed: %s", d.Reason)
	}
	n, err := e.DeleteForPrincipal(ctx, strings.ToUpper(p.ObjectID))
	if err != nil || n != 2 {
		t.Fatalf("DeleteForPrincipal = %d, %v; want 2", n, err)
	}
	if d := decide(t, e, p, setSecret, true, testVault+"/secrets/s"); d.Allowed {
		t.Fatalf("still allowed after DeleteForPrincipal: %s", d.Reason)
	}
	if n, err := e.DeleteForPrincipal(ctx, p.ObjectID); err != nil || n != 0 {
		t.Fatalf("second DeleteForPrincipal = %d, %v", n, err)
	}
}

// TestCacheInvalidationAcrossEngines: changes made through one Engine are
// seen on the next Decide of another, both over one store object and over
// two independent connections to one database file (as two processes).
func TestCacheInvalidationAcrossEngines(t *testing.T) {
	ctx := context.Background()
	a, clk, path := newTestEngine(t)
	sameStore := New(a.st, clk)
	otherConn := New(openStore(t, path), clock.Real{})
	for _, tc := range []struct {
		name string
		b    *Engine
	}{{"ok/shared-store", sameStore}, {"ok/second-connection", otherConn}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPrincipal()
			secret := testVault + "/secrets/s"
			if d := decide(t, tc.b, p, getSecret, true, secret); d.Allowed {
				t.Fatal("allowed before any assignment")
			}
			asg := mustAssign(t, a, p, RoleKeyVaultSecretsUser, testVault)
			if d := decide(t, tc.b, p, getSecret, true, secret); !d.Allowed {
				t.Fatalf("B does not see A's new assignment: %s", d.Reason)
			}
			decide(t, tc.b, p, getSecret, true, secret) // cached
			if _, err := a.DeleteAssignment(ctx, "", asg.Name); err != nil {
				t.Fatal(err)
			}
			if d := decide(t, tc.b, p, getSecret, true, secret); d.Allowed {
				t.Fatalf("B still allows after A deleted the assignment: %s", d.Reason)
			}

			// A custom role edited through A changes B's next decision.
			roleID := uuid.NewString()
			def := RoleDefinition{ID: roleID, RoleName: "reader " + roleID, AssignableScopes: []string{"/subscriptions/" + testSub},
				Permissions: []Permission{{DataActions: []string{getSecret}}}}
			if _, _, err := a.PutRoleDefinition(ctx, def, "test"); err != nil {
				t.Fatal(err)
			}
			mustAssign(t, a, p, roleID, testVault)
			if d := decide(t, tc.b, p, getSecret, true, secret); !d.Allowed {
				t.Fatalf("custom role not granting: %s", d.Reason)
			}
			def.Permissions = []Permission{{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/readMetadata/action"}}}
			if _, _, err := a.PutRoleDefinition(ctx, def, "test"); err != nil {
				t.Fatal(err)
			}
			if d := decide(t, tc.b, p, getSecret, true, secret); d.Allowed {
				t.Fatalf("B still uses the old role permissions: %s", d.Reason)
			}
		})
	}
}

func TestDecideConcurrent(t *testing.T) {
	e, _, _ := newTestEngine(t)
	ctx := context.Background()
	ps := make([]*principal.Principal, 8)
	for i := range ps {
		ps[i] = newPrincipal()
		mustAssign(t, e, ps[i], RoleKeyVaultSecretsUser, testVault)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				p := ps[(i+j)%len(ps)]
				d, err := e.Decide(ctx, Request{Principal: p, Action: getSecret, DataAction: true, Scope: testVault + "/secrets/x"})
				if err != nil || !d.Allowed {
					errs <- d.Reason
					return
				}
			}
		}()
	}
	// Writes during the reads move the generation under them.
	for range 5 {
		mustAssign(t, e, newPrincipal(), RoleKeyVaultReader, testRG)
	}
	wg.Wait()
	close(errs)
	for r := range errs {
		t.Fatalf("concurrent decide failed: %s", r)
	}
}

// BenchmarkDecide measures the cached path: one generation Get plus matching.
func BenchmarkDecide(b *testing.B) {
	e, _, _ := newTestEngine(b)
	p := newPrincipal()
	mustAssign(b, e, p, RoleKeyVaultReader, "/subscriptions/"+testSub)
	mustAssign(b, e, p, RoleKeyVaultSecretsUser, testVault)
	req := Request{Principal: p, Action: getSecret, DataAction: true, Scope: testVault + "/secrets/db-password"}
	ctx := context.Background()
	if d, err := e.Decide(ctx, req); err != nil || !d.Allowed {
		b.Fatalf("warm-up: %+v %v", d, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(ctx, req)
		if err != nil || !d.Allowed {
			b.Fatalf("%+v %v", d, err)
		}
	}
}
