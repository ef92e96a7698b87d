package keyvault

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/arm"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

func TestVaultNameRules(t *testing.T) {
	e := newEnv(t, arm.Options{})
	tests := []struct {
		name, vault, msg string
	}{
		{name: "ok/shortest", vault: "abc"},
		{name: "ok/longest", vault: "a" + strings.Repeat("b1", 11) + "c"},
		{name: "ok/hyphens and digits", vault: "My-Vault-01"},
		{name: "fail/too short", vault: "ab", msg: "between 3 and 24 characters"},
		{name: "fail/too long", vault: strings.Repeat("a", 25), msg: "between 3 and 24 characters"},
		{name: "fail/underscore", vault: "my_vault", msg: "only letters (a-z, A-Z), digits (0-9) and hyphens"},
		{name: "fail/dot", vault: "my.vault", msg: "only letters (a-z, A-Z), digits (0-9) and hyphens"},
		{name: "fail/starts with digit", vault: "1vault", msg: "must start with a letter"},
		{name: "fail/starts with hyphen", vault: "-vault", msg: "must start with a letter"},
		{name: "fail/ends with hyphen", vault: "vault-", msg: "must end with a letter or a digit"},
		{name: "fail/consecutive hyphens", vault: "my--vault", msg: "must not contain consecutive hyphens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chk := e.Must("POST", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/checkNameAvailability"+kv,
				map[string]any{"name": tc.vault, "type": "Microsoft.KeyVault/vaults"}, 200).JSON(t)
			r := e.Do("PUT", vaultPath(sub1, "rg1", tc.vault)+kv, vaultReq())
			if tc.msg == "" {
				if r.Code != 201 || chk["nameAvailable"] != true {
					t.Fatalf("got %d %s; check %v", r.Code, r.Body.String(), chk)
				}
				return
			}
			if r.Code != 400 || r.ErrCode(t) != "InvalidResourceName" || !strings.Contains(r.ErrMessage(t), tc.msg) {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			if chk["nameAvailable"] != false || chk["reason"] != "AccountNameInvalid" || !strings.Contains(chk["message"].(string), tc.msg) {
				t.Fatalf("check %v", chk)
			}
		})
	}
	t.Run("fail/check wrong type", func(t *testing.T) {
		r := e.Do("POST", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/checkNameAvailability"+kv,
			map[string]any{"name": "abc", "type": "Microsoft.Storage/storageAccounts"})
		if r.Code != 400 {
			t.Fatalf("got %d", r.Code)
		}
	})
}

func TestCreateGetUpdate(t *testing.T) {
	e := newEnv(t, arm.Options{})
	m := e.create(sub1, "rg1", "Kv-One", set("tags", nil))
	props := m["properties"].(map[string]any)
	sd := m["systemData"].(map[string]any)
	checks := map[string]bool{
		"id":                m["id"] == vaultPath(sub1, "rg1", "Kv-One"),
		"type":              m["type"] == "Microsoft.KeyVault/vaults",
		"location":          m["location"] == "westeurope",
		"vaultUri":          props["vaultUri"] == "https://kv-one.vault.localhost:8443/",
		"sku":               fmt.Sprint(props["sku"]) == "map[family:A name:standard]",
		"tenantId":          props["tenantId"] == tenant1,
		"softDelete":        props["enableSoftDelete"] == true,
		"retention default": props["softDeleteRetentionInDays"] == float64(90),
		"purge protection":  props["enablePurgeProtection"] == nil,
		"public access":     props["publicNetworkAccess"] == "Enabled",
		"provisioning":      props["provisioningState"] == "Succeeded",
		"rbac":              props["enableRbacAuthorization"] == false,
		"systemData":        sd["createdBy"] == "admin@keyhaven.local" && sd["createdByType"] == "User" && sd["createdAt"] != nil,
		"tags":              m["tags"] != nil,
	}
	for k, ok := range checks {
		if !ok {
			t.Errorf("%s wrong in %v", k, m)
		}
	}
	id1 := e.internalID("kv-one")

	// PUT again replaces (200), keeping identity.
	r := e.Must("PUT", vaultPath(sub1, "rg1", "kv-one")+kv, vaultReq(set("sku", map[string]any{"family": "A", "name": "Premium"}),
		set("enableRbacAuthorization", true)), 200)
	if p := r.JSON(t)["properties"].(map[string]any); p["sku"].(map[string]any)["name"] != "premium" || p["enableRbacAuthorization"] != true {
		t.Fatalf("replace %v", p)
	}
	if e.internalID("KV-ONE") != id1 {
		t.Fatal("update changed InternalID")
	}
	// PATCH merges.
	e.Clock.Advance(time.Hour)
	r = e.Must("PATCH", vaultPath(sub1, "rg1", "kv-one")+kv, map[string]any{"tags": map[string]string{"env": "prod"},
		"properties": map[string]any{"publicNetworkAccess": "disabled"}}, 200)
	m = r.JSON(t)
	p := m["properties"].(map[string]any)
	if m["tags"].(map[string]any)["env"] != "prod" || p["publicNetworkAccess"] != "Disabled" || p["enableRbacAuthorization"] != true ||
		p["sku"].(map[string]any)["name"] != "premium" {
		t.Fatalf("patch %v", m)
	}
	if sd := m["systemData"].(map[string]any); sd["lastModifiedAt"] == sd["createdAt"] {
		t.Fatalf("lastModifiedAt not updated: %v", sd)
	}
	e.Must("GET", vaultPath(sub1, "rg1", "KV-ONE")+kv, nil, 200)
	vi, err := e.kv.LookupVault(context.Background(), "Kv-One")
	if err != nil || !vi.EnableRBACAuthorization || vi.PublicNetworkAccess != "Disabled" || vi.TenantID != tenant1 ||
		vi.ResourceID != vaultPath(sub1, "rg1", "Kv-One") || vi.SoftDeleteRetentionInDays != 90 || vi.SubscriptionID != sub1 {
		t.Fatalf("LookupVault = %+v, %v", vi, err)
	}

	for _, tc := range []struct{ name, method, path, code string }{
		{"fail/get missing", "GET", vaultPath(sub1, "rg1", "nope") + kv, "ResourceNotFound"},
		{"fail/get in wrong group", "GET", vaultPath(sub1, "rg2", "kv-one") + kv, "ResourceNotFound"},
		{"fail/patch missing", "PATCH", vaultPath(sub1, "rg1", "nope") + kv, "ResourceNotFound"},
		{"fail/unsupported api-version", "GET", vaultPath(sub1, "rg1", "kv-one") + "?api-version=2014-01-01", "NoRegisteredProviderFound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do(tc.method, tc.path, map[string]any{})
			if r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("ok/every listed api-version", func(t *testing.T) {
		for _, v := range APIVersions {
			e.Must("GET", vaultPath(sub1, "rg1", "kv-one")+"?api-version="+v, nil, 200)
		}
	})
	t.Run("fail/lookup missing", func(t *testing.T) {
		_, err := e.kv.LookupVault(context.Background(), "nope")
		var ae *azerr.Error
		if !errors.As(err, &ae) || ae.Status != 404 {
			t.Fatalf("err %v", err)
		}
	})
}

func TestPropertyValidation(t *testing.T) {
	e := newEnv(t, arm.Options{})
	del := func(k string) func(map[string]any) { return func(p map[string]any) { delete(p, k) } }
	acl := func(a map[string]any) func(map[string]any) { return set("networkAcls", a) }
	pol := func(perm map[string]any, objectID string) func(map[string]any) {
		return set("accessPolicies", []any{map[string]any{"tenantId": tenant1, "objectId": objectID, "permissions": perm}})
	}
	tests := []struct {
		name   string
		body   map[string]any
		target string
		msg    string
	}{
		{name: "fail/no tenantId", body: vaultReq(del("tenantId")), target: "properties.tenantId"},
		{name: "fail/tenantId not a guid", body: vaultReq(set("tenantId", "contoso")), target: "properties.tenantId"},
		{name: "fail/no sku", body: vaultReq(del("sku")), target: "properties.sku"},
		{name: "fail/sku family", body: vaultReq(set("sku", map[string]any{"family": "B", "name": "standard"})), target: "properties.sku.family"},
		{name: "fail/sku name", body: vaultReq(set("sku", map[string]any{"family": "A", "name": "basic"})), target: "properties.sku.name"},
		{name: "fail/soft delete off", body: vaultReq(set("enableSoftDelete", false)), target: "properties.enableSoftDelete"},
		{name: "fail/retention low", body: vaultReq(set("softDeleteRetentionInDays", 6)), target: "properties.softDeleteRetentionInDays"},
		{name: "fail/retention high", body: vaultReq(set("softDeleteRetentionInDays", 91)), target: "properties.softDeleteRetentionInDays"},
		{name: "fail/create mode", body: vaultReq(set("createMode", "restore")), target: "properties.createMode"},
		{name: "fail/public access", body: vaultReq(set("publicNetworkAccess", "Sometimes")), target: "properties.publicNetworkAccess"},
		{name: "fail/acl default action", body: vaultReq(acl(map[string]any{"defaultAction": "Block"})), target: "properties.networkAcls.defaultAction"},
		{name: "fail/acl bypass", body: vaultReq(acl(map[string]any{"bypass": "Everything"})), target: "properties.networkAcls.bypass"},
		{name: "fail/acl ipv6", body: vaultReq(acl(map[string]any{"ipRules": []any{map[string]any{"value": "2001:db8::1"}}})),
			target: "properties.networkAcls.ipRules", msg: "only IPv4"},
		{name: "fail/acl ipv6 cidr", body: vaultReq(acl(map[string]any{"ipRules": []any{map[string]any{"value": "2001:db8::/32"}}})),
			target: "properties.networkAcls.ipRules", msg: "only IPv4"},
		{name: "fail/acl garbage", body: vaultReq(acl(map[string]any{"ipRules": []any{map[string]any{"value": "10.0.0.256"}}})),
			target: "properties.networkAcls.ipRules", msg: "not an IPv4 address"},
		{name: "fail/acl bad prefix", body: vaultReq(acl(map[string]any{"ipRules": []any{map[string]any{"value": "10.0.0.0/33"}}})),
			target: "properties.networkAcls.ipRules"},
		{name: "fail/acl empty", body: vaultReq(acl(map[string]any{"ipRules": []any{map[string]any{"value": ""}}})),
			target: "properties.networkAcls.ipRules"},
		{name: "fail/policy permission", body: vaultReq(pol(map[string]any{"secrets": []string{"steal"}}, oid)), target: "permissions.secrets"},
		{name: "fail/policy object id", body: vaultReq(pol(map[string]any{"secrets": []string{"get"}}, "bob")), target: "properties.accessPolicies"},
		{name: "fail/no properties", body: map[string]any{"location": "westeurope"}, target: "properties"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("PUT", vaultPath(sub1, "rg1", "kv-valid")+kv, tc.body)
			if r.Code != 400 {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			eb := r.JSON(t)["error"].(map[string]any)
			if eb["target"] != tc.target || !strings.Contains(eb["message"].(string), tc.msg) {
				t.Fatalf("error %v, want target %s", eb, tc.target)
			}
		})
	}
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"fail/no location", map[string]any{"properties": vaultReq()["properties"]}, "LocationRequired"},
		{"fail/unknown location", map[string]any{"location": "moon", "properties": vaultReq()["properties"]}, "LocationNotAvailableForResourceType"},
		{"fail/too many tags", func() map[string]any {
			b := vaultReq()
			tags := map[string]string{}
			for i := range 51 {
				tags[fmt.Sprint(i)] = ""
			}
			b["tags"] = tags
			return b
		}(), "InvalidTagCount"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := e.Do("PUT", vaultPath(sub1, "rg1", "kv-valid")+kv, tc.body); r.Code != 400 || r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	if _, err := e.kv.LookupVault(context.Background(), "kv-valid"); err == nil {
		t.Fatal("a refused PUT created a vault")
	}
}

func TestNetworkACLs(t *testing.T) {
	e := newEnv(t, arm.Options{})
	m := e.create(sub1, "rg1", "kv-fw", set("networkAcls", map[string]any{
		"defaultAction": "deny", "bypass": "none",
		"ipRules":             []any{map[string]any{"value": "203.0.113.7"}, map[string]any{"value": "198.51.100.0/24"}},
		"virtualNetworkRules": []any{map[string]any{"id": "/subscriptions/x/whatever"}},
	}), set("publicNetworkAccess", "Enabled"))
	acl := m["properties"].(map[string]any)["networkAcls"].(map[string]any)
	if acl["defaultAction"] != "Deny" || acl["bypass"] != "None" || len(acl["ipRules"].([]any)) != 2 || len(acl["virtualNetworkRules"].([]any)) != 0 {
		t.Fatalf("acl %v", acl)
	}
	vi, err := e.kv.LookupVault(context.Background(), "kv-fw")
	if err != nil || vi.NetworkACLs == nil || vi.NetworkACLs.DefaultAction != "Deny" || vi.NetworkACLs.Bypass != "None" ||
		len(vi.NetworkACLs.IPRules) != 2 || vi.NetworkACLs.IPRules[1].Value != "198.51.100.0/24" || vi.PublicNetworkAccess != "Enabled" {
		t.Fatalf("info %+v %v", vi, err)
	}
	// Defaults for an ACL with nothing set: Allow + AzureServices.
	e.Must("PATCH", vaultPath(sub1, "rg1", "kv-fw")+kv, map[string]any{"properties": map[string]any{"networkAcls": map[string]any{}}}, 200)
	vi, _ = e.kv.LookupVault(context.Background(), "kv-fw")
	if vi.NetworkACLs.DefaultAction != "Allow" || vi.NetworkACLs.Bypass != "AzureServices" || len(vi.NetworkACLs.IPRules) != 0 {
		t.Fatalf("defaults %+v", vi.NetworkACLs)
	}
}

func TestGlobalNameUniqueness(t *testing.T) {
	e := newEnv(t, arm.Options{})
	e.create(sub1, "rg1", "shared-name")
	check := func(sub string) map[string]any {
		return e.Must("POST", "/subscriptions/"+sub+"/providers/Microsoft.KeyVault/checkNameAvailability"+kv,
			map[string]any{"name": "SHARED-NAME", "type": "microsoft.keyvault/vaults"}, 200).JSON(t)
	}
	tests := []struct{ name, sub, rg, vault, code string }{
		{"fail/other group", sub1, "rg2", "shared-name", "VaultAlreadyExists"},
		{"fail/other subscription", sub2, "rg1", "shared-name", "VaultAlreadyExists"},
		{"fail/other tenant, other case", sub3, "rg1", "Shared-Name", "VaultAlreadyExists"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("PUT", vaultPath(tc.sub, tc.rg, tc.vault)+kv, vaultReq())
			if r.Code != 409 || r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			if c := check(tc.sub); c["nameAvailable"] != false || c["reason"] != "AlreadyExists" {
				t.Fatalf("check %v", c)
			}
		})
	}
	id1 := e.internalID("shared-name")
	e.Must("DELETE", vaultPath(sub1, "rg1", "shared-name")+kv, nil, 200)
	t.Run("fail/reserved by soft-deleted vault", func(t *testing.T) {
		for _, path := range []string{vaultPath(sub3, "rg1", "shared-name"), vaultPath(sub1, "rg1", "shared-name")} {
			r := e.Do("PUT", path+kv, vaultReq())
			if r.Code != 409 || r.ErrCode(t) != "ConflictError" || !strings.Contains(r.ErrMessage(t), "deleted state") {
				t.Fatalf("%s: got %d %s", path, r.Code, r.Body.String())
			}
		}
		if c := check(sub2); c["nameAvailable"] != false {
			t.Fatalf("check %v", c)
		}
	})
	t.Run("ok/free after purge", func(t *testing.T) {
		if m := e.purgeAndWait(sub1, "westeurope", "shared-name"); m["status"] != "Succeeded" {
			t.Fatalf("purge %v", m)
		}
		if c := check(sub3); c["nameAvailable"] != true {
			t.Fatalf("check %v", c)
		}
		e.create(sub3, "rg1", "shared-name", set("tenantId", tenant2))
		if e.internalID("shared-name") == id1 {
			t.Fatal("a new vault reused the purged vault's InternalID")
		}
	})
}

func TestSoftDeleteRecoverPurge(t *testing.T) {
	e := newEnv(t, arm.Options{})
	ctx := context.Background()
	e.create(sub1, "rg1", "kv-life", set("softDeleteRetentionInDays", 30))
	id1 := e.internalID("kv-life")
	deletedAt := e.Clock.Now()

	e.Must("DELETE", vaultPath(sub1, "rg1", "kv-life")+kv, nil, 200)
	e.Must("DELETE", vaultPath(sub1, "rg1", "kv-life")+kv, nil, 204)
	if r := e.Do("GET", vaultPath(sub1, "rg1", "kv-life")+kv, nil); r.Code != 404 {
		t.Fatalf("deleted vault still readable: %d", r.Code)
	}
	if _, err := e.kv.LookupVault(ctx, "kv-life"); !errors.Is(err, azerr.NotFound("VaultNotFound", "")) {
		t.Fatalf("LookupVault of deleted vault: %v", err)
	}
	list := e.Must("GET", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/vaults"+kv, nil, 200).JSON(t)["value"].([]any)
	if len(list) != 0 {
		t.Fatalf("deleted vault listed: %v", list)
	}
	dl := e.Must("GET", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/deletedVaults"+kv, nil, 200).JSON(t)["value"].([]any)
	if len(dl) != 1 {
		t.Fatalf("deleted list %v", dl)
	}
	d := dl[0].(map[string]any)
	dp := d["properties"].(map[string]any)
	wantPurge := deletedAt.Add(30 * 24 * time.Hour).Format(time.RFC3339)
	if d["id"] != deletedPath(sub1, "westeurope", "kv-life") || d["type"] != "Microsoft.KeyVault/deletedVaults" ||
		dp["vaultId"] != vaultPath(sub1, "rg1", "kv-life") || dp["scheduledPurgeDate"] != wantPurge || dp["deletionDate"] != deletedAt.Format(time.RFC3339) {
		t.Fatalf("deleted vault %v (want purge %s)", d, wantPurge)
	}
	if dl := e.Must("GET", "/subscriptions/"+sub2+"/providers/Microsoft.KeyVault/deletedVaults"+kv, nil, 200).JSON(t)["value"].([]any); len(dl) != 0 {
		t.Fatalf("other subscription sees deleted vault: %v", dl)
	}
	e.Must("GET", deletedPath(sub1, "West%20Europe", "kv-life")+kv, nil, 200)
	if r := e.Do("GET", deletedPath(sub1, "eastus", "kv-life")+kv, nil); r.Code != 404 {
		t.Fatalf("wrong location = %d", r.Code)
	}

	t.Run("fail/recover checks", func(t *testing.T) {
		for _, tc := range []struct {
			path, loc string
			status    int
		}{
			{vaultPath(sub1, "rg2", "kv-life"), "westeurope", 400},
			{vaultPath(sub1, "rg1", "kv-life"), "eastus", 400},
			{vaultPath(sub2, "rg1", "kv-life"), "westeurope", 409},
			{vaultPath(sub1, "rg1", "kv-none"), "westeurope", 404},
		} {
			b := vaultReq(set("createMode", "recover"))
			b["location"] = tc.loc
			if r := e.Do("PUT", tc.path+kv, b); r.Code != tc.status {
				t.Fatalf("%s in %s: got %d %s", tc.path, tc.loc, r.Code, r.Body.String())
			}
		}
	})
	// Recover: same InternalID, same properties.
	r := e.Must("PUT", vaultPath(sub1, "rg1", "kv-life")+kv, map[string]any{"location": "westeurope",
		"properties": map[string]any{"createMode": "recover"}}, 200)
	if p := r.JSON(t)["properties"].(map[string]any); p["softDeleteRetentionInDays"] != float64(30) {
		t.Fatalf("recovered %v", p)
	}
	if e.internalID("kv-life") != id1 {
		t.Fatal("recovery changed the InternalID")
	}
	if dl := e.Must("GET", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/deletedVaults"+kv, nil, 200).JSON(t)["value"].([]any); len(dl) != 0 {
		t.Fatalf("recovered vault still listed deleted: %v", dl)
	}
	if r := e.Do("PUT", vaultPath(sub1, "rg1", "kv-life")+kv, vaultReq(set("createMode", "recover"))); r.Code != 409 {
		t.Fatalf("recover of an active vault = %d", r.Code)
	}
	if r := e.Do("POST", deletedPath(sub1, "westeurope", "kv-life")+"/purge"+kv, nil); r.Code != 404 {
		t.Fatalf("purge of active vault = %d", r.Code)
	}

	// Delete again and purge.
	e.Must("DELETE", vaultPath(sub1, "rg1", "kv-life")+kv, nil, 200)
	m := e.purgeAndWait(sub1, "westeurope", "kv-life")
	if m["status"] != "Succeeded" {
		t.Fatalf("purge %v", m)
	}
	if got := e.purger.list(); len(got) != 1 || got[0] != id1 {
		t.Fatalf("data purged for %v, want [%s]", got, id1)
	}
	if r := e.Do("GET", deletedPath(sub1, "westeurope", "kv-life")+kv, nil); r.Code != 404 {
		t.Fatalf("purged vault still there: %d", r.Code)
	}
}

func TestPurgeFailureKeepsVault(t *testing.T) {
	e := newEnv(t, arm.Options{})
	e.create(sub1, "rg1", "kv-stuck")
	e.Must("DELETE", vaultPath(sub1, "rg1", "kv-stuck")+kv, nil, 200)
	e.purger.err = errors.New("disk on fire")
	m := e.purgeAndWait(sub1, "westeurope", "kv-stuck")
	if m["status"] != "Failed" || m["error"].(map[string]any)["code"] != "InternalError" ||
		strings.Contains(fmt.Sprint(m), "disk on fire") {
		t.Fatalf("purge %v", m)
	}
	e.Must("GET", deletedPath(sub1, "westeurope", "kv-stuck")+kv, nil, 200)
	e.purger.err = nil
	if m := e.purgeAndWait(sub1, "westeurope", "kv-stuck"); m["status"] != "Succeeded" {
		t.Fatalf("retry %v", m)
	}
}

func TestPurgeProtection(t *testing.T) {
	e := newEnv(t, arm.Options{})
	e.create(sub1, "rg1", "kv-pp", set("enablePurgeProtection", true), set("softDeleteRetentionInDays", 7))
	path := vaultPath(sub1, "rg1", "kv-pp") + kv
	for _, tc := range []struct {
		name, method string
		body         map[string]any
	}{
		{"fail/patch disable", "PATCH", map[string]any{"properties": map[string]any{"enablePurgeProtection": false}}},
		{"fail/put disable", "PUT", vaultReq(set("enablePurgeProtection", false))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do(tc.method, path, tc.body)
			if r.Code != 400 || !strings.Contains(r.ErrMessage(t), "cannot be disabled") {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	if p := e.Must("GET", path, nil, 200).JSON(t)["properties"].(map[string]any); p["enablePurgeProtection"] != true {
		t.Fatalf("props %v", p)
	}
	if vi, _ := e.kv.LookupVault(context.Background(), "kv-pp"); !vi.EnablePurgeProtection {
		t.Fatal("info lacks purge protection")
	}
	e.Must("DELETE", path, nil, 200)
	t.Run("fail/purge before scheduled date", func(t *testing.T) {
		r := e.Do("POST", deletedPath(sub1, "westeurope", "kv-pp")+"/purge"+kv, nil)
		if r.Code != 409 || !strings.Contains(r.ErrMessage(t), "purge protection") {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
		if len(e.purger.list()) != 0 {
			t.Fatal("data purged despite protection")
		}
	})
	t.Run("ok/purge after scheduled date", func(t *testing.T) {
		e.Clock.Advance(7*24*time.Hour + time.Second)
		if m := e.purgeAndWait(sub1, "westeurope", "kv-pp"); m["status"] != "Succeeded" {
			t.Fatalf("purge %v", m)
		}
	})
}

func TestRetentionImmutable(t *testing.T) {
	e := newEnv(t, arm.Options{})
	e.create(sub1, "rg1", "kv-ret", set("softDeleteRetentionInDays", 7))
	path := vaultPath(sub1, "rg1", "kv-ret") + kv
	r := e.Do("PATCH", path, map[string]any{"properties": map[string]any{"softDeleteRetentionInDays": 30}})
	if r.Code != 400 || !strings.Contains(r.ErrMessage(t), "cannot be changed") {
		t.Fatalf("got %d %s", r.Code, r.Body.String())
	}
	e.Must("PUT", path, vaultReq(set("softDeleteRetentionInDays", 7)), 200)
	e.Must("PUT", path, vaultReq(), 200) // absent keeps it
	if p := e.Must("GET", path, nil, 200).JSON(t)["properties"].(map[string]any); p["softDeleteRetentionInDays"] != float64(7) {
		t.Fatalf("props %v", p)
	}
}

func TestPurgeExpired(t *testing.T) {
	e := newEnv(t, arm.Options{})
	ctx := context.Background()
	e.create(sub1, "rg1", "kv-seven", set("softDeleteRetentionInDays", 7), set("enablePurgeProtection", true))
	e.create(sub2, "rg1", "kv-thirty", set("softDeleteRetentionInDays", 30))
	e.create(sub1, "rg1", "kv-active", set("softDeleteRetentionInDays", 7))
	seven, thirty := e.internalID("kv-seven"), e.internalID("kv-thirty")
	e.Must("DELETE", vaultPath(sub1, "rg1", "kv-seven")+kv, nil, 200)
	e.Must("DELETE", vaultPath(sub2, "rg1", "kv-thirty")+kv, nil, 200)

	steps := []struct {
		name    string
		advance time.Duration
		want    int
		purged  []string
	}{
		{"ok/nothing due yet", 6 * 24 * time.Hour, 0, nil},
		{"ok/seven days passed (purge protection does not stop retention)", 24 * time.Hour, 1, []string{seven}},
		{"ok/nothing more", time.Hour, 0, []string{seven}},
		{"ok/thirty days passed", 23 * 24 * time.Hour, 1, []string{seven, thirty}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			e.Clock.Advance(st.advance)
			n, err := e.kv.PurgeExpired(ctx)
			if err != nil || n != st.want {
				t.Fatalf("PurgeExpired = %d, %v; want %d", n, err, st.want)
			}
			if got := e.purger.list(); fmt.Sprint(got) != fmt.Sprint(st.purged) && !(len(got) == 0 && len(st.purged) == 0) {
				t.Fatalf("purged %v, want %v", got, st.purged)
			}
		})
	}
	if _, err := e.kv.LookupVault(ctx, "kv-active"); err != nil {
		t.Fatalf("active vault touched: %v", err)
	}
}

func TestAccessPolicies(t *testing.T) {
	e := newEnv(t, arm.Options{})
	const o2 = "77777777-7777-7777-7777-777777777777"
	ap := func(objectID string, perms map[string]any) map[string]any {
		return map[string]any{"tenantId": tenant1, "objectId": objectID, "permissions": perms}
	}
	e.create(sub1, "rg1", "kv-ap", set("accessPolicies", []any{ap(oid, map[string]any{"secrets": []string{"get"}})}))
	edit := func(kind string, pols ...any) result {
		return e.Do("PUT", vaultPath(sub1, "rg1", "kv-ap")+"/accessPolicies/"+kind+kv,
			map[string]any{"properties": map[string]any{"accessPolicies": pols}})
	}
	secrets := func() map[string]string {
		vi, err := e.kv.LookupVault(context.Background(), "kv-ap")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, p := range vi.AccessPolicies {
			out[p.ObjectID] = strings.Join(p.Permissions.Secrets, ",")
		}
		return out
	}
	steps := []struct {
		name   string
		kind   string
		pols   []any
		status int
		want   map[string]string
	}{
		{"ok/add merges into existing entry", "add", []any{ap(oid, map[string]any{"secrets": []string{"list", "GET"}})}, 200,
			map[string]string{oid: "get,list"}},
		{"ok/add appends new principal", "add", []any{ap(o2, map[string]any{"secrets": []string{"set"}})}, 200,
			map[string]string{oid: "get,list", o2: "set"}},
		{"ok/remove takes permissions away", "remove", []any{ap(oid, map[string]any{"secrets": []string{"get"}})}, 200,
			map[string]string{oid: "list", o2: "set"}},
		{"ok/remove drops emptied entry", "remove", []any{ap(o2, map[string]any{"secrets": []string{"set"}})}, 200,
			map[string]string{oid: "list"}},
		{"ok/replace sets the whole list", "replace", []any{ap(o2, map[string]any{"secrets": []string{"all"}})}, 200,
			map[string]string{o2: "all"}},
		{"ok/remove whole entry without permissions", "Remove", []any{ap(o2, map[string]any{})}, 200, map[string]string{}},
		{"fail/bad kind", "merge", []any{}, 404, map[string]string{}},
		{"fail/bad permission", "add", []any{ap(o2, map[string]any{"keys": []string{"explode"}})}, 400, map[string]string{}},
		{"fail/bad object id", "add", []any{ap("nobody", map[string]any{"keys": []string{"get"}})}, 400, map[string]string{}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := edit(st.kind, st.pols...)
			if r.Code != st.status {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			if st.status == 200 {
				m := r.JSON(t)
				if m["type"] != "Microsoft.KeyVault/vaults/accessPolicies" || len(m["properties"].(map[string]any)["accessPolicies"].([]any)) != len(st.want) {
					t.Fatalf("response %v", m)
				}
			}
			if got := secrets(); fmt.Sprint(got) != fmt.Sprint(st.want) {
				t.Fatalf("policies %v, want %v", got, st.want)
			}
		})
	}
	t.Run("fail/missing vault", func(t *testing.T) {
		r := e.Do("PUT", vaultPath(sub1, "rg1", "nope")+"/accessPolicies/add"+kv, map[string]any{"properties": map[string]any{"accessPolicies": []any{}}})
		if r.Code != 404 {
			t.Fatalf("got %d", r.Code)
		}
	})
}

func TestListPaging(t *testing.T) {
	e := newEnv(t, arm.Options{})
	for i := range 5 {
		e.create(sub1, "rg1", fmt.Sprintf("kv-a%d", i))
	}
	e.create(sub1, "rg2", "kv-b0")
	e.create(sub1, "rg2", "kv-b1")
	e.create(sub2, "rg1", "kv-other")
	e.create(sub1, "rg1", "kv-gone")
	e.Must("DELETE", vaultPath(sub1, "rg1", "kv-gone")+kv, nil, 200)
	collect := func(first string) ([]string, int) {
		var names []string
		pages := 0
		for next := first; next != ""; {
			m := e.Must("GET", next, nil, 200).JSON(t)
			pages++
			for _, v := range m["value"].([]any) {
				names = append(names, v.(map[string]any)["name"].(string))
			}
			next, _ = m["nextLink"].(string)
			if next != "" && !strings.HasPrefix(next, base+"/subscriptions/") {
				t.Fatalf("nextLink %q not absolute", next)
			}
			if pages > 20 {
				t.Fatal("paging does not end")
			}
		}
		return names, pages
	}
	tests := []struct {
		name  string
		path  string
		want  string
		pages int
	}{
		{"ok/by group", rgPath(sub1, "rg1") + "/providers/Microsoft.KeyVault/vaults" + kv + "&$top=2", "kv-a0,kv-a1,kv-a2,kv-a3,kv-a4", 3},
		{"ok/by subscription", "/subscriptions/" + sub1 + "/providers/Microsoft.KeyVault/vaults" + kv + "&$top=3",
			"kv-a0,kv-a1,kv-a2,kv-a3,kv-a4,kv-b0,kv-b1", 3},
		{"ok/generic list as armkeyvault sends it", "/subscriptions/" + sub1 + "/resources?api-version=2015-11-01&$top=4&$filter=" +
			url.QueryEscape("resourceType eq 'Microsoft.KeyVault/vaults'"), "kv-a0,kv-a1,kv-a2,kv-a3,kv-a4,kv-b0,kv-b1", 2},
		{"ok/other subscription", "/subscriptions/" + sub2 + "/providers/Microsoft.KeyVault/vaults" + kv, "kv-other", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			names, pages := collect(tc.path)
			if strings.Join(names, ",") != tc.want || pages != tc.pages {
				t.Fatalf("names %v in %d pages, want %s in %d", names, pages, tc.want, tc.pages)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, arm.Options{})
	e.create(sub1, "rg1", "kv-auth")
	path := vaultPath(sub1, "rg1", "kv-auth")
	t.Run("fail/no principal", func(t *testing.T) {
		r := e.DoAs(nil, "GET", path+kv, nil)
		if r.Code != 401 || r.ErrCode(t) != "AuthenticationFailed" || !strings.Contains(r.Header().Get("WWW-Authenticate"), `authorization_uri="`+base+"/"+tenant1+`"`) {
			t.Fatalf("got %d %v %s", r.Code, r.Header(), r.Body.String())
		}
	})
	for _, tc := range []struct {
		name, method, path, action, scope string
	}{
		{"fail/write", "PUT", path, "Microsoft.KeyVault/vaults/write", path},
		{"fail/delete", "DELETE", path, "Microsoft.KeyVault/vaults/delete", path},
		{"fail/access policy", "PUT", path + "/accessPolicies/add", "Microsoft.KeyVault/vaults/accessPolicies/write", path + "/accessPolicies/add"},
		{"fail/purge", "POST", deletedPath(sub1, "westeurope", "kv-auth") + "/purge", "Microsoft.KeyVault/locations/deletedVaults/purge/action",
			deletedPath(sub1, "westeurope", "kv-auth")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.dec.Set(tc.action, true)
			defer e.dec.Set(tc.action, false)
			r := e.Do(tc.method, tc.path+kv, vaultReq())
			want := fmt.Sprintf("The client '%s' with object id '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.",
				oid, oid, tc.action, tc.scope)
			if r.Code != 403 || r.ErrCode(t) != "AuthorizationFailed" || !strings.HasPrefix(r.ErrMessage(t), want) {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	if _, err := e.kv.LookupVault(context.Background(), "kv-auth"); err != nil {
		t.Fatal("a denied delete deleted the vault")
	}
}

func TestResourceGroupDeleteSoftDeletesVaults(t *testing.T) {
	e := newEnv(t, arm.Options{SyncOperations: true})
	e.create(sub1, "rg2", "kv-rg-a")
	e.create(sub1, "rg2", "kv-rg-b")
	e.create(sub1, "rg1", "kv-rg-keep")
	r := e.Must("DELETE", rgPath(sub1, "rg2")+rgV, nil, 202)
	e.Must("GET", r.Header().Get("Location"), nil, 204)
	dl := e.Must("GET", "/subscriptions/"+sub1+"/providers/Microsoft.KeyVault/deletedVaults"+kv, nil, 200).JSON(t)["value"].([]any)
	if len(dl) != 2 {
		t.Fatalf("deleted %v", dl)
	}
	if _, err := e.kv.LookupVault(context.Background(), "kv-rg-keep"); err != nil {
		t.Fatal("vault in another group deleted")
	}
	// Recover into a re-created group.
	e.Must("PUT", rgPath(sub1, "rg2")+rgV, map[string]any{"location": "westeurope"}, 201)
	e.Must("PUT", vaultPath(sub1, "rg2", "kv-rg-a")+kv, vaultReq(set("createMode", "recover")), 200)
}
