package storage

import (
	"strings"
	"testing"
	"time"
)

func TestAccountNameRules(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, acct, code string
	}{
		{name: "ok/shortest", acct: "abc"},
		{name: "ok/longest", acct: strings.Repeat("a1", 12)},
		{name: "ok/digits only", acct: "123"},
		{name: "fail/too short", acct: "ab", code: "AccountNameInvalid"},
		{name: "fail/too long", acct: strings.Repeat("a", 25), code: "AccountNameInvalid"},
		{name: "fail/upper case", acct: "MyAccount", code: "AccountNameInvalid"},
		{name: "fail/hyphen", acct: "my-account", code: "AccountNameInvalid"},
		{name: "fail/underscore", acct: "my_account", code: "AccountNameInvalid"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chk := e.Must("POST", "/subscriptions/"+sub1+"/providers/Microsoft.Storage/checkNameAvailability"+stV,
				map[string]any{"name": tc.acct, "type": "Microsoft.Storage/storageAccounts"}, 200).JSON(t)
			r := e.Do("PUT", acctPath(sub1, "rg1", tc.acct)+stV, acctBody("Standard_LRS", nil))
			if tc.code == "" {
				if r.Code != 200 || chk["nameAvailable"] != true {
					t.Fatalf("got %d %s; check %v", r.Code, r.Body.String(), chk)
				}
				return
			}
			if r.Code != 400 || r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			if chk["nameAvailable"] != false || chk["reason"] != "AccountNameInvalid" {
				t.Fatalf("check %v", chk)
			}
		})
	}
}

func TestAccountUniqueness(t *testing.T) {
	e := newEnv(t)
	e.createAccount(sub1, "rg1", "shared")
	tests := []struct {
		name, path string
		status     int
		code       string
	}{
		{"ok/same home replaces", acctPath(sub1, "rg1", "shared"), 200, ""},
		{"fail/other group", acctPath(sub1, "rg2", "shared"), 409, "StorageAccountAlreadyTaken"},
		{"fail/other subscription", acctPath(sub2, "rg1", "shared"), 409, "StorageAccountAlreadyTaken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("PUT", tc.path+stV, acctBody("Standard_LRS", nil))
			if r.Code != tc.status || tc.code != "" && r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	chk := e.Must("POST", "/subscriptions/"+sub2+"/providers/Microsoft.Storage/checkNameAvailability"+stV,
		map[string]any{"name": "shared", "type": "Microsoft.Storage/storageAccounts"}, 200).JSON(t)
	if chk["nameAvailable"] != false || chk["reason"] != "AlreadyExists" {
		t.Fatalf("check %v", chk)
	}
	// Other subscriptions do not see it.
	e.Must("GET", acctPath(sub2, "rg1", "shared")+stV, nil, 404)
}

func TestAccountCRUD(t *testing.T) {
	e := newEnv(t)
	p := acctPath(sub1, "rg1", "auditlogs")
	m := e.Must("PUT", p+stV, acctBody("standard_zrs", map[string]string{"vault": "kv1"}), 200).JSON(t)
	props := m["properties"].(map[string]any)
	sku := m["sku"].(map[string]any)
	checks := map[string]bool{
		"id":           m["id"] == p,
		"type":         m["type"] == "Microsoft.Storage/storageAccounts",
		"sku":          sku["name"] == "Standard_ZRS" && sku["tier"] == "Standard",
		"kind":         m["kind"] == "StorageV2",
		"tags":         m["tags"].(map[string]any)["vault"] == "kv1",
		"provisioning": props["provisioningState"] == "Succeeded",
		"endpoint":     props["primaryEndpoints"].(map[string]any)["blob"] == "https://auditlogs.blob.storage.localhost/",
		"creationTime": props["creationTime"] == "2026-03-01T12:00:00Z",
	}
	for k, ok := range checks {
		if !ok {
			t.Errorf("%s wrong in %v", k, m)
		}
	}
	e.Clock.Advance(time.Hour)
	m = e.Must("PATCH", p+stV, map[string]any{"tags": map[string]string{"env": "prod"}}, 200).JSON(t)
	if tags := m["tags"].(map[string]any); tags["env"] != "prod" || tags["vault"] != nil || m["sku"].(map[string]any)["name"] != "Standard_ZRS" {
		t.Fatalf("patch %v", m)
	}
	if m["properties"].(map[string]any)["creationTime"] != "2026-03-01T12:00:00Z" {
		t.Fatalf("patch changed creationTime: %v", m)
	}
	e.createAccount(sub1, "rg2", "other")
	e.createAccount(sub2, "rg1", "elsewhere")

	for _, tc := range []struct {
		name, path string
		want       int
	}{
		{"ok/list group", rgPath(sub1, "rg1") + "/providers/Microsoft.Storage/storageAccounts", 1},
		{"ok/list subscription", "/subscriptions/" + sub1 + "/providers/Microsoft.Storage/storageAccounts", 2},
		{"ok/generic list", rgPath(sub1, "rg2") + "/resources", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := rgV
			if !strings.HasSuffix(tc.path, "/resources") {
				v = stV
			}
			items := e.Must("GET", tc.path+v, nil, 200).JSON(t)["value"].([]any)
			if len(items) != tc.want {
				t.Fatalf("got %d items: %v", len(items), items)
			}
		})
	}

	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"fail/no sku", map[string]any{"location": "westeurope", "kind": "StorageV2"}, 400, "MissingRequiredProperty"},
		{"fail/bad sku", acctBody("Gold_LRS", nil), 400, "InvalidValuesForRequestParameters"},
		{"fail/no kind", map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Standard_LRS"}}, 400, "MissingRequiredProperty"},
		{"fail/no location", map[string]any{"sku": map[string]any{"name": "Standard_LRS"}, "kind": "StorageV2"}, 400, "LocationRequired"},
		{"fail/move location", map[string]any{"location": "eastus", "sku": map[string]any{"name": "Standard_LRS"}, "kind": "StorageV2"}, 409, "InvalidResourceLocation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("PUT", p+stV, tc.body)
			if r.Code != tc.status || r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}

	e.Must("DELETE", p+stV, nil, 200)
	e.Must("DELETE", p+stV, nil, 204)
	e.Must("GET", p+stV, nil, 404)
	// The name is free again.
	e.createAccount(sub2, "rg1", "auditlogs")
}

func TestGroupDeleteCascades(t *testing.T) {
	e := newEnv(t)
	id := e.createAccount(sub1, "rg2", "doomed")
	if err := e.sp.AppendBlob(e.Ctx, id, "logs", "a/b.json", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	e.Must("DELETE", rgPath(sub1, "rg2")+rgV, nil, 202)
	e.Server.Wait()
	if ok, err := e.sp.Exists(e.Ctx, id); ok || err != nil {
		t.Fatalf("Exists after group delete = %v, %v", ok, err)
	}
	recs, err := e.Store.List(e.Ctx, prefix, storeAll)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Fatalf("left behind: %d records, first %s", len(recs), recs[0].Key)
	}
}
