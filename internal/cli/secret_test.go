package cli

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// secretBundle is what the fake data plane answers.
func secretBundle(f *fakeServer, name, version, value string) map[string]any {
	return map[string]any{
		"value":      value,
		"id":         "https://myvault.vault.localhost:" + f.port + "/secrets/" + name + "/" + version,
		"attributes": map[string]any{"enabled": true, "created": 1700000000, "updated": 1700000000, "recoveryLevel": "Recoverable+Purgeable"},
	}
}

func TestSecretCommands(t *testing.T) {
	f := newFakeServer(t)
	fakeVault(f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch {
		case r.URL.Path == "/secrets/missing/":
			writeNotFound(w, "SecretNotFound", "A secret with (name/id) missing was not found in this key vault.")
		case r.URL.Path == "/secrets/s1/backup":
			writeJSON(w, 200, map[string]any{"value": base64.RawURLEncoding.EncodeToString([]byte("sealed-blob"))})
		case r.URL.Path == "/secrets/restore":
			writeJSON(w, 200, secretBundle(f, "s1", "v1", ""))
		case r.URL.Path == "/secrets" || r.URL.Path == "/deletedsecrets":
			writeJSON(w, 200, map[string]any{"value": []any{
				map[string]any{"id": "https://myvault.vault.localhost:" + f.port + "/secrets/a"},
				map[string]any{"id": "https://myvault.vault.localhost:" + f.port + "/secrets/b", "managed": true},
			}})
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/deletedsecrets/"):
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, 200, secretBundle(f, "s1", "v1", "the-value"))
		}
	})
	h := newHarness(t)
	h.login(f)
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.txt")
	_ = os.WriteFile(plain, []byte{0xff, 0x00, 0x01}, 0o600)
	backup := filepath.Join(dir, "s1.bak")

	vaultURL := "https://myvault.vault.localhost:" + f.port
	tests := []kvCase{
		{name: "ok/set", args: []string{"keyvault", "secret", "set", "--vault-name", "myvault", "-n", "s1", "--value", "the-value",
			"--tags", "env=prod", "team=", "--content-type", "text/plain", "--expires", "2030-01-02T03:04:05Z", "--disabled"},
			wantMethod: "PUT", wantPath: "/secrets/s1",
			wantBody: map[string]any{"value": "the-value", "contentType": "text/plain", "tags": map[string]any{"env": "prod", "team": ""},
				"attributes": map[string]any{"enabled": false, "exp": 1893553445.0}},
			wantOut: `"name": "s1"`},
		{name: "ok/set-not-before", args: []string{"keyvault", "secret", "set", "--vault-name", "myvault", "-n", "s1", "--value", "v",
			"--not-before", "2030-01-02T03:04:05Z"},
			wantMethod: "PUT", wantPath: "/secrets/s1",
			wantBody: map[string]any{"value": "v", "attributes": map[string]any{"nbf": 1893553445.0}}},
		{name: "ok/set-attributes-window", args: []string{"keyvault", "secret", "set-attributes", "--vault-name", "myvault", "-n", "s1",
			"--not-before", "2030-01-02T03:04:05Z", "--expires", "2031-01-02T03:04:05Z"},
			wantMethod: "PATCH", wantPath: "/secrets/s1/",
			wantBody: map[string]any{"attributes": map[string]any{"nbf": 1893553445.0, "exp": 1925089445.0}}},
		{name: "ok/set-file-base64", args: []string{"keyvault", "secret", "set", "--vault-name", "myvault", "-n", "s1", "--file", plain, "--encoding", "base64"},
			wantMethod: "PUT", wantPath: "/secrets/s1",
			wantBody: map[string]any{"value": base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1}), "tags": map[string]any{"file-encoding": "base64"}}},
		{name: "ok/show-latest", args: []string{"keyvault", "secret", "show", "--vault-name", "myvault", "-n", "s1"},
			wantMethod: "GET", wantPath: "/secrets/s1/", wantOut: `"value": "the-value"`},
		{name: "ok/show-version", args: []string{"keyvault", "secret", "show", "--vault-name", "myvault", "-n", "s1", "--version", "abc123"},
			wantMethod: "GET", wantPath: "/secrets/s1/abc123"},
		{name: "ok/show-by-id", args: []string{"keyvault", "secret", "show", "--id", vaultURL + "/secrets/s1/v9"},
			wantMethod: "GET", wantPath: "/secrets/s1/v9"},
		{name: "ok/show-query-tsv", args: []string{"keyvault", "secret", "show", "--vault-name", "myvault", "-n", "s1", "--query", "value", "-o", "tsv"},
			wantMethod: "GET", wantPath: "/secrets/s1/", wantOut: "the-value\n"},
		{name: "ok/list-hides-managed", args: []string{"keyvault", "secret", "list", "--vault-name", "myvault", "--query", "[].name", "-o", "tsv"},
			wantMethod: "GET", wantPath: "/secrets", wantOut: "a\n"},
		{name: "ok/set-attributes", args: []string{"keyvault", "secret", "set-attributes", "--vault-name", "myvault", "-n", "s1", "--enabled", "true", "--tags", "a=b"},
			wantMethod: "PATCH", wantPath: "/secrets/s1/", wantBody: map[string]any{"attributes": map[string]any{"enabled": true}, "tags": map[string]any{"a": "b"}}},
		{name: "fail/not-found", args: []string{"keyvault", "secret", "show", "--vault-name", "myvault", "-n", "missing"}, wantCode: 1,
			wantErr: "ERROR: (SecretNotFound) A secret with (name/id) missing was not found in this key vault.\n", wantMethod: "GET", wantPath: "/secrets/missing/"},
		{name: "fail/value-and-file", args: []string{"keyvault", "secret", "set", "--vault-name", "myvault", "-n", "s1", "--value", "x", "--file", plain}, wantCode: 2},
		{name: "fail/bad-secret-name", args: []string{"keyvault", "secret", "show", "--vault-name", "myvault", "-n", "a/b"}, wantCode: 2},
		{name: "fail/bad-vault-name", args: []string{"keyvault", "secret", "show", "--vault-name", "x.evil", "-n", "s1"}, wantCode: 2},
		{name: "fail/foreign-id-host", args: []string{"keyvault", "secret", "show", "--id", "https://evil.example.com/secrets/s1"}, wantCode: 2},
		{name: "fail/utf8-file", args: []string{"keyvault", "secret", "set", "--vault-name", "myvault", "-n", "s1", "--file", plain}, wantCode: 2},
	}
	tests = append(tests, sharedVerbCases("secret", "secrets", "s1", vaultURL, backup, []byte("sealed-blob"))...)
	runKVCases(t, f, h, tests)
}

func TestDebugNeverLogsSecrets(t *testing.T) {
	f := newFakeServer(t)
	f.handle = func(w http.ResponseWriter, r *http.Request, _ []byte) {
		writeJSON(w, 200, secretBundle(f, "s1", "v1", "the-value"))
	}
	h := newHarness(t)
	h.login(f)
	_, errOut, code := h.run("keyvault", "secret", "set", "--vault-name", "myvault", "-n", "s1", "--value", "top-secret-value", "--debug", "-o", "none")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "DEBUG: Request URL: 'PUT https://myvault.vault.localhost:") {
		t.Fatalf("debug output lacks the request line: %q", errOut)
	}
	for _, leak := range []string{"top-secret-value", "Bearer", "eyJ", "rt-", "hunter2"} {
		if strings.Contains(errOut, leak) {
			t.Fatalf("debug output leaks %q: %q", leak, errOut)
		}
	}
}
