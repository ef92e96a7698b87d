package server

import (
	"net/http/httptest"
	"testing"
)

func TestForwardedClientIP(t *testing.T) {
	s := &Server{portalKey: "k3y"}
	for _, tc := range []struct {
		name, fwd, key, want string
	}{
		{"ok/portal call", "203.0.113.7", "k3y", "203.0.113.7"},
		{"ok/not a portal call", "", "", "127.0.0.1"},
		{"fail/wrong key", "203.0.113.7", "guess", "127.0.0.1"},
		{"fail/no key", "203.0.113.7", "", "127.0.0.1"},
		{"fail/not an address", "203.0.113.7, 10.0.0.1", "k3y", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/subscriptions", nil)
			if tc.fwd != "" {
				r.Header.Set(portalClientIPHeader, tc.fwd)
			}
			if tc.key != "" {
				r.Header.Set(portalKeyHeader, tc.key)
			}
			if got := s.forwardedClientIP(r, "127.0.0.1"); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if r.Header.Get(portalClientIPHeader) != "" || r.Header.Get(portalKeyHeader) != "" {
				t.Fatal("the portal's headers were not removed")
			}
		})
	}
	// A server without a portal key believes no one.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(portalClientIPHeader, "203.0.113.7")
	r.Header.Set(portalKeyHeader, "")
	if got := (&Server{}).forwardedClientIP(r, "127.0.0.1"); got != "127.0.0.1" {
		t.Fatal(got)
	}
}
