package cli

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const auditVault = "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/v1"

// auditFake serves the audit API and the vault list used by --vault-name.
type auditFake struct {
	verifyOK bool
	events   []any // served two per page
	hashes   []string
}

func (af *auditFake) install(t *testing.T, f *fakeServer) {
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if strings.HasPrefix(r.URL.Path, "/audit/") && claimString(tok, "aud") != f.base {
			t.Errorf("%s: token audience %q, want the ARM audience %q", r.URL.Path, claimString(tok, "aud"), f.base)
		}
		q := r.URL.Query()
		switch {
		case r.URL.Path == "/subscriptions/"+testSub+"/providers/Microsoft.KeyVault/vaults":
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": auditVault, "name": "v1"}}})
		case r.URL.Path == "/audit/verify" && r.Method == http.MethodGet:
			rep := map[string]any{"ok": af.verifyOK, "checked": 5, "streams": 1, "problems": []any{}}
			if !af.verifyOK {
				rep["problems"] = []any{map[string]any{"stream": "r00", "seq": 3, "kind": "missing", "message": "event 3 is missing"}}
			}
			writeJSON(w, 200, rep)
		case r.URL.Path == "/audit/hash" && r.Method == http.MethodPost:
			var in struct{ Value string }
			_ = json.Unmarshal(body, &in)
			af.hashes = append(af.hashes, in.Value)
			writeJSON(w, 200, map[string]any{"hash": "hmac-sha256:" + strings.Repeat("ab", 32)})
		case r.URL.Path == "/audit/events" && r.Method == http.MethodGet:
			start := 0
			if s := q.Get("$skiptoken"); s != "" {
				start = int(s[0] - '0')
			}
			end := min(start+2, len(af.events))
			out := map[string]any{"value": af.events[start:end]}
			if end < len(af.events) {
				nq := url.Values{}
				for k, v := range q {
					nq[k] = v
				}
				nq.Set("$skiptoken", string(rune('0'+end)))
				out["nextLink"] = "/audit/events?" + nq.Encode()
			}
			writeJSON(w, 200, out)
		case r.URL.Path == "/audit/insights" && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"resourceId": q.Get("resourceId"), "from": q.Get("from"), "to": q.Get("to"), "total": 10, "failures": 4,
				"latency":    map[string]any{"count": 10, "p50": 50, "p90": 90, "p99": 1000, "max": 1000},
				"topCallers": []any{map[string]any{"oid": "o1", "upn": "alice@keyhaven.local", "count": 6}}})
		default:
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "NotFound", "message": r.URL.Path}})
		}
	}
}

func auditRequests(f *fakeServer) []recorded {
	return f.requests(func(r recorded) bool { return strings.HasPrefix(r.Path, "/audit/") })
}

func TestAuditVerify(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		ok        bool
		wantCode  int
		wantQuery url.Values
	}{
		{name: "ok/every-stream", ok: true, wantQuery: url.Values{}},
		{name: "ok/resource-id", args: []string{"--resource-id", auditVault}, ok: true, wantQuery: url.Values{"resourceId": {auditVault}}},
		{name: "ok/vault-name-looked-up", args: []string{"--vault-name", "V1"}, ok: true, wantQuery: url.Values{"resourceId": {auditVault}}},
		{name: "ok/vault-name-and-group", args: []string{"--vault-name", "v1", "-g", "rg1"}, ok: true, wantQuery: url.Values{"resourceId": {auditVault}}},
		{name: "ok/stream", args: []string{"--stream", "global"}, ok: true, wantQuery: url.Values{"stream": {"global"}}},
		{name: "fail/tampered-exits-1", args: []string{"--resource-id", auditVault}, wantCode: 1, wantQuery: url.Values{"resourceId": {auditVault}}},
		{name: "fail/resource-and-vault", args: []string{"--resource-id", auditVault, "--vault-name", "v1"}, wantCode: 2},
		{name: "fail/bad-resource-id", args: []string{"--resource-id", "/subscriptions/../x"}, wantCode: 2},
		{name: "fail/group-without-vault", args: []string{"-g", "rg1"}, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			af := &auditFake{verifyOK: tc.ok}
			af.install(t, f)
			h := newHarness(t)
			h.login(f)
			out, errOut, code := h.run(append([]string{"audit", "verify"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			reqs := auditRequests(f)
			if tc.wantQuery == nil {
				if len(reqs) != 0 {
					t.Fatalf("a usage error sent %v", reqs)
				}
				return
			}
			if len(reqs) != 1 || reqs[0].Path != "/audit/verify" {
				t.Fatalf("requests %+v", reqs)
			}
			if q, _ := url.ParseQuery(reqs[0].Query); q.Encode() != tc.wantQuery.Encode() {
				t.Fatalf("query %q want %q", reqs[0].Query, tc.wantQuery.Encode())
			}
			rep, _ := decodeJSON(t, out).(map[string]any)
			if rep["ok"] != tc.ok {
				t.Fatalf("printed report %s", out)
			}
			if !tc.ok && !strings.Contains(errOut, "did not verify: 1 problem") {
				t.Fatalf("stderr %q", errOut)
			}
		})
	}
}

func TestAuditHash(t *testing.T) {
	file := filepath.Join(t.TempDir(), "value.txt")
	if err := os.WriteFile(file, []byte("from-a-file"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{name: "ok/value", args: []string{"--value", "s3cr3t"}, want: "s3cr3t"},
		{name: "ok/empty-value", args: []string{"--value", ""}, want: ""},
		{name: "ok/from-file", args: []string{"--value", "@" + file}, want: "from-a-file"},
		{name: "fail/missing-value", wantCode: 2},
		{name: "fail/missing-file", args: []string{"--value", "@" + file + ".nope"}, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			af := &auditFake{}
			af.install(t, f)
			h := newHarness(t)
			h.login(f)
			out, errOut, code := h.run(append([]string{"audit", "hash"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if code != 0 {
				if len(af.hashes) != 0 {
					t.Fatal("a usage error reached the server")
				}
				return
			}
			if len(af.hashes) != 1 || af.hashes[0] != tc.want {
				t.Fatalf("server hashed %q want %q", af.hashes, tc.want)
			}
			m, _ := decodeJSON(t, out).(map[string]any)
			if !strings.HasPrefix(m["hash"].(string), "hmac-sha256:") {
				t.Fatalf("output %s", out)
			}
			if tc.want != "" && strings.Contains(errOut, tc.want) {
				t.Fatal("the value was echoed on stderr")
			}
		})
	}
}
