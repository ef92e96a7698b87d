package msi

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/authz"
)

func TestNameRules(t *testing.T) {
	e := newEnv(t, arm.Options{})
	cases := []struct {
		name, id string
		ok       bool
	}{
		{"ok/three-chars", "abc", true},
		{"ok/max-length", "a" + strings.Repeat("b", 127), true},
		{"ok/hyphen-underscore", "a_b-c", true},
		{"ok/starts-with-digit", "1abc", true},
		{"ok/upper-case", "MyIdentity", true},
		{"fail/too-short", "ab", false},
		{"fail/too-long", "a" + strings.Repeat("b", 128), false},
		{"fail/starts-with-hyphen", "-abc", false},
		{"fail/starts-with-underscore", "_abc", false},
		{"fail/dot", "a.bc", false},
		{"fail/space", "a%20bc", false},
		{"fail/non-ascii", "ab%C3%A7", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Do("PUT", uaiPath(sub1, "rg1", c.id)+v, map[string]any{"location": "westeurope"})
			if c.ok {
				if r.Code != 201 {
					t.Fatalf("status %d: %s", r.Code, r.Body.String())
				}
				return
			}
			if r.Code != 400 || r.ErrCode(t) != "InvalidResourceName" {
				t.Fatalf("status %d: %s", r.Code, r.Body.String())
			}
		})
	}
	if err := ValidateIdentityName("ok-name_1"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateGetUpdate(t *testing.T) {
	e := newEnv(t, arm.Options{})
	created := e.create(sub1, "rg1", "uai1")
	id := uaiPath(sub1, "rg1", "uai1")
	if created["id"] != id || created["name"] != "uai1" || created["type"] != "Microsoft.ManagedIdentity/userAssignedIdentities" ||
		created["location"] != "westeurope" {
		t.Fatalf("envelope: %v", created)
	}
	if tags, ok := created["tags"].(map[string]any); !ok || len(tags) != 0 {
		t.Fatalf("tags: %v", created["tags"])
	}
	sd, _ := created["systemData"].(map[string]any)
	if sd["createdBy"] != e.Caller.UPN || sd["createdByType"] != "User" || sd["createdAt"] == nil {
		t.Fatalf("systemData: %v", sd)
	}
	pr := props(created)
	if pr["tenantId"] != e.tenant || uuid.Validate(pr["principalId"].(string)) != nil || uuid.Validate(pr["clientId"].(string)) != nil {
		t.Fatalf("properties: %v", pr)
	}
	if _, has := pr["isolationScope"]; has {
		t.Fatalf("isolationScope rendered for 2023-01-31: %v", pr)
	}
	// The identity service knows the same principal.
	mi, err := e.ids.GetUserAssigned(e.Ctx, id)
	if err != nil || mi.PrincipalID != pr["principalId"] || mi.ClientID != pr["clientId"] || mi.TenantID != e.tenant {
		t.Fatalf("identity: %+v %v", mi, err)
	}

	got := e.Must("GET", id+vNew, nil, 200).JSON(t)
	if props(got)["isolationScope"] != "None" || props(got)["principalId"] != pr["principalId"] {
		t.Fatalf("GET 2024-11-30: %v", got)
	}
	// Name lookups are case-insensitive; the stored casing is kept.
	if got := e.Must("GET", uaiPath(sub1, "RG1", "UAI1")+v, nil, 200).JSON(t); got["name"] != "uai1" || got["id"] != id {
		t.Fatalf("case-insensitive GET: %v", got)
	}

	e.Clock.Advance(time.Minute)
	again := e.Must("PUT", id+vNew, map[string]any{"location": "West Europe", "tags": map[string]string{"env": "dev"},
		"properties": map[string]any{"isolationScope": "Regional"}}, 200).JSON(t)
	if props(again)["principalId"] != pr["principalId"] || props(again)["isolationScope"] != "Regional" ||
		again["tags"].(map[string]any)["env"] != "dev" {
		t.Fatalf("PUT again: %v", again)
	}
	sd2 := again["systemData"].(map[string]any)
	if sd2["createdAt"] != sd["createdAt"] || sd2["lastModifiedAt"] == sd["lastModifiedAt"] {
		t.Fatalf("systemData after update: %v (was %v)", sd2, sd)
	}

	patched := e.Must("PATCH", id+v, map[string]any{"tags": map[string]string{"team": "x"}}, 200).JSON(t)
	if tags := patched["tags"].(map[string]any); len(tags) != 1 || tags["team"] != "x" {
		t.Fatalf("PATCH tags: %v", patched)
	}
	kept := e.Must("PATCH", id+vNew, map[string]any{}, 200).JSON(t)
	if kept["tags"].(map[string]any)["team"] != "x" || props(kept)["isolationScope"] != "Regional" {
		t.Fatalf("empty PATCH changed the identity: %v", kept)
	}

	cases := []struct {
		name, method, path string
		body               any
		status             int
		code               string
	}{
		{"fail/put-no-location", "PUT", uaiPath(sub1, "rg1", "uai2") + v, map[string]any{}, 400, "LocationRequired"},
		{"fail/put-unknown-location", "PUT", uaiPath(sub1, "rg1", "uai2") + v, map[string]any{"location": "moon"}, 400, "LocationNotAvailableForResourceType"},
		{"fail/put-empty-body", "PUT", uaiPath(sub1, "rg1", "uai2") + v, nil, 400, "InvalidRequestContent"},
		{"fail/put-bad-json", "PUT", uaiPath(sub1, "rg1", "uai2") + v, "{", 400, "InvalidRequestContent"},
		{"fail/put-bad-isolation", "PUT", uaiPath(sub1, "rg1", "uai2") + v, map[string]any{"location": "westeurope", "properties": map[string]any{"isolationScope": "Global"}}, 400, "BadRequest"},
		{"fail/put-bad-tag", "PUT", uaiPath(sub1, "rg1", "uai2") + v, map[string]any{"location": "westeurope", "tags": map[string]string{"a/b": "x"}}, 400, "InvalidTagNameCharacters"},
		{"fail/put-moved-location", "PUT", id + v, map[string]any{"location": "eastus"}, 400, "InvalidResourceLocation"},
		{"fail/patch-moved-location", "PATCH", id + v, map[string]any{"location": "eastus"}, 400, "InvalidResourceLocation"},
		{"fail/patch-missing", "PATCH", uaiPath(sub1, "rg1", "nope") + v, map[string]any{}, 404, "ResourceNotFound"},
		{"fail/get-missing", "GET", uaiPath(sub1, "rg1", "nope") + v, nil, 404, "ResourceNotFound"},
		{"fail/get-other-group", "GET", uaiPath(sub1, "rg2", "uai1") + v, nil, 404, "ResourceNotFound"},
		{"fail/missing-group", "PUT", uaiPath(sub1, "nogroup", "uai2") + v, map[string]any{"location": "westeurope"}, 404, "ResourceGroupNotFound"},
		{"fail/api-version", "GET", id + "?api-version=2017-01-01", nil, 400, "NoRegisteredProviderFound"},
		{"fail/post-method", "POST", id + "/unknownAction" + v, nil, 404, "NotFound"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Do(c.method, c.path, c.body)
			if r.Code != c.status || r.ErrCode(t) != c.code {
				t.Fatalf("%d %s", r.Code, r.Body.String())
			}
		})
	}
	if r := e.Do("GET", uaiPath(sub1, "rg1", "uai2")+v, nil); r.Code != 404 {
		t.Fatalf("a failed PUT left an identity: %d", r.Code)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t, arm.Options{})
	for _, n := range []string{"c", "a", "b"} {
		e.create(sub1, "rg1", "id-"+n)
	}
	e.create(sub1, "rg2", "id-d")
	e.create(sub1, "rg10", "id-e")
	e.create(sub2, "rg1", "id-f")

	names := func(path string) []string {
		t.Helper()
		var out []string
		next := path
		for pages := 0; next != ""; pages++ {
			if pages > 10 {
				t.Fatal("paging does not end")
			}
			m := e.Must("GET", next, nil, 200).JSON(t)
			for _, it := range m["value"].([]any) {
				r := it.(map[string]any)
				if r["type"] != UserAssignedType || props(r)["principalId"] == "" {
					t.Fatalf("list item: %v", r)
				}
				out = append(out, r["name"].(string))
			}
			next, _ = m["nextLink"].(string)
		}
		return out
	}
	rgList := "/subscriptions/" + sub1 + "/resourceGroups/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities" + v
	subList := "/subscriptions/%s/providers/Microsoft.ManagedIdentity/userAssignedIdentities" + v
	cases := []struct {
		name, path string
		want       string
	}{
		{"ok/resource-group", sprintf(rgList, "rg1"), "id-a,id-b,id-c"},
		{"ok/resource-group-not-prefix", sprintf(rgList, "rg10"), "id-e"},
		{"ok/resource-group-paged", sprintf(rgList, "rg1") + "&$top=2", "id-a,id-b,id-c"},
		{"ok/subscription", sprintf(subList, sub1), "id-a,id-b,id-c,id-e,id-d"},
		{"ok/subscription-paged", sprintf(subList, sub1) + "&$top=1", "id-a,id-b,id-c,id-e,id-d"},
		{"ok/other-subscription", sprintf(subList, sub2), "id-f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := strings.Join(names(c.path), ","); got != c.want {
				t.Fatalf("got %s, want %s", got, c.want)
			}
		})
	}
	t.Run("ok/first-page-size", func(t *testing.T) {
		m := e.Must("GET", sprintf(subList, sub1)+"&$top=2", nil, 200).JSON(t)
		if len(m["value"].([]any)) != 2 || !strings.HasPrefix(m["nextLink"].(string), base+"/subscriptions/") {
			t.Fatalf("page: %v", m)
		}
	})
	t.Run("ok/generic-resource-list", func(t *testing.T) {
		m := e.Must("GET", rgPath(sub1, "rg2")+"/resources"+rgV, nil, 200).JSON(t)
		vs := m["value"].([]any)
		if len(vs) != 1 || vs[0].(map[string]any)["type"] != UserAssignedType || vs[0].(map[string]any)["name"] != "id-d" {
			t.Fatalf("generic list: %v", m)
		}
	})
	t.Run("fail/bad-top", func(t *testing.T) {
		if r := e.Do("GET", sprintf(subList, sub1)+"&$top=0", nil); r.Code != 400 {
			t.Fatalf("%d %s", r.Code, r.Body.String())
		}
	})
}

func sprintf(format, arg string) string { return strings.Replace(format, "%s", arg, 1) }

func TestDelete(t *testing.T) {
	e := newEnv(t, arm.Options{})
	m := e.create(sub1, "rg1", "doomed")
	id := uaiPath(sub1, "rg1", "doomed")
	pid := props(m)["principalId"].(string)
	e.assign(pid, authz.RoleReader, rgPath(sub1, "rg1"))
	e.assign(pid, authz.RoleKeyVaultSecretsUser, rgPath(sub1, "rg2"))
	tok, _, err := e.ids.IssueToken(e.Ctx, pid, vaultAud)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e.ids.Verify(e.Ctx, tok); err != nil || p.ObjectID != pid {
		t.Fatalf("token before delete: %v %v", p, err)
	}
	// A workload secret outlives nothing: deleting revokes it.
	ws := e.Must("POST", id+"/issueWorkloadSecret"+v, nil, 200).JSON(t)

	e.Must("DELETE", id+v, nil, 200)

	if as, err := e.engine.ListAssignments(e.Ctx, authz.AssignmentFilter{PrincipalID: pid}); err != nil || len(as) != 0 {
		t.Fatalf("assignments after delete: %v %v", as, err)
	}
	if _, err := e.ids.Verify(e.Ctx, tok); err == nil {
		t.Fatal("token of a deleted identity still verifies")
	}
	if _, err := e.ids.GetUserAssigned(e.Ctx, id); !isStatus(err, 404) {
		t.Fatalf("identity principal after delete: %v", err)
	}
	if code, _ := e.msiToken(ws["identityHeader"].(string), "client_id", ws["clientId"].(string)); code != 401 {
		t.Fatalf("workload secret after delete: %d", code)
	}
	if r := e.Do("GET", id+v, nil); r.Code != 404 || r.ErrCode(t) != "ResourceNotFound" {
		t.Fatalf("GET after delete: %d %s", r.Code, r.Body.String())
	}
	e.Must("DELETE", id+v, nil, 204)

	again := e.create(sub1, "rg1", "doomed")
	if props(again)["principalId"] == pid {
		t.Fatal("a recreated identity reused the deleted principal")
	}
}

func TestResourceGroupDelete(t *testing.T) {
	e := newEnv(t, arm.Options{})
	m := e.create(sub1, "rg2", "in-group")
	keep := e.create(sub1, "rg1", "kept")
	pid := props(m)["principalId"].(string)
	e.assign(pid, authz.RoleReader, "/subscriptions/"+sub1)
	e.Must("DELETE", rgPath(sub1, "rg2")+rgV, nil, 202)
	if _, err := e.ids.GetUserAssigned(e.Ctx, uaiPath(sub1, "rg2", "in-group")); !isStatus(err, 404) {
		t.Fatalf("identity after group delete: %v", err)
	}
	if as, _ := e.engine.ListAssignments(e.Ctx, authz.AssignmentFilter{PrincipalID: pid}); len(as) != 0 {
		t.Fatalf("assignments after group delete: %v", as)
	}
	if got := e.Must("GET", uaiPath(sub1, "rg1", "kept")+v, nil, 200).JSON(t); props(got)["principalId"] != props(keep)["principalId"] {
		t.Fatalf("identity in another group changed: %v", got)
	}
	e.Must("PUT", rgPath(sub1, "rg2")+rgV, map[string]any{"location": "westeurope"}, 201)
	if r := e.Do("GET", uaiPath(sub1, "rg2", "in-group")+v, nil); r.Code != 404 {
		t.Fatalf("identity survived its group: %d", r.Code)
	}
}

func TestSystemAssignedExtension(t *testing.T) {
	e := newEnv(t, arm.Options{})
	vaultID := rgPath(sub1, "rg1") + "/providers/Microsoft.KeyVault/vaults/kv1"
	mi, err := e.ids.EnsureSystemAssigned(e.Ctx, e.tenant, vaultID)
	if err != nil {
		t.Fatal(err)
	}
	ext := "/providers/Microsoft.ManagedIdentity/identities/default"
	got := e.Must("GET", vaultID+ext+v, nil, 200).JSON(t)
	if got["id"] != vaultID+ext || got["name"] != "default" || got["type"] != "Microsoft.ManagedIdentity/identities" {
		t.Fatalf("envelope: %v", got)
	}
	if p := props(got); p["principalId"] != mi.PrincipalID || p["clientId"] != mi.ClientID || p["tenantId"] != e.tenant {
		t.Fatalf("properties: %v", p)
	}
	uai := e.create(sub1, "rg1", "uai1")
	cases := []struct {
		name, method, path string
		status             int
	}{
		{"ok/case-insensitive", "GET", strings.ToUpper(vaultID[:1]) + vaultID[1:] + "/providers/Microsoft.ManagedIdentity/identities/DEFAULT" + v, 200},
		{"fail/no-identity", "GET", rgPath(sub1, "rg1") + "/providers/Microsoft.KeyVault/vaults/kv2" + ext + v, 404},
		{"fail/user-assigned-has-no-system", "GET", uai["id"].(string) + ext + v, 404},
		{"fail/not-default", "GET", vaultID + "/providers/Microsoft.ManagedIdentity/identities/other" + v, 404},
		{"fail/group-scope", "GET", rgPath(sub1, "rg1") + ext + v, 404},
		{"fail/put", "PUT", vaultID + ext + v, 405},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Do(c.method, c.path, map[string]any{})
			if r.Code != c.status {
				t.Fatalf("%d %s", r.Code, r.Body.String())
			}
		})
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, arm.Options{}, func(o *Options) { o.MaxPerSubscription = 2 })
	e.create(sub1, "rg1", "one")
	e.create(sub1, "rg2", "two")
	cases := []struct {
		name, sub, rg, id string
		status            int
	}{
		{"fail/third-in-subscription", sub1, "rg1", "three", 409},
		{"ok/update-existing", sub1, "rg1", "one", 200},
		{"ok/other-subscription", sub2, "rg1", "three", 201},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.Do("PUT", uaiPath(c.sub, c.rg, c.id)+v, map[string]any{"location": "westeurope"})
			if r.Code != c.status {
				t.Fatalf("%d %s", r.Code, r.Body.String())
			}
			if c.status == 409 && r.ErrCode(t) != "QuotaExceeded" {
				t.Fatal(r.Body.String())
			}
		})
	}
	if ms, _ := e.ids.ListUserAssigned(e.Ctx, "/subscriptions/"+sub1); len(ms) != 2 {
		t.Fatalf("a refused create left a principal: %d identities", len(ms))
	}
}

func TestTenantFromSubscription(t *testing.T) {
	// Without Options.Tenants the caller's tenant is used; with it (newEnv)
	// the subscription's tenant, whatever the caller's.
	e := newEnv(t, arm.Options{})
	other := *e.Caller
	other.TenantID = "99999999-9999-9999-9999-999999999999"
	m := e.DoAs(&other, "PUT", uaiPath(sub1, "rg1", "tenanted")+v, map[string]any{"location": "westeurope"})
	if m.Code != 201 || props(m.JSON(t))["tenantId"] != e.tenant {
		t.Fatalf("%d %s", m.Code, m.Body.String())
	}
}
