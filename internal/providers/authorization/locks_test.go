package authorization

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func lockPath(scope, name string) string { return scope + authzProviders + "/locks/" + name + lockV }

// step is one request of a guard scenario: locked means 409 ScopeLocked for
// the operation op ("delete" or "write") naming lockScope; otherwise any
// 2xx.
type step struct {
	name, method, path string
	body               any
	locked             bool
	op                 string
}

func TestLockGuard(t *testing.T) {
	sub := "/subscriptions/" + sub1
	rg1, rg2 := rgPath(sub1, "rg1"), rgPath(sub1, "rg2")
	kva, kvb := vaultPath(sub1, "rg1", "kva"), vaultPath(sub1, "rg1", "kvb")
	raOnA := kva + authzProviders + "/roleAssignments/cccccccc-1111-0000-0000-000000000001" + raV
	tags := map[string]any{"tags": map[string]string{"env": "test"}}
	rgBody := map[string]any{"location": "westeurope"}

	var (
		delA   = func(locked bool) step { return step{"delete-vault-a", "DELETE", kva + kvV, nil, locked, "delete"} }
		delB   = func(locked bool) step { return step{"delete-vault-b", "DELETE", kvb + kvV, nil, locked, "delete"} }
		patchA = func(locked bool) step { return step{"patch-vault-a", "PATCH", kva + kvV, tags, locked, "write"} }
		patchB = func(locked bool) step { return step{"patch-vault-b", "PATCH", kvb + kvV, tags, locked, "write"} }
		putNew = func(locked bool) step {
			return step{"put-new-vault", "PUT", vaultPath(sub1, "rg1", "kvc") + kvV, vaultReq(), locked, "write"}
		}
		putRG1 = func(locked bool) step { return step{"put-group-1", "PUT", rg1 + rgV, rgBody, locked, "write"} }
		putRG2 = func(locked bool) step { return step{"put-group-2", "PUT", rg2 + rgV, rgBody, locked, "write"} }
		delRG1 = func(locked bool) step { return step{"delete-group-1", "DELETE", rg1 + rgV, nil, locked, "delete"} }
		delRG2 = func(locked bool) step { return step{"delete-group-2", "DELETE", rg2 + rgV, nil, locked, "delete"} }
		newRA  = func(locked bool) step {
			return step{"create-role-assignment", "PUT", kva + authzProviders + "/roleAssignments/" + "cccccccc-2222-0000-0000-000000000002" + raV, raBody(authz.RoleReader, pidB), locked, "write"}
		}
		delRA    = func(locked bool) step { return step{"delete-role-assignment", "DELETE", raOnA, nil, locked, "delete"} }
		otherSub = func(locked bool) step {
			return step{"put-group-other-sub", "PUT", rgPath(sub2, "rg9") + rgV, rgBody, locked, "write"}
		}
	)
	cases := []struct {
		name, scope, level string
		steps              []step
	}{
		{"ok/cannotdelete-on-group", rg1, LockCanNotDelete, []step{
			patchA(false), putNew(false), putRG1(false), newRA(false), delRA(true), delA(true), delRG1(true), delRG2(false),
		}},
		{"ok/readonly-on-group", rg1, LockReadOnly, []step{
			patchA(true), putNew(true), putRG1(true), newRA(true), delRA(true), delA(true), delRG1(true), putRG2(false), delRG2(false),
		}},
		{"ok/cannotdelete-on-vault", kva, LockCanNotDelete, []step{
			patchA(false), delRA(true), delA(true), delRG1(true), delB(false),
		}},
		{"ok/readonly-on-vault", kva, LockReadOnly, []step{
			patchA(true), newRA(true), patchB(false), delA(true), delRG1(true), delB(false),
		}},
		{"ok/cannotdelete-on-subscription", sub, LockCanNotDelete, []step{
			putNew(false), putRG2(false), delRG2(true), delA(true), otherSub(false),
		}},
		{"ok/readonly-on-subscription", sub, LockReadOnly, []step{
			putNew(true), putRG2(true), delRG2(true), patchB(true), newRA(true), otherSub(false),
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.MustAs(uaaP, "PUT", raOnA, raBody(authz.RoleReader, pidA), http.StatusCreated)
			e.MustAs(ownerP, "PUT", lockPath(tc.scope, "guard"), lockBody(tc.level), http.StatusCreated)
			var firstLocked *step
			for i, s := range tc.steps {
				r := e.DoAs(ownerP, s.method, s.path, s.body)
				if !s.locked {
					if r.Code < 200 || r.Code > 299 {
						t.Fatalf("%s: %d, want success: %s", s.name, r.Code, r.Body.String())
					}
					continue
				}
				if firstLocked == nil {
					firstLocked = &tc.steps[i]
				}
				e.wantErr(r, http.StatusConflict, "ScopeLocked")
				target := strings.SplitN(s.path, "?", 2)[0]
				want := "The scope '" + target + "' cannot perform " + s.op + " operation because following scope(s) are locked: '" +
					tc.scope + "'. Please remove the lock and try again."
				if msg := r.ErrMessage(t); msg != want {
					t.Fatalf("%s message\n got %q\nwant %q", s.name, msg, want)
				}
			}
			// Removing the lock (Owner) lifts the refusal.
			e.MustAs(ownerP, "DELETE", lockPath(tc.scope, "guard"), nil, http.StatusOK)
			if firstLocked != nil {
				if r := e.DoAs(ownerP, firstLocked.method, firstLocked.path, firstLocked.body); r.Code < 200 || r.Code > 299 {
					t.Fatalf("%s after unlock: %d %s", firstLocked.name, r.Code, r.Body.String())
				}
			}
		})
	}
}

func TestLockGuardDetails(t *testing.T) {
	e := newEnv(t)
	sub := "/subscriptions/" + sub1
	rg1 := rgPath(sub1, "rg1")
	kva := vaultPath(sub1, "rg1", "kva")
	e.MustAs(ownerP, "PUT", lockPath(rg1, "ro"), lockBody(LockReadOnly), http.StatusCreated)
	e.MustAs(ownerP, "PUT", lockPath(sub, "nd"), lockBody(LockCanNotDelete), http.StatusCreated)

	t.Run("ok/lock-writes-exempt-under-readonly", func(t *testing.T) {
		e.MustAs(ownerP, "PUT", lockPath(kva, "second"), lockBody(LockCanNotDelete), http.StatusCreated)
		e.MustAs(ownerP, "PUT", lockPath(kva, "second"), lockBody(LockReadOnly), http.StatusOK)
		e.MustAs(ownerP, "DELETE", lockPath(kva, "second"), nil, http.StatusOK)
	})
	t.Run("ok/error-shape-lists-every-locking-scope", func(t *testing.T) {
		r := e.DoAs(ownerP, "DELETE", kva+kvV, nil)
		e.wantErr(r, http.StatusConflict, "ScopeLocked")
		want := "The scope '" + kva + "' cannot perform delete operation because following scope(s) are locked: '" +
			rg1 + "','" + sub + "'. Please remove the lock and try again."
		if msg := r.ErrMessage(t); msg != want {
			t.Fatalf("message\n got %q\nwant %q", msg, want)
		}
		if len(r.JSON(t)) != 1 {
			t.Fatalf("body has more than error: %s", r.Body.String())
		}
	})
	t.Run("ok/subscription-post-is-a-query", func(t *testing.T) {
		e.MustAs(ownerP, "PUT", lockPath(sub, "ro-sub"), lockBody(LockReadOnly), http.StatusCreated)
		defer e.MustAs(ownerP, "DELETE", lockPath(sub, "ro-sub"), nil, http.StatusOK)
		e.MustAs(ownerP, "POST", sub+"/providers/Microsoft.KeyVault/checkNameAvailability"+kvV,
			map[string]any{"name": "freshname", "type": "Microsoft.KeyVault/vaults"}, http.StatusOK)
	})
	t.Run("ok/reads-pass", func(t *testing.T) {
		e.MustAs(readerP, "GET", kva+kvV, nil, http.StatusOK)
		e.MustAs(readerP, "GET", rg1+rgV, nil, http.StatusOK)
	})
	t.Run("ok/direct-call", func(t *testing.T) {
		id, err := arm.ParseResourceID(kva)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			method string
			want   bool
		}{{"GET", false}, {"HEAD", false}, {"PUT", true}, {"PATCH", true}, {"POST", true}, {"DELETE", true}} {
			err := e.prov.BeforeWrite(context.Background(), id, tc.method)
			if (err != nil) != tc.want {
				t.Fatalf("%s: err = %v", tc.method, err)
			}
		}
	})
}

func TestLockPermissions(t *testing.T) {
	rg1 := rgPath(sub1, "rg1")
	cases := []struct {
		name           string
		caller         *principal.Principal
		create, delete int
	}{
		{"ok/owner", ownerP, http.StatusCreated, http.StatusOK},
		{"ok/user-access-administrator", uaaP, http.StatusCreated, http.StatusOK},
		{"fail/contributor", contributorP, http.StatusForbidden, http.StatusForbidden},
		{"fail/reader", readerP, http.StatusForbidden, http.StatusForbidden},
		{"fail/stranger", strangerP, http.StatusForbidden, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.DoAs(tc.caller, "PUT", lockPath(rg1, "mine"), lockBody(LockCanNotDelete))
			if r.Code != tc.create {
				t.Fatalf("create = %d, want %d: %s", r.Code, tc.create, r.Body.String())
			}
			if r.Code == http.StatusForbidden && !strings.Contains(r.ErrMessage(t), "'Microsoft.Authorization/locks/write'") {
				t.Fatalf("create refusal names %q", r.ErrMessage(t))
			}
			// The lock to remove is the Owner's when the caller could not create one.
			ownerWant := http.StatusCreated
			if r.Code == http.StatusCreated {
				ownerWant = http.StatusOK
			}
			e.MustAs(ownerP, "PUT", lockPath(rg1, "mine"), lockBody(LockCanNotDelete), ownerWant)
			r = e.DoAs(tc.caller, "DELETE", lockPath(rg1, "mine"), nil)
			if r.Code != tc.delete {
				t.Fatalf("delete = %d, want %d: %s", r.Code, tc.delete, r.Body.String())
			}
			if r.Code == http.StatusForbidden {
				if !strings.Contains(r.ErrMessage(t), "'Microsoft.Authorization/locks/delete'") {
					t.Fatalf("delete refusal names %q", r.ErrMessage(t))
				}
				e.MustAs(ownerP, "GET", lockPath(rg1, "mine"), nil, http.StatusOK)
			}
			// Reading locks needs only */read.
			if tc.caller != strangerP {
				e.MustAs(tc.caller, "GET", rg1+authzProviders+"/locks"+lockV, nil, http.StatusOK)
			}
		})
	}
}

func TestLockAPI(t *testing.T) {
	e := newEnv(t)
	sub := "/subscriptions/" + sub1
	rg1 := rgPath(sub1, "rg1")
	kva := vaultPath(sub1, "rg1", "kva")

	created := e.MustAs(uaaP, "PUT", lockPath(rg1, "keep-rg"), lockBody(LockCanNotDelete), http.StatusCreated).JSON(t)
	props := created["properties"].(map[string]any)
	sd, _ := created["systemData"].(map[string]any)
	if created["id"] != rg1+authzProviders+"/locks/keep-rg" || created["name"] != "keep-rg" ||
		created["type"] != "Microsoft.Authorization/locks" || props["level"] != LockCanNotDelete || props["notes"] != "keep" ||
		sd == nil || sd["createdBy"] != uaaP.UPN {
		t.Fatalf("created = %v", created)
	}
	updated := e.MustAs(uaaP, "PUT", lockPath(rg1, "KEEP-RG"), map[string]any{"properties": map[string]any{
		"level": "readonly", "owners": []any{map[string]any{"applicationId": "app-1"}}}}, http.StatusOK).JSON(t)
	if up := updated["properties"].(map[string]any); up["level"] != LockReadOnly || updated["name"] != "keep-rg" || up["owners"] == nil {
		t.Fatalf("updated = %v", updated)
	}
	e.MustAs(uaaP, "PUT", lockPath(rg1, "keep-rg"), lockBody(LockCanNotDelete), http.StatusOK)
	e.MustAs(uaaP, "PUT", lockPath(sub, "keep-sub"), lockBody(LockCanNotDelete), http.StatusCreated)
	e.MustAs(uaaP, "PUT", lockPath(kva, "keep-kva"), lockBody(LockCanNotDelete), http.StatusCreated)
	e.MustAs(ownerP, "PUT", lockPath(rgPath(sub2, "rg1"), "keep-other"), lockBody(LockCanNotDelete), http.StatusCreated)

	got := e.MustAs(readerP, "GET", lockPath(kva, "keep-kva"), nil, http.StatusOK).JSON(t)
	if got["id"] != kva+authzProviders+"/locks/keep-kva" {
		t.Fatalf("GET = %v", got)
	}

	lists := []struct {
		name, path string
		want       []string
	}{
		{"ok/subscription", sub + authzProviders + "/locks" + lockV, []string{"keep-sub", "keep-rg", "keep-kva"}},
		{"ok/subscription-atScope", sub + authzProviders + "/locks" + lockV + "&$filter=atScope()", []string{"keep-sub"}},
		{"ok/group", rg1 + authzProviders + "/locks" + lockV, []string{"keep-rg", "keep-kva"}},
		{"ok/group-atScope", rg1 + authzProviders + "/locks" + lockV + "&$filter=" + url.QueryEscape("atScope()"), []string{"keep-sub", "keep-rg"}},
		{"ok/resource", kva + authzProviders + "/locks" + lockV, []string{"keep-kva"}},
		{"ok/resource-atScope", kva + authzProviders + "/locks" + lockV + "&$filter=atScope()", []string{"keep-sub", "keep-rg", "keep-kva"}},
		// @azure/arm-locks spells resource-level paths with "resourcegroups".
		{"ok/js-resource-path", "/subscriptions/" + sub1 + "/resourcegroups/rg1/providers/Microsoft.KeyVault/vaults/kva" + authzProviders + "/locks" + lockV,
			[]string{"keep-kva"}},
		// ...ByScope with the documented scope form "subscriptions/{s}/...",
		// which the JS client sends URL-encoded.
		{"ok/js-by-scope-encoded", "/subscriptions%2F" + sub1 + "%2FresourceGroups%2Frg1" + authzProviders + "/locks" + lockV,
			[]string{"keep-rg", "keep-kva"}},
	}
	for _, tc := range lists {
		t.Run(tc.name, func(t *testing.T) {
			got := names(e.MustAs(readerP, "GET", tc.path, nil, http.StatusOK).Values(t))
			if len(got) != len(tc.want) {
				t.Fatalf("names = %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				if !contains(got, w) {
					t.Fatalf("names = %v, want %v", got, tc.want)
				}
			}
		})
	}

	fails := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"fail/no-level", "PUT", lockPath(rg1, "x"), map[string]any{"properties": map[string]any{"notes": "n"}}, 400, "InvalidLockLevel"},
		{"fail/bad-level", "PUT", lockPath(rg1, "x"), lockBody("NotSpecified"), 400, "InvalidLockLevel"},
		{"fail/bad-name", "PUT", lockPath(rg1, "a:b"), lockBody(LockReadOnly), 400, "InvalidResourceName"},
		{"fail/long-notes", "PUT", lockPath(rg1, "x"), map[string]any{"properties": map[string]any{"level": LockReadOnly, "notes": strings.Repeat("n", 513)}}, 400, "InvalidLockNotes"},
		{"fail/root-scope", "PUT", authzProviders + "/locks/x" + lockV, lockBody(LockReadOnly), 400, "InvalidLockScope"},
		{"fail/missing-vault", "PUT", lockPath(vaultPath(sub1, "rg1", "nosuchvault"), "x"), lockBody(LockReadOnly), 404, "ResourceNotFound"},
		{"fail/missing-group", "PUT", lockPath(rgPath(sub1, "nosuchrg"), "x"), lockBody(LockReadOnly), 404, "ResourceGroupNotFound"},
		{"fail/missing-subscription", "PUT", lockPath("/subscriptions/"+subNone, "x"), lockBody(LockReadOnly), 404, "SubscriptionNotFound"},
		{"fail/get-missing", "GET", lockPath(rg1, "nope"), nil, 404, "LockNotFound"},
		{"fail/get-wrong-scope", "GET", lockPath(rgPath(sub1, "rg2"), "keep-rg"), nil, 404, "LockNotFound"},
		{"fail/filter", "GET", rg1 + authzProviders + "/locks" + lockV + "&$filter=" + url.QueryEscape("level eq 'ReadOnly'"), nil, 400, "InvalidFilter"},
		{"fail/api-version", "GET", rg1 + authzProviders + "/locks?api-version=2014-01-01", nil, 400, "NoRegisteredProviderFound"},
		{"fail/patch", "PATCH", lockPath(rg1, "keep-rg"), lockBody(LockReadOnly), 405, "MethodNotAllowed"},
	}
	for _, tc := range fails {
		t.Run(tc.name, func(t *testing.T) { e.wantErr(e.DoAs(ownerP, tc.method, tc.path, tc.body), tc.status, tc.code) })
	}

	t.Run("ok/delete-then-204", func(t *testing.T) {
		e.MustAs(uaaP, "DELETE", lockPath(kva, "keep-kva"), nil, http.StatusOK)
		e.wantErr(e.DoAs(uaaP, "GET", lockPath(kva, "keep-kva"), nil), 404, "LockNotFound")
		e.MustAs(uaaP, "DELETE", lockPath(kva, "keep-kva"), nil, http.StatusNoContent)
	})
	t.Run("ok/paging", func(t *testing.T) {
		for _, n := range []string{"p1", "p2", "p3"} {
			e.MustAs(ownerP, "PUT", lockPath(rgPath(sub1, "rg2"), n), lockBody(LockCanNotDelete), http.StatusCreated)
		}
		r := e.MustAs(readerP, "GET", rgPath(sub1, "rg2")+authzProviders+"/locks"+lockV+"&$top=2", nil, http.StatusOK)
		next, _ := r.JSON(t)["nextLink"].(string)
		if len(r.Values(t)) != 2 || next == "" {
			t.Fatalf("first page: %s", r.Body.String())
		}
		r = e.MustAs(readerP, "GET", next, nil, http.StatusOK)
		if got := names(r.Values(t)); len(got) != 1 || got[0] != "p3" {
			t.Fatalf("second page = %v", got)
		}
	})
}

func TestLockGoAPI(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	kva, err := arm.ParseResourceID(vaultPath(sub1, "rg1", "kva"))
	if err != nil {
		t.Fatal(err)
	}
	l, created, err := e.prov.PutLock(ctx, kva, "edge", LockProperties{Level: "canNotDelete", Notes: "activation"}, nil)
	if err != nil || !created || l.Properties.Level != LockCanNotDelete {
		t.Fatalf("PutLock = %v, %v, %v", l, created, err)
	}
	locks, err := e.prov.ListLocks(ctx, kva, true)
	if err != nil || len(locks) != 1 || locks[0].Name != "edge" {
		t.Fatalf("ListLocks = %v, %v", locks, err)
	}
	if err := e.prov.BeforeWrite(ctx, kva, http.MethodDelete); err == nil {
		t.Fatal("BeforeWrite allowed a delete under CanNotDelete")
	}
	missing, _ := arm.ParseResourceID(vaultPath(sub1, "rg1", "nosuchvault"))
	if _, _, err := e.prov.PutLock(ctx, missing, "x", LockProperties{Level: LockReadOnly}, nil); err == nil {
		t.Fatal("PutLock on a missing vault succeeded")
	}
	if _, err := e.prov.DeleteLock(ctx, kva, "EDGE"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.prov.DeleteLock(ctx, kva, "edge"); !isCode(err, "LockNotFound") {
		t.Fatalf("second DeleteLock = %v", err)
	}
}
