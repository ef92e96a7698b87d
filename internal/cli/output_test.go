package cli

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestWriteResult(t *testing.T) {
	vaults := []any{
		map[string]any{"name": "kv1", "location": "local", "properties": map[string]any{"x": 1}, "enabled": true},
		map[string]any{"name": "vault-two", "location": "eu", "enabled": false, "count": 3.0},
	}
	tests := []struct {
		name, query, format string
		in                  any
		want                string
	}{
		{"ok/json-sorted-indented", "", "json", map[string]any{"b": 1, "a": "<x>"}, "{\n  \"a\": \"<x>\",\n  \"b\": 1\n}\n"},
		{"ok/json-nil-prints-nothing", "", "json", nil, ""},
		{"ok/json-big-int", "", "json", map[string]any{"exp": 1700000000}, "{\n  \"exp\": 1700000000\n}\n"},
		{"ok/table-list", "", "table", vaults,
			"Count  Enabled  Location  Name\n" +
				"-----  -------  --------  ---------\n" +
				"       True     local     kv1\n" +
				"3      False    eu        vault-two\n"},
		{"ok/table-scalar", "", "table", "hello", "Result\n------\nhello\n"},
		{"ok/tsv-list", "", "tsv", vaults, "True\tlocal\tkv1\n3\tFalse\teu\tvault-two\n"},
		{"ok/tsv-scalar-bare", "value", "tsv", map[string]any{"value": "s3cr3t"}, "s3cr3t\n"},
		{"ok/yaml", "", "yaml", map[string]any{"name": "kv1", "tags": map[string]any{"a": "b"}}, "name: kv1\ntags:\n    a: b\n"},
		{"ok/none", "", "none", vaults, ""},
		{"ok/query-projection", "[].name", "json", vaults, "[\n  \"kv1\",\n  \"vault-two\"\n]\n"},
		{"ok/query-filter-tsv", "[?location=='eu'].name", "tsv", vaults, "vault-two\n"},
		{"ok/query-struct-input", "id", "tsv", struct {
			ID string `json:"id"`
		}{"abc"}, "abc\n"},
		{"ok/jsonc-colours", "", "jsonc", map[string]any{"a": true}, "{\n  " + colorKey + "\"a\"" + colorReset + ": " + colorLit + "true" + colorReset + "\n}\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeResult(&b, tc.in, tc.query, tc.format); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Fatalf("got:\n%q\nwant:\n%q", b.String(), tc.want)
			}
		})
	}
}

func TestWriteResultErrors(t *testing.T) {
	tests := []struct{ name, query, format string }{
		{"fail/bad-query", "[?", "json"},
		{"fail/bad-format", "", "xml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := writeResult(&bytes.Buffer{}, map[string]any{}, tc.query, tc.format)
			var ue usageError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want a usage error", err)
			}
		})
	}
}

func TestGlobalOutputFlags(t *testing.T) {
	f := newFakeServer(t)
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"ok/query-tsv", []string{"account", "show", "--query", "id", "-o", "tsv"}, testSub + "\n", 0},
		{"ok/table", []string{"account", "show", "--query", "{Name:name, Sub:id}", "-o", "table"}, "Name     Sub\n-------  ------------------------------------\nDefault  " + testSub + "\n", 0},
		{"fail/bad-output", []string{"account", "show", "-o", "xml"}, "", 2},
		{"fail/bad-query", []string{"account", "show", "--query", "[?"}, "", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := h.run(tc.args...)
			if code != tc.code || out != tc.want {
				t.Fatalf("code %d out %q stderr %q; want code %d out %q", code, out, errOut, tc.code, tc.want)
			}
			if code != 0 && !strings.HasPrefix(errOut, "ERROR: ") {
				t.Fatalf("stderr %q lacks ERROR:", errOut)
			}
		})
	}
}
