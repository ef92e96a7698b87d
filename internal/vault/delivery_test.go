package vault

import (
	"testing"
)

// A set that repeats the latest version's deliveryId with the same value is
// the same delivery: it answers with that version instead of adding one.
func TestSetIdempotentDelivery(t *testing.T) {
	e := newEnv(t)
	first := e.mustSet("cred", `{"value":"v1","tags":{"deliveryId":"d1"}}`)
	cases := []struct {
		name        string
		body        string
		sameVersion bool
	}{
		{"ok/repeat-is-replayed", `{"value":"v1","tags":{"deliveryId":"d1"}}`, true},
		{"ok/same-id-other-value-is-new", `{"value":"v2","tags":{"deliveryId":"d1"}}`, false},
		{"ok/new-id-is-new", `{"value":"v2","tags":{"deliveryId":"d2"}}`, false},
		{"ok/no-id-is-new", `{"value":"v2"}`, false},
	}
	prevID := first["id"]
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := e.mustSet("cred", c.body)
			if (got["id"] == prevID) != c.sameVersion {
				t.Fatalf("id %v after %v: sameVersion want %v", got["id"], prevID, c.sameVersion)
			}
			prevID = got["id"]
		})
	}
	code, m := e.do("GET", "/secrets/cred/versions", "")
	if code != 200 {
		t.Fatalf("versions: %d %v", code, m)
	}
	if n := len(m["value"].([]any)); n != 4 {
		t.Fatalf("%d versions, want 4 (the replay added none)", n)
	}
}
