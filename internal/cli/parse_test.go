package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/keyhaven/keyhaven/internal/azerr"
)

func TestParseTags(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    map[string]string
		wantErr bool
	}{
		{"ok/pairs", []string{"a=b", "c=d"}, map[string]string{"a": "b", "c": "d"}, false},
		{"ok/key-only", []string{"flag"}, map[string]string{"flag": ""}, false},
		{"ok/value-with-equals", []string{"url=a=b"}, map[string]string{"url": "a=b"}, false},
		{"ok/clear", []string{""}, map[string]string{}, false},
		{"ok/last-wins", []string{"a=1", "a=2"}, map[string]string{"a": "2"}, false},
		{"fail/empty-key", []string{"=v"}, nil, true},
		{"fail/bad-char", []string{"a/b=c"}, nil, true},
		{"fail/long-value", []string{"a=" + strings.Repeat("x", 257)}, nil, true},
		{"fail/too-many", manyTags(51), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTags(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v wantErr %v", err, tc.wantErr)
			}
			if err == nil && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v want %v", got, tc.want)
			}
		})
	}
}

func manyTags(n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, strings.Repeat("k", i+1)+"=v")
	}
	return out
}

func FuzzParseTags(f *testing.F) {
	for _, s := range []string{"a=b", "=", "a==b", "", "k", "a/b=c", "ü=ö", "\xff=1"} {
		f.Add(s, "x=y")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		tags, err := parseTags([]string{a, b})
		if err != nil {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("non-usage error %T", err)
			}
			return
		}
		if len(tags) > maxTags {
			t.Fatalf("too many tags")
		}
		for k, v := range tags {
			if k == "" || len(k) > maxTagNameLen || len(v) > maxTagValueLen || !utf8.ValidString(k) || !utf8.ValidString(v) {
				t.Fatalf("accepted bad tag %q=%q", k, v)
			}
			if strings.ContainsAny(k, "<>%&\\?/") {
				t.Fatalf("accepted forbidden char in %q", k)
			}
		}
	})
}

func TestExpandNargs(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want []string
	}{
		{"ok/tags-spread", []string{"group", "create", "--tags", "a=b", "c=d", "-n", "x"},
			[]string{"group", "create", "--tags", "a=b", "--tags", "c=d", "-n", "x"}},
		{"ok/tags-equals-form", []string{"--tags=a=b", "c=d"}, []string{"--tags=a=b", "--tags", "c=d"}},
		{"ok/ids-at-end", []string{"show", "--ids", "/a", "/b"}, []string{"show", "--ids", "/a", "--ids", "/b"}},
		{"ok/tristate-value", []string{"--disabled", "true", "--value", "x"}, []string{"--disabled=true", "--value", "x"}},
		{"ok/tristate-bare", []string{"--disabled", "--value", "x"}, []string{"--disabled", "--value", "x"}},
		{"ok/double-dash-stops", []string{"--", "--tags", "a", "b"}, []string{"--", "--tags", "a", "b"}},
		{"ok/empty-tag-value", []string{"--tags", ""}, []string{"--tags", ""}},
		{"ok/other-flags-untouched", []string{"--value", "a=b", "c"}, []string{"--value", "a=b", "c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := expandNargs(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q want %q", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantMsg  string
	}{
		{"ok/azure-error", &azerr.Error{Code: "ResourceNotFound", Message: "gone"}, 1, "(ResourceNotFound) gone"},
		{"ok/azure-error-no-code", &azerr.Error{Message: "plain"}, 1, "plain"},
		{"ok/usage", usageErrorf("bad flag"), 2, "bad flag"},
		{"ok/cobra-required", errors.New(`required flag(s) "name" not set`), 2, `required flag(s) "name" not set`},
		{"ok/other", errors.New("boom"), 1, "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, msg := classify(tc.err)
			if code != tc.wantCode || msg != tc.wantMsg {
				t.Fatalf("got %d %q", code, msg)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"ok/help", []string{"--help"}, 0, ""},
		{"fail/unknown-command", []string{"frobnicate"}, 2, "ERROR: unknown command"},
		{"fail/unknown-subcommand", []string{"keyvault", "frob"}, 2, "ERROR: 'frob' is misspelled or not recognized by the system."},
		{"ok/group-help", []string{"keyvault"}, 0, ""},
		{"fail/unknown-flag", []string{"group", "list", "--nope"}, 2, "ERROR: unknown flag: --nope"},
		{"fail/missing-arg", []string{"group", "create", "-n", "x"}, 2, "ERROR: the following arguments are required: --location/-l"},
		{"fail/not-logged-in", []string{"group", "list"}, 1, "ERROR: Please run 'keyhaven login' to setup account.\n"},
		{"fail/bad-tristate", []string{"keyvault", "secret", "set", "--disabled=maybe"}, 2, "ERROR: invalid argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := h.run(tc.args...)
			if code != tc.wantCode || !strings.HasPrefix(errOut, tc.wantErr) {
				t.Fatalf("exit %d stderr %q; want %d %q", code, errOut, tc.wantCode, tc.wantErr)
			}
		})
	}
}

func TestEndpointsFrom(t *testing.T) {
	tests := []struct {
		name string
		md   metadata
		want Endpoints
	}{
		{"ok/empty-metadata-defaults", metadata{}, Endpoints{LoginEndpoint: "https://localhost:8443", ResourceManager: "https://localhost:8443",
			ARMAudience: "https://localhost:8443", GraphEndpoint: "https://localhost:8443", GraphAudience: "https://localhost:8443",
			VaultDomain: "vault.localhost", VaultPort: "8443", VaultAudience: "https://vault.localhost:8443"}},
		{"ok/dns-without-dot-port-443", func() metadata {
			var m metadata
			m.Suffixes.KeyVaultDNS = "vault.example.com:443"
			m.Authentication.Audiences = []string{"https://other/", "https://localhost:8443/"}
			return m
		}(), Endpoints{LoginEndpoint: "https://localhost:8443", ResourceManager: "https://localhost:8443",
			ARMAudience: "https://localhost:8443", GraphEndpoint: "https://localhost:8443", GraphAudience: "https://localhost:8443",
			VaultDomain: "vault.example.com", VaultAudience: "https://vault.example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := endpointsFrom("https://localhost:8443", &tc.md); got != tc.want {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
