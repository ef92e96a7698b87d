package vault

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzParsePath: any path routes to an operation with a spec, a valid name
// and version and a known method, or fails with a 4xx.
func FuzzParsePath(f *testing.F) {
	fuzzPaths(f, "/secrets", "/secrets/", "/secrets/a", "/secrets/a/", "/secrets/a/0123456789abcdef0123456789abcdef",
		"/secrets/a/versions", "/secrets/a/backup", "/secrets/restore", "/deletedsecrets", "/deletedsecrets/a",
		"/deletedsecrets/a/recover", "//", "/secrets//", "/keys/a", "/secrets/a%2Fb", "/secrets/"+strings.Repeat("a", 2000))
}

// fuzzPaths seeds f with every method on each path and checks what
// parsePath makes of any method and path.
func fuzzPaths(f *testing.F, paths ...string) {
	for _, s := range paths {
		for _, m := range []string{"GET", "PUT", "PATCH", "DELETE", "POST"} {
			f.Add(m, s)
		}
	}
	f.Fuzz(func(t *testing.T, method, path string) {
		rt, err := parsePath(method, path)
		if err != nil {
			if err.Status < 400 || err.Status > 499 {
				t.Fatalf("status %d", err.Status)
			}
			return
		}
		spec := specOf(rt.Op)
		if spec.Name == "" {
			t.Fatalf("op %d has no spec", rt.Op)
		}
		if !spec.VaultScope && !validName(rt.Name) {
			t.Fatalf("invalid name %q accepted", rt.Name)
		}
		if rt.Version != "" && !versionRE.MatchString(rt.Version) {
			t.Fatalf("invalid version %q accepted", rt.Version)
		}
		if method != http.MethodGet && method != http.MethodPut && method != http.MethodPatch &&
			method != http.MethodDelete && method != http.MethodPost {
			t.Fatalf("method %q accepted", method)
		}
	})
}

func FuzzSetSecretBody(f *testing.F) {
	for _, s := range []string{
		`{"value":"v"}`, `{"value":"v","contentType":"c","tags":{"a":"b"},"attributes":{"enabled":false,"nbf":1,"exp":2.5}}`,
		`{"value":null}`, `{"tags":{"a":null}}`, `{"attributes":{"nbf":1e400}}`, `{"attributes":{"exp":"1"}}`, `[]`, `null`, ``, `{"value":"\u0000"}`,
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, body []byte, requireValue bool) {
		req, err := parseSecretBody(body, requireValue)
		if err != nil {
			if err.Status != 400 || err.Code != "BadParameter" {
				t.Fatalf("%d %s", err.Status, err.Code)
			}
			return
		}
		if requireValue && (req.Value == nil || len(*req.Value) > MaxValueBytes) {
			t.Fatal("bad value accepted")
		}
		if len(req.Tags) > MaxTags {
			t.Fatal("too many tags accepted")
		}
		for _, p := range []*int64{req.NotBefore, req.Expires} {
			if p != nil && (*p < 0 || *p > maxUnixTime) {
				t.Fatalf("time %d accepted", *p)
			}
		}
	})
}
