package insights

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/audit"
	"github.com/keyhaven/keyhaven/internal/azerr"
)

// The audit log ships through the provider.
var (
	_ audit.Sink  = (*Provider)(nil)
	_ audit.Namer = (*Provider)(nil)
)

func TestSettingValidation(t *testing.T) {
	e := newEnv(t)
	kv := e.vault("rg1", "kv1")
	acct := e.account("rg1", "logs1")
	logs := func(l ...map[string]any) []any {
		out := []any{}
		for _, x := range l {
			out = append(out, x)
		}
		return out
	}
	props := func(kv ...any) map[string]any {
		p := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"properties": p}
	}
	audit := map[string]any{"category": "AuditEvent", "enabled": true}
	tests := []struct {
		name     string
		resource string
		setting  string
		body     any
		status   int
		code     string
	}{
		{"ok/category", kv, "s1", auditBody(acct, 0), 200, ""},
		{"ok/category group, retention, metrics", kv, "s2", props("storageAccountId", e.account("rg1", "logs2"), "logs",
			logs(map[string]any{"categoryGroup": "allLogs", "enabled": true, "retentionPolicy": map[string]any{"enabled": true, "days": 30}}),
			"metrics", []any{map[string]any{"category": "allmetrics", "enabled": true}}), 200, ""},
		{"fail/sink reused for a category", kv, "s6", props("storageAccountId", acct, "logs",
			logs(map[string]any{"categoryGroup": "allLogs", "enabled": true, "retentionPolicy": map[string]any{"enabled": true, "days": 30}}),
			"metrics", []any{map[string]any{"category": "AllMetrics", "enabled": true}}), 400, "BadRequest"}, // sink reuse with s1
		{"ok/group to a workspace only", kv, "s3", props("workspaceId", rgPath("rg1")+"/providers/Microsoft.OperationalInsights/workspaces/w1",
			"logs", logs(map[string]any{"categoryGroup": "audit", "enabled": true})), 200, ""},
		{"fail/missing storage account", kv, "s4", auditBody(acctID("rg1", "nosuch"), 0), 400, "BadRequest"},
		{"fail/storage account in other group", kv, "s4", auditBody(acctID("rg2", "logs1"), 0), 400, "BadRequest"},
		{"fail/storage id of another type", kv, "s4", auditBody(kv, 0), 400, "LinkedInvalidPropertyId"},
		{"fail/storage id malformed", kv, "s4", auditBody("not-an-id", 0), 400, "LinkedInvalidPropertyId"},
		{"fail/no destination", kv, "s4", props("logs", logs(audit)), 400, "BadRequest"},
		{"fail/no properties", kv, "s4", map[string]any{}, 400, "BadRequest"},
		{"fail/no categories", kv, "s4", props("storageAccountId", acct), 400, "BadRequest"},
		{"fail/unknown category", kv, "s4", props("storageAccountId", acct, "logs", logs(map[string]any{"category": "Nope", "enabled": true})), 400, "BadRequest"},
		{"fail/category and group", kv, "s4", props("storageAccountId", acct, "logs",
			logs(map[string]any{"category": "AuditEvent", "categoryGroup": "audit", "enabled": true})), 400, "BadRequest"},
		{"fail/neither category nor group", kv, "s4", props("storageAccountId", acct, "logs", logs(map[string]any{"enabled": true})), 400, "BadRequest"},
		{"fail/category twice", kv, "s4", props("storageAccountId", acct, "logs",
			logs(audit, map[string]any{"categoryGroup": "audit", "enabled": true})), 400, "BadRequest"},
		{"fail/retention too long", kv, "s4", auditBody(acct, 366), 400, "BadRequest"},
		{"fail/unknown metric", kv, "s4", props("storageAccountId", acct, "metrics", []any{map[string]any{"category": "Foo", "enabled": true}}), 400, "BadRequest"},
		{"fail/bad name", kv, "a:b", auditBody(acct, 0), 400, "InvalidResourceName"},
		{"fail/resource missing", vaultID("rg1", "nosuch"), "s4", auditBody(acct, 0), 404, "ResourceNotFound"},
		{"fail/unsupported resource type", acct, "s4", auditBody(acct, 0), 400, "BadRequest"},
		{"fail/malformed body", kv, "s4", "[1]", 400, "InvalidRequestContent"},
		{"fail/malformed body, a JSON string", kv, "s4", `"[1]"`, 400, "InvalidRequestContent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("PUT", settingPath(tc.resource, tc.setting)+dsV, tc.body)
			if r.Code != tc.status || tc.code != "" && r.ErrCode(t) != tc.code {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("fail/linked authorization", func(t *testing.T) {
		e.dec.Set("Microsoft.Storage/storageAccounts/listKeys/action", true)
		defer e.dec.Set("Microsoft.Storage/storageAccounts/listKeys/action", false)
		r := e.Do("PUT", settingPath(kv, "s5")+dsV, auditBody(e.account("rg2", "theirs"), 0))
		if r.Code != 403 || r.ErrCode(t) != "LinkedAuthorizationFailed" {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
	})
	t.Run("fail/write denied", func(t *testing.T) {
		e.dec.Set("Microsoft.Insights/diagnosticSettings/write", true)
		defer e.dec.Set("Microsoft.Insights/diagnosticSettings/write", false)
		if r := e.Do("PUT", settingPath(kv, "s5")+dsV, auditBody(acct, 0)); r.Code != 403 {
			t.Fatalf("got %d", r.Code)
		}
	})
	t.Run("fail/more than five", func(t *testing.T) {
		kv2 := e.vault("rg1", "kv2")
		for i := range 5 {
			e.Must("PUT", settingPath(kv2, "n"+string(rune('0'+i)))+dsV, auditBody(e.account("rg1", "many"+string(rune('a'+i))), 0), 200)
		}
		r := e.Do("PUT", settingPath(kv2, "n5")+dsV, auditBody(acct, 0))
		if r.Code != 400 || !strings.Contains(r.Body.String(), "maximum number") {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
		// Replacing one of the five is fine.
		e.Must("PUT", settingPath(kv2, "N0")+dsV, auditBody(acct, 0), 200)
	})
}

func TestSettingCRUD(t *testing.T) {
	e := newEnv(t)
	kv := e.vault("rg1", "kv1")
	acct := e.account("rg1", "logs1")
	m := e.Must("PUT", settingPath(kv, "Audit")+dsV, auditBody(acct, 7), 200).JSON(t)
	props := m["properties"].(map[string]any)
	if m["id"] != settingPath(kv, "Audit") || m["name"] != "Audit" || m["type"] != "Microsoft.Insights/diagnosticSettings" ||
		props["storageAccountId"] != acct || len(props["logs"].([]any)) != 1 || props["metrics"] == nil {
		t.Fatalf("PUT %v", m)
	}
	if l := props["logs"].([]any)[0].(map[string]any); l["category"] != "AuditEvent" || l["retentionPolicy"].(map[string]any)["days"] != float64(7) {
		t.Fatalf("logs %v", l)
	}
	// Names match case-insensitively and keep their first spelling.
	g := e.Must("GET", settingPath(kv, "audit")+dsV, nil, 200).JSON(t)
	if g["name"] != "Audit" {
		t.Fatalf("GET %v", g)
	}
	e.Must("GET", settingPath(kv, "Audit")+"?api-version=2017-05-01-preview", nil, 200)
	e.Must("PUT", settingPath(kv, "audit")+dsV, map[string]any{"properties": map[string]any{"storageAccountId": acct,
		"logs": []any{map[string]any{"category": "auditevent", "enabled": false}}}}, 200)
	g = e.Must("GET", settingPath(kv, "Audit")+dsV, nil, 200).JSON(t)
	if l := g["properties"].(map[string]any)["logs"].([]any)[0].(map[string]any); l["category"] != "AuditEvent" || l["enabled"] != false {
		t.Fatalf("replaced %v", g)
	}
	kv2 := e.vault("rg1", "kv2")
	e.Must("PUT", settingPath(kv2, "other")+dsV, auditBody(acct, 0), 200)
	// A child ID does not see its parent's settings, nor a sibling's.
	list := e.Must("GET", kv+"/providers/Microsoft.Insights/diagnosticSettings"+dsV, nil, 200).JSON(t)["value"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "Audit" {
		t.Fatalf("list %v", list)
	}
	for _, tc := range []struct {
		name, method, path string
		status             int
	}{
		{"fail/get missing", "GET", settingPath(kv, "nope") + dsV, 404},
		{"fail/unsupported api-version", "GET", settingPath(kv, "Audit") + "?api-version=2015-07-01", 400},
		{"fail/on a subscription", "GET", "/subscriptions/" + sub1 + "/providers/Microsoft.Insights/diagnosticSettings/x" + dsV, 404},
		{"fail/patch", "PATCH", settingPath(kv, "Audit") + dsV, 405},
		{"ok/delete", "DELETE", settingPath(kv, "Audit") + dsV, 200},
		{"ok/delete again", "DELETE", settingPath(kv, "Audit") + dsV, 204},
		{"ok/gone", "GET", settingPath(kv, "Audit") + dsV, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.method == "PATCH" {
				body = map[string]any{}
			}
			if r := e.Do(tc.method, tc.path, body); r.Code != tc.status {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
		})
	}
	t.Run("fail/delete under a locked vault", func(t *testing.T) {
		e.Must("PUT", kv2+"/providers/Microsoft.Authorization/locks/keep"+lockV, map[string]any{"properties": map[string]any{"level": "CanNotDelete"}}, 201)
		r := e.Do("DELETE", settingPath(kv2, "other")+dsV, nil)
		if r.Code != 409 || r.ErrCode(t) != "ScopeLocked" {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
	})
}

func TestDestinationsAndShip(t *testing.T) {
	e := newEnv(t)
	kv := e.vault("rg1", "kv1")
	quiet := e.vault("rg1", "quiet")
	acct := e.account("rg1", "logs1")
	acct2 := e.account("rg1", "logs2")
	e.Must("PUT", settingPath(kv, "audit")+dsV, auditBody(acct, 30), 200)
	e.Must("PUT", settingPath(kv, "all")+dsV, map[string]any{"properties": map[string]any{"storageAccountId": acct2,
		"logs": []any{map[string]any{"categoryGroup": "allLogs", "enabled": true}}}}, 200)
	e.Must("PUT", settingPath(kv, "off")+dsV, map[string]any{"properties": map[string]any{"storageAccountId": acct2,
		"metrics": []any{map[string]any{"category": "AllMetrics", "enabled": true}}}}, 200)

	dests, err := e.ip.DestinationsFor(e.Ctx, strings.ToUpper(kv))
	want := []Destination{
		{SettingName: "all", StorageAccountID: acct2, Categories: []string{"AuditEvent", "AzurePolicyEvaluationDetails"}},
		{SettingName: "audit", StorageAccountID: acct, Categories: []string{"AuditEvent"}, RetentionDays: 30},
	}
	if err != nil || !reflect.DeepEqual(dests, want) {
		t.Fatalf("DestinationsFor = %+v, %v", dests, err)
	}
	if d, err := e.ip.DestinationsFor(e.Ctx, quiet); err != nil || len(d) != 0 {
		t.Fatalf("DestinationsFor(quiet) = %v, %v", d, err)
	}

	at := time.Date(2026, 3, 1, 9, 59, 59, 0, time.FixedZone("x", 3600)) // 08:59:59Z
	for i, ev := range []string{"{\n  \"n\": 1\n}", `{"n":2}`} {
		if err := e.ip.Ship(e.Ctx, kv, "AuditEvent", []byte(ev), at.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.ip.Ship(e.Ctx, kv, "AzurePolicyEvaluationDetails", []byte(`{"n":3}`), at); err != nil {
		t.Fatal(err)
	}
	upper := "resourceId=/SUBSCRIPTIONS/" + sub1 + "/RESOURCEGROUPS/RG1/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/KV1"
	hour8 := upper + "/y=2026/m=03/d=01/h=08/m=00/PT1H.json"
	hour9 := upper + "/y=2026/m=03/d=01/h=09/m=00/PT1H.json"
	if BlobPath(kv, at) != hour8 || BlobPath(kv, at.Add(time.Second)) != hour9 {
		t.Fatalf("BlobPath = %s", BlobPath(kv, at))
	}
	for _, tc := range []struct {
		name, acct, container, path, want string
	}{
		{"ok/hour 08 to setting audit", acct, "insights-logs-auditevent", hour8, "{\"n\":1}\n"},
		{"ok/hour 09 to setting audit", acct, "insights-logs-auditevent", hour9, "{\"n\":2}\n"},
		{"ok/hour 08 to setting all", acct2, "insights-logs-auditevent", hour8, "{\"n\":1}\n"},
		{"ok/policy category to its container", acct2, "insights-logs-azurepolicyevaluationdetails", hour8, "{\"n\":3}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.sp.ReadBlob(e.Ctx, tc.acct, tc.container, tc.path)
			if err != nil || string(got) != tc.want {
				t.Fatalf("ReadBlob = %q, %v", got, err)
			}
		})
	}
	t.Run("fail/policy category not in setting audit", func(t *testing.T) {
		if _, err := e.sp.ListBlobs(e.Ctx, acct, "insights-logs-azurepolicyevaluationdetails", ""); azerr.From(err).Code != "ContainerNotFound" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ok/child and extension events go to the vault's blob", func(t *testing.T) {
		for _, rid := range []string{strings.ToUpper(kv) + "/SECRETS/S1", settingPath(kv, "audit")} {
			if err := e.ip.Ship(e.Ctx, rid, "AuditEvent", []byte(`{"child":true}`), at.Add(2*time.Hour)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := e.sp.ReadBlob(e.Ctx, acct, "insights-logs-auditevent", upper+"/y=2026/m=03/d=01/h=10/m=00/PT1H.json")
		if err != nil || string(got) != "{\"child\":true}\n{\"child\":true}\n" {
			t.Fatalf("ReadBlob = %q, %v", got, err)
		}
	})
	t.Run("ok/vault without setting ships nothing", func(t *testing.T) {
		if err := e.ip.Ship(e.Ctx, quiet, "AuditEvent", []byte(`{"n":4}`), at); err != nil {
			t.Fatal(err)
		}
		for _, a := range []string{acct, acct2} {
			bl, err := e.sp.ListBlobs(e.Ctx, a, "insights-logs-auditevent", "")
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bl {
				if strings.Contains(b.Name, "QUIET") {
					t.Fatalf("shipped for quiet: %s", b.Name)
				}
			}
		}
	})
	t.Run("ok/malformed event dropped", func(t *testing.T) {
		if err := e.ip.Ship(e.Ctx, kv, "AuditEvent", []byte(`not json`), at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, _ := e.sp.ReadBlob(e.Ctx, acct, "insights-logs-auditevent", hour9)
		if string(got) != "{\"n\":2}\n" {
			t.Fatalf("hour 09 = %q", got)
		}
	})
	t.Run("ok/deleted destination skipped", func(t *testing.T) {
		e.Must("DELETE", acct2+stV, nil, 200)
		if err := e.ip.Ship(e.Ctx, kv, "AuditEvent", []byte(`{"n":5}`), at); err != nil {
			t.Fatalf("Ship with a deleted destination: %v", err)
		}
		got, _ := e.sp.ReadBlob(e.Ctx, acct, "insights-logs-auditevent", hour8)
		if string(got) != "{\"n\":1}\n{\"n\":5}\n" {
			t.Fatalf("hour 08 = %q", got)
		}
	})
}

func TestRetentionFromSettings(t *testing.T) {
	e := newEnv(t)
	kv := e.vault("rg1", "kv1")
	other := e.vault("rg1", "kv2")
	acct := e.account("rg1", "logs1")
	e.Must("PUT", settingPath(kv, "audit")+dsV, auditBody(acct, 2), 200)
	e.Must("PUT", settingPath(other, "audit")+dsV, auditBody(acct, 0), 200)
	start := e.Clock.Now()
	for _, r := range []string{kv, other} {
		if err := e.ip.Ship(e.Ctx, r, "AuditEvent", []byte(`{}`), start); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		bl, err := e.sp.ListBlobs(e.Ctx, acct, "insights-logs-auditevent", "")
		if err != nil {
			t.Fatal(err)
		}
		return len(bl)
	}
	e.Clock.Advance(24 * time.Hour)
	if n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now()); n != 0 || err != nil {
		t.Fatalf("early prune = %d, %v", n, err)
	}
	e.Clock.Advance(25 * time.Hour)
	if n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now()); n != 1 || err != nil || count() != 1 {
		t.Fatalf("prune = %d, %v; %d left", n, err, count())
	}
	// Deleting the setting removes its rule.
	if err := e.ip.Ship(e.Ctx, kv, "AuditEvent", []byte(`{}`), e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.Must("DELETE", settingPath(kv, "audit")+dsV, nil, 200)
	e.Clock.Advance(30 * 24 * time.Hour)
	if n, err := e.sp.PruneBlobs(e.Ctx, e.Clock.Now()); n != 0 || err != nil || count() != 2 {
		t.Fatalf("prune after delete = %d, %v; %d left", n, err, count())
	}
}
