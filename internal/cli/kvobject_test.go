package cli

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
)

// kvCase is one row of a data-plane command table (secret, key,
// certificate): the command line, its exit code, stderr and stdout, and the
// requests it sends to the vault myvault.
type kvCase struct {
	name       string
	args       []string
	wantCode   int
	wantMethod string // the first request's method; "" means none is sent
	wantPath   string
	wantBody   map[string]any
	wantOut    string // substring of stdout
	wantErr    string // all of stderr
	wantReqs   int    // data-plane requests sent; 0 means 1
	// check looks further at the first request.
	check func(t *testing.T, r recorded)
}

// fakeVault answers with handle for the host myvault and 404 elsewhere.
func fakeVault(f *fakeServer, handle func(w http.ResponseWriter, r *http.Request, body []byte)) {
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		if !strings.HasPrefix(r.Host, "myvault.vault.localhost:") {
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "NotFound", "message": "wrong host " + r.Host}})
			return
		}
		handle(w, r, body)
	}
}

// writeNotFound answers as Key Vault does for a missing object.
func writeNotFound(w http.ResponseWriter, code, message string) {
	w.Header().Set("x-ms-error-code", code)
	writeJSON(w, 404, map[string]any{"error": map[string]any{"code": code, "message": message}})
}

// runKVCases runs each case against f and checks what it printed and sent:
// method, path, api-version, host, token audience and body.
func runKVCases(t *testing.T, f *fakeServer, h *harness, tests []kvCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			out, errOut, code := h.run(tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d; stderr %q", code, tc.wantCode, errOut)
			}
			if tc.wantErr != "" && errOut != tc.wantErr {
				t.Fatalf("stderr %q want %q", errOut, tc.wantErr)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("stdout %q lacks %q", out, tc.wantOut)
			}
			dp := f.requests(func(r recorded) bool { return strings.HasPrefix(r.Host, "myvault.") })
			if tc.wantMethod == "" {
				if len(dp) != 0 {
					t.Fatalf("sent %+v", dp)
				}
				return
			}
			want := tc.wantReqs
			if want == 0 {
				want = 1
			}
			if len(dp) != want {
				t.Fatalf("data-plane requests: %+v", dp)
			}
			r := dp[0]
			if r.Method != tc.wantMethod || r.Path != tc.wantPath || !strings.Contains(r.Query, "api-version=7.5") {
				t.Fatalf("got %s %s?%s, want %s %s?api-version=7.5", r.Method, r.Path, r.Query, tc.wantMethod, tc.wantPath)
			}
			if r.Host != "myvault.vault.localhost:"+f.port {
				t.Fatalf("host %q", r.Host)
			}
			if aud := jwtClaims(strings.TrimPrefix(r.Auth, "Bearer "))["aud"]; aud != f.vaultAudience() {
				t.Fatalf("token audience %v, want %s", aud, f.vaultAudience())
			}
			if tc.wantBody != nil {
				var got map[string]any
				if err := json.Unmarshal(r.Body, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.wantBody) {
					t.Fatalf("body %v\nwant %v", got, tc.wantBody)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

// sharedVerbCases are the rows for the verbs secrets, keys and certificates
// share, run on the object name in myvault (group is the command group,
// "secret"; coll its collection, "secrets"). backup receives the blob the
// fake vault answers for backup, which backup writes owner-only and restore
// sends back.
func sharedVerbCases(group, coll, name, vaultURL, backup string, blob []byte) []kvCase {
	deleted := "/deleted" + coll + "/" + name
	return []kvCase{
		{name: "ok/list-versions", args: []string{"keyvault", group, "list-versions", "--vault-name", "myvault", "-n", name},
			wantMethod: "GET", wantPath: "/" + coll + "/" + name + "/versions"},
		{name: "ok/delete", args: []string{"keyvault", group, "delete", "--vault-name", "myvault", "-n", name},
			wantMethod: "DELETE", wantPath: "/" + coll + "/" + name},
		{name: "ok/show-deleted", args: []string{"keyvault", group, "show-deleted", "--vault-name", "myvault", "-n", name},
			wantMethod: "GET", wantPath: deleted},
		{name: "ok/list-deleted", args: []string{"keyvault", group, "list-deleted", "--vault-name", "myvault"},
			wantMethod: "GET", wantPath: "/deleted" + coll},
		{name: "ok/recover", args: []string{"keyvault", group, "recover", "--vault-name", "myvault", "-n", name},
			wantMethod: "POST", wantPath: deleted + "/recover"},
		{name: "ok/purge-by-id", args: []string{"keyvault", group, "purge", "--id", vaultURL + deleted},
			wantMethod: "DELETE", wantPath: deleted},
		{name: "ok/backup", args: []string{"keyvault", group, "backup", "--vault-name", "myvault", "-n", name, "--file", backup},
			wantMethod: "POST", wantPath: "/" + coll + "/" + name + "/backup", check: func(t *testing.T, _ recorded) {
				if b, err := os.ReadFile(backup); err != nil || string(b) != string(blob) {
					t.Fatalf("backup file: %q %v", b, err)
				}
				if st, _ := os.Stat(backup); st.Mode().Perm() != 0o600 {
					t.Fatalf("backup mode %v", st.Mode().Perm())
				}
			}},
		{name: "ok/restore", args: []string{"keyvault", group, "restore", "--vault-name", "myvault", "--file", backup},
			wantMethod: "POST", wantPath: "/" + coll + "/restore", wantBody: map[string]any{"value": base64.RawURLEncoding.EncodeToString(blob)}},
	}
}
