package vault

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now().Unix()
	base := "https://v1.vault.localhost:8443"

	set1 := e.mustSet("app-db", `{"value":"first","contentType":"text/plain","tags":{"env":"dev"},"attributes":{"enabled":true}}`)
	v1 := versionOf(t, set1)
	if len(v1) != 32 || set1["id"] != base+"/secrets/app-db/"+v1 || set1["value"] != "first" || set1["contentType"] != "text/plain" {
		t.Fatalf("set bundle %v", set1)
	}
	if attr(set1, "created") != float64(now) || attr(set1, "updated") != float64(now) ||
		attr(set1, "recoveryLevel") != "Recoverable+Purgeable" || attr(set1, "recoverableDays") != float64(90) {
		t.Fatalf("attributes %v", set1["attributes"])
	}
	if _, ok := set1["managed"]; ok {
		t.Fatalf("plain secret reported managed")
	}
	e.clk.Advance(time.Minute)
	v2 := versionOf(t, e.mustSet("app-db", `{"value":"second"}`))
	if v2 == v1 {
		t.Fatal("same version twice")
	}

	for _, path := range []string{"/secrets/app-db", "/secrets/app-db/", "/secrets/APP-DB/"} {
		code, m := e.do("GET", path, "")
		if code != 200 || m["value"] != "second" || versionOf(t, m) != v2 {
			t.Fatalf("GET %s: %d %v", path, code, m)
		}
	}
	code, m := e.do("GET", "/secrets/app-db/"+v1, "")
	if code != 200 || m["value"] != "first" || m["tags"].(map[string]any)["env"] != "dev" {
		t.Fatalf("get v1: %d %v", code, m)
	}

	// Update a past version, then the latest through the empty version.
	code, m = e.do("PATCH", "/secrets/app-db/"+v1, `{"contentType":"x","tags":{"a":"b"},"attributes":{"exp":4102444800}}`)
	if code != 200 || m["contentType"] != "x" || attr(m, "exp") != float64(4102444800) || m["value"] != nil {
		t.Fatalf("patch v1: %d %v", code, m)
	}
	code, m = e.do("PATCH", "/secrets/app-db/", `{"attributes":{"enabled":false}}`)
	if code != 200 || versionOf(t, m) != v2 || attr(m, "enabled") != false || attr(m, "updated") != float64(now+60) {
		t.Fatalf("patch latest: %d %v", code, m)
	}
	// The list shows the latest version's state (read from the head).
	code, m = e.do("GET", "/secrets", "")
	items := m["value"].([]any)
	if code != 200 || len(items) != 1 {
		t.Fatalf("list: %d %v", code, m)
	}
	it := items[0].(map[string]any)
	if it["id"] != base+"/secrets/app-db" || attr(it, "enabled") != false || it["value"] != nil {
		t.Fatalf("list item %v", it)
	}
	if m["nextLink"] != nil {
		t.Fatalf("nextLink on the only page: %v", m["nextLink"])
	}
	e.do("PATCH", "/secrets/app-db", `{"attributes":{"enabled":true}}`)

	code, m = e.do("GET", "/secrets/app-db/versions", "")
	if code != 200 || len(m["value"].([]any)) != 2 {
		t.Fatalf("versions: %d %v", code, m)
	}

	// Soft delete.
	e.clk.Advance(time.Hour)
	del := e.clk.Now().Unix()
	code, m = e.do("DELETE", "/secrets/app-db", "")
	if code != 200 || m["recoveryId"] != base+"/deletedsecrets/app-db" || m["deletedDate"] != float64(del) ||
		m["scheduledPurgeDate"] != float64(del+90*86400) || versionOf(t, m) != v2 || m["value"] != nil {
		t.Fatalf("delete: %d %v", code, m)
	}
	for _, path := range []string{"/secrets/app-db", "/secrets/app-db/" + v1, "/secrets/app-db/versions"} {
		w := e.serve(call{method: "GET", target: path})
		if c, _, msg := errCode(t, w); w.Code != 404 || c != "SecretNotFound" || !strings.HasPrefix(msg, "A secret with (name/id) app-db") {
			t.Fatalf("GET %s after delete: %d %s", path, w.Code, msg)
		}
	}
	w := e.serve(call{method: "PUT", target: "/secrets/app-db", body: `{"value":"again"}`})
	if c, inner, msg := errCode(t, w); w.Code != 409 || c != "Conflict" || inner != "ObjectIsDeletedButRecoverable" ||
		msg != "Secret app-db is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged." {
		t.Fatalf("set deleted name: %d %s %s %q", w.Code, c, inner, msg)
	}
	code, m = e.do("GET", "/deletedsecrets/app-db", "")
	if code != 200 || m["recoveryId"] != base+"/deletedsecrets/app-db" {
		t.Fatalf("get deleted: %d %v", code, m)
	}
	code, m = e.do("GET", "/deletedsecrets", "")
	if code != 200 || len(m["value"].([]any)) != 1 {
		t.Fatalf("list deleted: %d %v", code, m)
	}

	// Recover brings every version back.
	code, m = e.do("POST", "/deletedsecrets/app-db/recover", "")
	if code != 200 || versionOf(t, m) != v2 {
		t.Fatalf("recover: %d %v", code, m)
	}
	if code, m = e.do("GET", "/secrets/app-db/"+v1, ""); code != 200 || m["value"] != "first" {
		t.Fatalf("old version after recover: %d %v", code, m)
	}
	w = e.serve(call{method: "POST", target: "/deletedsecrets/app-db/recover"})
	if c, _, msg := errCode(t, w); w.Code != 404 || c != "SecretNotFound" || msg != "Deleted Secret not found: app-db" {
		t.Fatalf("recover live secret: %d %s", w.Code, msg)
	}

	// Purge removes every version.
	e.do("DELETE", "/secrets/app-db", "")
	if w := e.serve(call{method: "DELETE", target: "/deletedsecrets/app-db"}); w.Code != 204 || w.Body.Len() != 0 {
		t.Fatalf("purge: %d %s", w.Code, w.Body)
	}
	for k := range e.snapshot() {
		if strings.HasPrefix(k, "vault/") {
			t.Fatalf("record left after purge: %s", k)
		}
	}
	if w := e.serve(call{method: "GET", target: "/deletedsecrets/app-db"}); w.Code != 404 {
		t.Fatalf("get purged: %d", w.Code)
	}
	e.mustSet("app-db", `{"value":"reborn"}`)
}

func TestAPIVersions(t *testing.T) {
	e := newEnv(t)
	for i, v := range supportedAPIVersions {
		t.Run("ok/"+v, func(t *testing.T) {
			name := fmt.Sprintf("s%d", i)
			w := e.serve(call{method: "PUT", target: "/secrets/" + name + "?api-version=" + url.QueryEscape(v), body: `{"value":"x"}`})
			if w.Code != 200 {
				t.Fatalf("set: %d %s", w.Code, w.Body)
			}
			w = e.serve(call{method: "GET", target: "/secrets/" + name + "/?api-version=" + url.QueryEscape(v)})
			m := decodeMap(t, w)
			if w.Code != 200 || m["value"] != "x" {
				t.Fatalf("get: %d %v", w.Code, m)
			}
			_, has := m["attributes"].(map[string]any)["recoverableDays"]
			if has != (v != "7.0") {
				t.Fatalf("recoverableDays present=%v for %s", has, v)
			}
		})
	}
	for _, tc := range []struct{ name, q, want string }{
		{"fail/missing", "?api-version=", "The 'api-version' query parameter is missing."},
		{"fail/unknown", "?api-version=2016-10-01", "The specified version (2016-10-01) is not recognized. Consider using the latest supported version (2026-04-01)."},
		{"fail/future", "?api-version=2026-07-01-preview", "is not recognized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			w := e.serve(call{method: "PUT", target: "/secrets/nope" + tc.q, body: `{"value":"x"}`})
			c, _, msg := errCode(t, w)
			if w.Code != 400 || c != "BadParameter" || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "7.0, 7.1") {
				t.Fatalf("%d %s %q", w.Code, c, msg)
			}
			if len(e.snapshot()) != len(before) {
				t.Fatal("store changed")
			}
		})
	}
}

func TestPaging(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.mustSet(fmt.Sprintf("sec-%d", i), `{"value":"x"}`)
	}
	for range 4 {
		e.mustSet("sec-3", `{"value":"y"}`)
	}
	collect := func(first string) ([]string, int) {
		t.Helper()
		var ids []string
		pages := 0
		target := first
		for target != "" {
			w := e.serve(call{method: "GET", target: target})
			m := decodeMap(t, w)
			if w.Code != 200 {
				t.Fatalf("%s: %d %v", target, w.Code, m)
			}
			pages++
			for _, it := range m["value"].([]any) {
				ids = append(ids, it.(map[string]any)["id"].(string))
			}
			target = ""
			if nl, ok := m["nextLink"].(string); ok {
				u, err := url.Parse(nl)
				if err != nil || u.Scheme != "https" || u.Host != "v1.vault.localhost:8443" ||
					u.Query().Get("api-version") != apiNew || u.Query().Get("$skiptoken") == "" || u.Query().Get("maxresults") == "" {
					t.Fatalf("nextLink %q", nl)
				}
				target = u.RequestURI()
			}
		}
		return ids, pages
	}
	ids, pages := collect("/secrets?maxresults=3")
	if len(ids) != 7 || pages != 3 {
		t.Fatalf("secrets: %d ids in %d pages: %v", len(ids), pages, ids)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("duplicate %s", id)
		}
		seen[id] = true
	}
	if vids, pages := collect("/secrets/sec-3/versions?maxresults=2"); len(vids) != 5 || pages != 3 {
		t.Fatalf("versions: %d in %d pages", len(vids), pages)
	}
	for i := range 5 {
		e.do("DELETE", fmt.Sprintf("/secrets/sec-%d", i), "")
	}
	if dids, pages := collect("/deletedsecrets?maxresults=2"); len(dids) != 5 || pages != 3 {
		t.Fatalf("deleted: %d in %d pages", len(dids), pages)
	}
	if ids, pages := collect("/secrets"); len(ids) != 2 || pages != 1 {
		t.Fatalf("default page: %d in %d", len(ids), pages)
	}
	for _, q := range []string{"maxresults=0", "maxresults=26", "maxresults=abc", "$skiptoken=%25%25", "$skiptoken=QUJDX19f"} {
		t.Run("fail/"+q, func(t *testing.T) {
			w := e.serve(call{method: "GET", target: "/secrets?" + q})
			if c, _, _ := errCode(t, w); w.Code != 400 || c != "BadParameter" {
				t.Fatalf("%d %s", w.Code, c)
			}
		})
	}
}

func TestValidationChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.mustSet("keep", `{"value":"v"}`)
	tags16 := make([]string, 16)
	for i := range tags16 {
		tags16[i] = fmt.Sprintf(`"t%d":"v"`, i)
	}
	cases := []struct {
		name, method, target, body string
		status                     int
		code, msg                  string
	}{
		{"fail/name-underscore", "PUT", "/secrets/bad_name", `{"value":"v"}`, 400, "BadParameter", "The request URI contains an invalid name: bad_name"},
		{"fail/name-too-long", "PUT", "/secrets/" + strings.Repeat("a", 128), `{"value":"v"}`, 400, "BadParameter", "invalid name"},
		{"fail/name-dot", "GET", "/secrets/a.b", "", 400, "BadParameter", "invalid name"},
		{"fail/value-too-large", "PUT", "/secrets/big", `{"value":"` + strings.Repeat("x", MaxValueBytes+1) + `"}`, 400, "BadParameter", "Secret is beyond the maximum permitted length of 25600 characters."},
		{"fail/value-missing", "PUT", "/secrets/nv", `{"contentType":"x"}`, 400, "BadParameter", "'value'"},
		{"fail/value-number", "PUT", "/secrets/nv", `{"value":5}`, 400, "BadParameter", "not valid JSON"},
		{"fail/no-body", "PUT", "/secrets/nb", ``, 400, "BadParameter", "missing"},
		{"fail/bad-json", "PUT", "/secrets/bj", `{"value":`, 400, "BadParameter", "not valid JSON"},
		{"fail/trailing-json", "PUT", "/secrets/tj", `{"value":"v"} {}`, 400, "BadParameter", "not valid JSON"},
		{"fail/16-tags", "PUT", "/secrets/tags", `{"value":"v","tags":{` + strings.Join(tags16, ",") + `}}`, 400, "BadParameter", "maximum of 15"},
		{"fail/tag-value-long", "PUT", "/secrets/tags", `{"value":"v","tags":{"k":"` + strings.Repeat("v", 257) + `"}}`, 400, "BadParameter", "maximum length of 256"},
		{"fail/tag-name-long", "PUT", "/secrets/tags", `{"value":"v","tags":{"` + strings.Repeat("k", 513) + `":"v"}}`, 400, "BadParameter", "Tag names"},
		{"fail/content-type-long", "PUT", "/secrets/ct", `{"value":"v","contentType":"` + strings.Repeat("c", 256) + `"}`, 400, "BadParameter", "contentType"},
		{"fail/nbf-negative", "PUT", "/secrets/nbf", `{"value":"v","attributes":{"nbf":-1}}`, 400, "BadParameter", "nbf"},
		{"fail/exp-string", "PUT", "/secrets/exp", `{"value":"v","attributes":{"exp":"soon"}}`, 400, "BadParameter", "not valid JSON"},
		{"fail/body-too-large", "PUT", "/secrets/huge", `{"value":"v","pad":"` + strings.Repeat("p", maxSetBodyBytes) + `"}`, 413, "RequestEntityTooLarge", "exceeds"},
		{"fail/patch-16-tags", "PATCH", "/secrets/keep/", `{"tags":{` + strings.Join(tags16, ",") + `}}`, 400, "BadParameter", "maximum of 15"},
		{"fail/patch-bad-version", "PATCH", "/secrets/keep/xyz", `{}`, 404, "SecretNotFound", "keep/xyz"},
		{"fail/patch-missing", "PATCH", "/secrets/nothere/", `{}`, 404, "SecretNotFound", "nothere"},
		{"fail/delete-missing", "DELETE", "/secrets/nothere", ``, 404, "SecretNotFound", "A secret with (name/id) nothere was not found in this key vault."},
		{"fail/recover-missing", "POST", "/deletedsecrets/keep/recover", ``, 404, "SecretNotFound", "Deleted Secret not found: keep"},
		{"fail/purge-live", "DELETE", "/deletedsecrets/keep", ``, 404, "SecretNotFound", "Deleted Secret not found: keep"},
		{"fail/restore-garbage", "POST", "/secrets/restore", `{"value":"!!!"}`, 400, "BadParameter", "backup blob"},
		{"fail/restore-empty", "POST", "/secrets/restore", `{}`, 400, "BadParameter", "required"},
		{"fail/unknown-route", "GET", "/storage", ``, 404, "NotFound", "not supported"},
		{"fail/wrong-method", "POST", "/secrets", ``, 405, "MethodNotAllowed", "POST"},
		{"fail/put-trailing-slash", "PUT", "/secrets/keep/", `{"value":"v"}`, 404, "NotFound", "not supported"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			w := e.serve(call{method: tc.method, target: tc.target, body: tc.body})
			c, _, msg := errCode(t, w)
			if w.Code != tc.status || c != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("%d %s %q", w.Code, c, clip(msg, 300))
			}
			after := e.snapshot()
			if len(after) != len(before) {
				t.Fatalf("store changed: %d -> %d records", len(before), len(after))
			}
			for k, v := range before {
				if after[k] != v {
					t.Fatalf("record %s changed", k)
				}
			}
		})
	}
	// A value of exactly the limit is accepted, with tags at their limits.
	tags15 := make([]string, 15)
	for i := range tags15 {
		tags15[i] = fmt.Sprintf(`"t%d":"%s"`, i, strings.Repeat("v", 256))
	}
	e.mustSet("max", `{"value":"`+strings.Repeat("x", MaxValueBytes)+`","tags":{`+strings.Join(tags15, ",")+`}}`)
	// A name of exactly 127 characters is accepted and reads back.
	long := strings.Repeat("a-Z9", 31) + "xyz"
	e.mustSet(long, `{"value":"v"}`)
	if w := e.serve(call{method: "GET", target: "/secrets/" + long + "/"}); w.Code != 200 {
		t.Fatalf("127-character name: GET %d %s", w.Code, w.Body)
	}
}

func TestDisabledAndValidityWindow(t *testing.T) {
	e := newEnv(t)
	now := e.clk.Now().Unix()
	e.mustSet("off", `{"value":"v","attributes":{"enabled":false}}`)
	e.mustSet("later", fmt.Sprintf(`{"value":"v","attributes":{"nbf":%d}}`, now+3600))
	e.mustSet("gone", fmt.Sprintf(`{"value":"v","attributes":{"exp":%d}}`, now-1))
	cases := []struct{ name, path, inner, msg string }{
		{"fail/disabled", "/secrets/off", "SecretDisabled", "Operation get is not allowed on a disabled secret."},
		{"fail/not-yet-valid", "/secrets/later/", "SecretNotYetValid", "Operation get is not allowed on a secret that is not yet valid."},
		{"fail/expired", "/secrets/gone", "SecretExpired", "Operation get is not allowed on an expired secret."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := e.serve(call{method: "GET", target: tc.path})
			c, inner, msg := errCode(t, w)
			if w.Code != 403 || c != "Forbidden" || inner != tc.inner || msg != tc.msg {
				t.Fatalf("%d %s %s %q", w.Code, c, inner, msg)
			}
			if strings.Contains(w.Body.String(), `"v"`) {
				t.Fatal("value leaked")
			}
		})
	}
	// Metadata operations still work on them.
	if code, m := e.do("GET", "/secrets", ""); code != 200 || len(m["value"].([]any)) != 3 {
		t.Fatalf("list: %d %v", code, m)
	}
	e.clk.Advance(2 * time.Hour)
	if code, m := e.do("GET", "/secrets/later", ""); code != 200 || m["value"] != "v" {
		t.Fatalf("after nbf: %d %v", code, m)
	}
	if code, _ := e.do("PATCH", "/secrets/off/", `{"attributes":{"enabled":true}}`); code != 200 {
		t.Fatalf("enable: %d", code)
	}
	if code, _ := e.do("GET", "/secrets/off", ""); code != 200 {
		t.Fatalf("enabled get: %d", code)
	}
}

func TestRecoveryLevelsAndPurgeProtection(t *testing.T) {
	cases := []struct {
		name      string
		days      int
		protected bool
		level     string
		purge     int
	}{
		{"ok/default", 90, false, "Recoverable+Purgeable", 204},
		{"ok/unset-retention", 0, false, "Recoverable+Purgeable", 204},
		{"ok/custom", 7, false, "CustomizedRecoverable+Purgeable", 204},
		{"fail/protected", 90, true, "Recoverable", 403},
		{"fail/protected-custom", 30, true, "CustomizedRecoverable", 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := newVault("v1", tenant1)
			v.SoftDeleteRetentionInDays, v.EnablePurgeProtection = tc.days, tc.protected
			e.dir.put(v)
			m := e.mustSet("s", `{"value":"v"}`)
			days := tc.days
			if days == 0 {
				days = 90
			}
			if attr(m, "recoveryLevel") != tc.level || attr(m, "recoverableDays") != float64(days) {
				t.Fatalf("attributes %v", m["attributes"])
			}
			_, d := e.do("DELETE", "/secrets/s", "")
			if d["scheduledPurgeDate"] != float64(e.clk.Now().Unix()+int64(days)*86400) {
				t.Fatalf("scheduledPurgeDate %v", d["scheduledPurgeDate"])
			}
			w := e.serve(call{method: "DELETE", target: "/deletedsecrets/s"})
			if w.Code != tc.purge {
				t.Fatalf("purge %d %s", w.Code, w.Body)
			}
			if tc.purge == 403 {
				c, _, msg := errCode(t, w)
				if c != "Forbidden" || !strings.HasPrefix(msg, `Operation "purge" is not allowed because purge protection is enabled for this vault.`) {
					t.Fatalf("%s %q", c, msg)
				}
				if code, _ := e.do("GET", "/deletedsecrets/s", ""); code != 200 {
					t.Fatal("refused purge removed the secret")
				}
			}
		})
	}
}

func TestPurgeExpired(t *testing.T) {
	e := newEnv(t)
	v := newVault("v1", tenant1)
	v.EnablePurgeProtection = true
	v.SoftDeleteRetentionInDays = 7
	e.dir.put(v)
	e.mustSet("a", `{"value":"1"}`)
	e.mustSet("a", `{"value":"2"}`)
	e.mustSet("b", `{"value":"1"}`)
	e.mustSet("c", `{"value":"1"}`)
	e.do("DELETE", "/secrets/a", "")
	e.do("DELETE", "/secrets/b", "")
	e.do("POST", "/deletedsecrets/b/recover", "") // leaves no schedule behind
	e.clk.Advance(24 * time.Hour)
	e.do("DELETE", "/secrets/c", "")
	ctx := context.Background()

	e.clk.Advance(6*24*time.Hour - time.Second)
	if n, err := e.svc.PurgeExpired(ctx); err != nil || n != 0 {
		t.Fatalf("early purge: %d %v", n, err)
	}
	e.clk.Advance(time.Second)
	if n, err := e.svc.PurgeExpired(ctx); err != nil || n != 1 {
		t.Fatalf("purge a: %d %v", n, err)
	}
	if code, _ := e.do("GET", "/deletedsecrets/a", ""); code != 404 {
		t.Fatal("a still deleted-recoverable")
	}
	if code, _ := e.do("GET", "/deletedsecrets/c", ""); code != 200 {
		t.Fatal("c purged early")
	}
	if code, _ := e.do("GET", "/secrets/b", ""); code != 200 {
		t.Fatal("recovered b was purged")
	}
	e.clk.Advance(24 * time.Hour)
	if n, err := e.svc.PurgeExpired(ctx); err != nil || n != 1 {
		t.Fatalf("purge c: %d %v", n, err)
	}
	for k := range e.snapshot() {
		if strings.Contains(k, "/secrets/v/a/") || strings.Contains(k, "/secrets/v/c/") || strings.HasPrefix(k, purgeIndexPrefix) {
			t.Fatalf("left behind: %s", k)
		}
	}
}

func TestPurgeVaultData(t *testing.T) {
	e := newEnv(t)
	e.mustSet("a", `{"value":"1"}`)
	e.mustSet("b", `{"value":"1"}`)
	e.do("DELETE", "/secrets/b", "")
	other := newVault("v2", tenant1)
	e.dir.put(other)
	if w := e.serve(call{vault: "v2", method: "PUT", target: "/secrets/a", body: `{"value":"x"}`}); w.Code != 200 {
		t.Fatal(w.Body)
	}
	if err := e.svc.PurgeVaultData(context.Background(), "iid-v1"); err != nil {
		t.Fatal(err)
	}
	for k := range e.snapshot() {
		if strings.HasPrefix(k, "vault/iid-v1/") {
			t.Fatalf("left behind: %s", k)
		}
	}
	if w := e.serve(call{vault: "v2", method: "GET", target: "/secrets/a"}); w.Code != 200 {
		t.Fatalf("other vault damaged: %d", w.Code)
	}
	// The stale schedule of b is dropped by the purger without error.
	e.clk.Advance(91 * 24 * time.Hour)
	if n, err := e.svc.PurgeExpired(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d %v", n, err)
	}
	if err := e.svc.PurgeVaultData(context.Background(), ""); err == nil {
		t.Fatal("empty id accepted")
	}
}

func TestThrottle(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Throttle = Throttle{Window: 10 * time.Second, Transactions: 5, Creates: 2} })
	e.mustSet("a", `{"value":"1"}`)
	e.mustSet("b", `{"value":"1"}`)
	w := e.serve(call{method: "PUT", target: "/secrets/c", body: `{"value":"1"}`})
	if c, _, msg := errCode(t, w); w.Code != 429 || c != "Throttled" || msg != msgThrottled {
		t.Fatalf("third create: %d %s", w.Code, c)
	}
	if w.Header().Get("Retry-After") == "" || w.Header().Get("retry-after-ms") == "" {
		t.Fatalf("retry headers %v", w.Header())
	}
	// Reads use the general budget (2 of 5 spent; the refusal cost nothing).
	for i := range 3 {
		if code, _ := e.do("GET", "/secrets/a", ""); code != 200 {
			t.Fatalf("read %d: %d", i, code)
		}
	}
	w = e.serve(call{method: "GET", target: "/secrets/a"})
	if w.Code != 429 {
		t.Fatalf("sixth op: %d", w.Code)
	}
	// Another vault has its own budget.
	e.dir.put(newVault("v2", tenant1))
	if w := e.serve(call{vault: "v2", method: "GET", target: "/secrets"}); w.Code != 200 {
		t.Fatalf("other vault throttled: %d", w.Code)
	}
	e.clk.Advance(10 * time.Second)
	if code, _ := e.do("PUT", "/secrets/c", `{"value":"1"}`); code != 200 {
		t.Fatalf("after window: %d", code)
	}
}

func TestConcurrentSetsDistinctVersions(t *testing.T) {
	e := newEnv(t)
	const n = 20
	errs := make(chan string, n)
	for i := range n {
		go func() {
			w := e.serve(call{method: "PUT", target: "/secrets/race", body: fmt.Sprintf(`{"value":"%d"}`, i)})
			if w.Code != 200 {
				errs <- w.Body.String()
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if msg := <-errs; msg != "" {
			t.Fatal(msg)
		}
	}
	code, m := e.do("GET", "/secrets/race/versions", "")
	if code != 200 || len(m["value"].([]any)) != n {
		t.Fatalf("%d versions", len(m["value"].([]any)))
	}
	// The head names one of them, and its value is readable.
	if code, m := e.do("GET", "/secrets/race", ""); code != 200 || m["value"] == nil {
		t.Fatalf("latest: %d", code)
	}
}

func TestNoPlaintextAtRest(t *testing.T) {
	e := newEnv(t)
	const marker = "PLAINTEXT-MARKER-7f3a9c"
	e.mustSet("s", `{"value":"`+marker+`"}`)
	e.do("PATCH", "/secrets/s/", `{"contentType":"text/plain"}`)
	e.do("POST", "/secrets/s/backup", "")
	e.do("DELETE", "/secrets/s", "")
	recs, err := e.st.List(context.Background(), "", store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if strings.Contains(string(r.Value), marker) || strings.Contains(r.Key, marker) {
			t.Fatalf("plaintext in record %s", r.Key)
		}
	}
	assertNoMarkerInDir(t, e.path, marker)
}

func TestAuditInfo(t *testing.T) {
	e := newEnv(t)
	m := e.mustSet("s", `{"value":"v"}`)
	info := &principal.Info{}
	w := e.serve(call{method: "GET", target: "/secrets/s/", info: info})
	if w.Code != 200 {
		t.Fatal(w.Body)
	}
	if info.OperationName != "SecretGet" || info.OperationVersion != apiNew || info.ResourceID != vaultRG+"v1" ||
		info.ObjectID != m["id"] || !info.IsRBACAuthorized || info.ResultDescription != "" {
		t.Fatalf("%+v", info)
	}
}
