package vault

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/store"
)

func TestKeyRotationPolicy(t *testing.T) {
	e := newEnv(t)
	if code, m := e.do("POST", "/keys/k/create", `{"kty":"EC","crv":"P-256"}`); code != 200 {
		t.Fatalf("create: %d %v", code, m)
	}
	// A key without a policy answers Key Vault's default.
	code, p := e.do("GET", "/keys/k/rotationpolicy", "")
	if code != 200 || p["id"] != nil || p["attributes"] != nil {
		t.Fatalf("default policy: %d %v", code, p)
	}
	if la := p["lifetimeActions"].([]any); len(la) != 1 || la[0].(map[string]any)["action"].(map[string]any)["type"] != "Notify" {
		t.Fatalf("default lifetime actions %v", la)
	}
	tests := []struct {
		name, body string
		code       int
		msg        string
	}{
		{"ok/rotate-after-create", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"rotate"}},{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Notify"}}],"attributes":{"expiryTime":"P2Y"}}`, 200, ""},
		{"ok/rotate-before-expiry", `{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P3M"}}`, 200, ""},
		{"ok/no-actions", `{"lifetimeActions":[]}`, 200, ""},
		{"fail/three-actions", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}},{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Notify"}},{"trigger":{"timeBeforeExpiry":"P20D"},"action":{"type":"Notify"}}]}`, 400, "at most two"},
		{"fail/two-rotates", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}},{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Rotate"}}]}`, 400, "at most one Rotate"},
		{"fail/unknown-action", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Explode"}}]}`, 400, "Rotate or Notify"},
		{"fail/both-triggers", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D","timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}]}`, 400, "exactly one"},
		{"fail/no-trigger", `{"lifetimeActions":[{"action":{"type":"Rotate"}}]}`, 400, "'trigger'"},
		{"fail/notify-after-create", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Notify"}}]}`, 400, "Notify action"},
		{"fail/bad-duration", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"90 days"},"action":{"type":"Rotate"}}]}`, 400, "ISO 8601"},
		{"fail/too-soon", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P6D"},"action":{"type":"Rotate"}}]}`, 400, "at least 7 days"},
		{"fail/short-expiry", `{"lifetimeActions":[],"attributes":{"expiryTime":"P27D"}}`, 400, "at least 28 days"},
		// P1M is 28 days from February 1: the rotation would come before
		// the version's making, every pass, all February.
		{"fail/month-expiry-30-days-before", `{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P1M"}}`, 400, "shorter than 'expiryTime'"},
		{"fail/rotates-after-expiry", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P60D"}}`, 400, "shorter than 'expiryTime'"},
		{"fail/not-json", `{"lifetimeActions":`, 400, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, m := e.do("PUT", "/keys/k/rotationpolicy", tc.body)
			if code != tc.code {
				t.Fatalf("PUT: %d %v, want %d", code, m, tc.code)
			}
			if code != 200 {
				if msg, _ := m["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.msg) {
					t.Fatalf("message %q, want it to contain %q", msg, tc.msg)
				}
				return
			}
			_, got := e.do("GET", "/keys/k/rotationpolicy", "")
			attrs, _ := got["attributes"].(map[string]any)
			if got["id"] != "https://v1.vault.localhost:8443/keys/k/rotationpolicy" || attrs["created"] == nil || attrs["updated"] == nil {
				t.Fatalf("stored policy %v", got)
			}
		})
	}
	if code, _ := e.do("GET", "/keys/missing/rotationpolicy", ""); code != 404 {
		t.Fatalf("policy of a missing key: %d", code)
	}
	// A certificate's key rotates with its certificate, never by policy.
	e.mustCert("c", selfPolicy(""))
	if code, m := e.do("PUT", "/keys/c/rotationpolicy", `{"lifetimeActions":[]}`); code != 403 {
		t.Fatalf("policy on a certificate's key: %d %v", code, m)
	}
}

// TestKeyAutoRotate drives RenewDue with a fake clock: a Rotate action after
// creation rotates each version when it falls due (once), giving the new
// version the policy's expiry; one before expiry waits for a version with
// an expiry; a manual rotate follows the policy too; purge drops the policy.
func TestKeyAutoRotate(t *testing.T) {
	day := 24 * time.Hour
	e := newEnv(t)
	rotated := func(want int) []Renewed {
		t.Helper()
		got, err := e.svc.RenewDue(t.Context())
		if err != nil || len(got) != want {
			t.Fatalf("RenewDue = %v, %v; want %d", got, err, want)
		}
		return got
	}
	versions := func(name string) int {
		t.Helper()
		_, v := e.do("GET", "/keys/"+name+"/versions", "")
		return len(v["value"].([]any))
	}
	for _, n := range []string{"after", "before"} {
		if code, m := e.do("POST", "/keys/"+n+"/create", `{"kty":"RSA","key_size":2048,"key_ops":["sign","verify"],"tags":{"app":"x"}}`); code != 200 {
			t.Fatalf("create %s: %d %v", n, code, m)
		}
	}
	if code, m := e.do("PUT", "/keys/after/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P90D"}}`); code != 200 {
		t.Fatalf("policy: %d %v", code, m)
	}
	if code, m := e.do("PUT", "/keys/before/rotationpolicy", `{"lifetimeActions":[{"trigger":{"timeBeforeExpiry":"P30D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P90D"}}`); code != 200 {
		t.Fatalf("policy: %d %v", code, m)
	}
	e.clk.Advance(30*day - time.Hour)
	rotated(0)
	e.clk.Advance(2 * time.Hour)
	got := rotated(1)
	if got[0].Kind != RenewedKey || !strings.Contains(got[0].ID, "/keys/after/") {
		t.Fatalf("rotated %v, want the key 'after'", got)
	}
	rotated(0)
	_, k := e.do("GET", "/keys/after", "")
	attrs := k["attributes"].(map[string]any)
	wantExp := e.clk.Now().AddDate(0, 0, 90).Unix()
	if exp, _ := attrs["exp"].(float64); int64(exp) != wantExp || k["key"].(map[string]any)["kid"] != got[0].ID {
		t.Fatalf("rotated version: exp %v (want %d), kid %v", attrs["exp"], wantExp, k["key"].(map[string]any)["kid"])
	}
	if ops := k["key"].(map[string]any)["key_ops"].([]any); len(ops) != 2 || k["tags"].(map[string]any)["app"] != "x" {
		t.Fatalf("rotated version lost its operations or tags: %v %v", ops, k["tags"])
	}
	// 'before' has no expiry on its first version, so nothing is due; a
	// manual rotate gives the new version the policy's 90 days, and it
	// rotates 30 days before they end.
	if versions("before") != 1 {
		t.Fatal("'before' rotated without an expiry")
	}
	if code, m := e.do("POST", "/keys/before/rotate", ""); code != 200 || m["attributes"].(map[string]any)["exp"] == nil {
		t.Fatalf("manual rotate: %d %v", code, m)
	}
	e.clk.Advance(60*day - time.Hour)
	if got := rotated(1); !strings.Contains(got[0].ID, "/keys/after/") { // the second version of 'after', 30 days on
		t.Fatalf("rotated %v", got)
	}
	e.clk.Advance(2 * time.Hour)
	if got := rotated(1); !strings.Contains(got[0].ID, "/keys/before/") {
		t.Fatalf("rotated %v", got)
	}
	if versions("after") != 3 || versions("before") != 3 {
		t.Fatalf("versions after %d, before %d; want 3 each", versions("after"), versions("before"))
	}
	// Deleted when due: not rotated; recovered: at once. Purged: its policy goes.
	if code, _ := e.do("DELETE", "/keys/after", ""); code != 200 {
		t.Fatal("delete")
	}
	e.clk.Advance(31 * day)
	if got := rotated(0); len(got) != 0 {
		t.Fatal("a deleted key rotated")
	}
	if code, _ := e.do("POST", "/deletedkeys/after/recover", ""); code != 200 {
		t.Fatal("recover")
	}
	if got := rotated(1); !strings.Contains(got[0].ID, "/keys/after/") {
		t.Fatalf("rotated %v", got)
	}
	for _, step := range [][2]string{{"DELETE", "/keys/after"}, {"DELETE", "/deletedkeys/after"}} {
		if code, m := e.do(step[0], step[1], ""); code >= 300 {
			t.Fatalf("%v: %d %v", step, code, m)
		}
	}
	e.do("POST", "/keys/after/create", `{"kty":"EC"}`)
	if _, p := e.do("GET", "/keys/after/rotationpolicy", ""); p["id"] != nil {
		t.Fatalf("a new key of a purged name kept its policy: %v", p)
	}
}

// A policy whose trigger reaches back past the expiry it gives (stored
// before validation caught it, or by a calendar edge) rotates a version
// made by rotation at half its life, never on every pass; and a new expiry
// on the latest version moves a timeBeforeExpiry rotation.
func TestKeyRotationNeverLoops(t *testing.T) {
	day := 24 * time.Hour
	e := newEnv(t)
	exp := e.clk.Now().Add(100 * day).Unix()
	if code, m := e.do("POST", "/keys/k/create", fmt.Sprintf(`{"kty":"EC","attributes":{"exp":%d}}`, exp)); code != 200 {
		t.Fatalf("create: %d %v", code, m)
	}
	// As an older keyhaven might have stored it: rotate 30 days before an
	// expiry of 20 days.
	bad := keyRotationPolicy{LifetimeActions: []keyLifetimeAction{{Trigger: &keyTrigger{TimeBeforeExpiry: "P30D"}, Action: &keyAction{Type: actionRotate}}},
		Attributes: &keyRotationAttrs{ExpiryTime: "P20D"}}
	if err := e.st.Update(t.Context(), func(tx store.Tx) error {
		_, err := store.PutJSON(t.Context(), tx, keyPolicyKey("iid-v1", "k"), bad, store.Any)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rotated := func(want int) {
		t.Helper()
		got, err := e.svc.RenewDue(t.Context())
		if err != nil || len(got) != want {
			t.Fatalf("RenewDue = %v, %v; want %d", got, err, want)
		}
	}
	rotated(0) // nothing scheduled yet: the policy was written behind the API's back
	// Moving the expiry reschedules: due 30 days before 40 days from now.
	if code, m := e.do("PATCH", "/keys/k/", fmt.Sprintf(`{"attributes":{"exp":%d}}`, e.clk.Now().Add(40*day).Unix())); code != 200 {
		t.Fatalf("update: %d %v", code, m)
	}
	e.clk.Advance(10*day + time.Hour)
	rotated(1)
	// The new version expires in 20 days, so the policy says "now" again:
	// it is filed at half its life instead.
	rotated(0)
	e.clk.Advance(10*day - 2*time.Hour)
	rotated(0)
	e.clk.Advance(2 * time.Hour)
	rotated(1)
	rotated(0)
}
