package cli

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func auditEvent(i int, upn string) map[string]any {
	ev := map[string]any{"time": "2024-03-01T10:0" + string(rune('0'+i)) + ":00.0000000Z", "resourceId": auditVault,
		"operationName": "SecretGet", "resultSignature": "OK", "durationMs": 10 + i, "callerIpAddress": "192.0.2.1",
		"properties": map[string]any{"httpStatusCode": 200}, "seq": i + 1}
	if upn != "" {
		ev["identity"] = map[string]any{"claim": map[string]any{"upn": upn, "oid": "o1"}}
	}
	return ev
}

func TestMonitorLogList(t *testing.T) {
	now := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	five := []any{auditEvent(0, "alice@keyhaven.local"), auditEvent(1, ""), auditEvent(2, "bob@keyhaven.local"), auditEvent(3, "alice@keyhaven.local"), auditEvent(4, "")}
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantQuery url.Values // of the first request
		wantSeqs  []float64
		check     func(t *testing.T, out string)
	}{
		{name: "ok/all-pages", wantQuery: url.Values{"top": {"100"}}, wantSeqs: []float64{1, 2, 3, 4, 5}},
		{name: "ok/filters", args: []string{"--vault-name", "v1", "--start-time", "2024-03-01T10:00:00Z", "--end-time", "2024-03-01T11:00:00Z",
			"--operation", "SecretGet", "--caller", "alice@keyhaven.local", "--result", "Forbidden"},
			wantQuery: url.Values{"resourceId": {auditVault}, "from": {"2024-03-01T10:00:00Z"}, "to": {"2024-03-01T11:00:00Z"},
				"operation": {"SecretGet"}, "caller": {"alice@keyhaven.local"}, "result": {"Forbidden"}, "top": {"100"}},
			wantSeqs: []float64{1, 2, 3, 4, 5}},
		{name: "ok/offset-ends-now", args: []string{"--resource", auditVault, "--offset", "2d"},
			wantQuery: url.Values{"resourceId": {auditVault}, "from": {"2024-02-28T12:00:00Z"}, "to": {"2024-03-01T12:00:00Z"}, "top": {"100"}},
			wantSeqs:  []float64{1, 2, 3, 4, 5}},
		{name: "ok/max-events", args: []string{"--max-events", "3"}, wantQuery: url.Values{"top": {"3"}}, wantSeqs: []float64{1, 2, 3}},
		{name: "ok/table", args: []string{"-o", "table"}, wantQuery: url.Values{"top": {"100"}}, check: func(t *testing.T, out string) {
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 7 || !strings.Contains(lines[0], "Caller") || !strings.Contains(lines[0], "Operation") ||
				!strings.Contains(lines[2], "alice@keyhaven.local") || !strings.Contains(lines[3], "192.0.2.1") || !strings.Contains(lines[2], "v1") {
				t.Fatalf("table:\n%s", out)
			}
		}},
		{name: "ok/query-sees-raw-events", args: []string{"--query", "[].identity.claim.upn", "-o", "tsv"}, wantQuery: url.Values{"top": {"100"}}, check: func(t *testing.T, out string) {
			if out != "alice@keyhaven.local\nbob@keyhaven.local\nalice@keyhaven.local\n" {
				t.Fatalf("tsv %q", out)
			}
		}},
		{name: "fail/start-and-offset", args: []string{"--start-time", "2024-03-01", "--offset", "1h"}, wantCode: 2},
		{name: "fail/bad-time", args: []string{"--start-time", "yesterday"}, wantCode: 2},
		{name: "fail/bad-offset", args: []string{"--offset", "-1h"}, wantCode: 2},
		{name: "fail/inverted", args: []string{"--start-time", "2024-03-02", "--end-time", "2024-03-01"}, wantCode: 2},
		{name: "fail/max-events-zero", args: []string{"--max-events", "0"}, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			af := &auditFake{events: five}
			af.install(t, f)
			h := newHarness(t)
			h.now = now
			h.login(f)
			out, errOut, code := h.run(append([]string{"monitor", "log", "list"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			reqs := auditRequests(f)
			if code != 0 {
				if len(reqs) != 0 {
					t.Fatalf("a usage error sent %v", reqs)
				}
				return
			}
			if q, _ := url.ParseQuery(reqs[0].Query); q.Encode() != tc.wantQuery.Encode() {
				t.Fatalf("query %q want %q", reqs[0].Query, tc.wantQuery.Encode())
			}
			if tc.check != nil {
				tc.check(t, out)
				return
			}
			items, _ := decodeJSON(t, out).([]any)
			var seqs []float64
			for _, it := range items {
				seqs = append(seqs, it.(map[string]any)["seq"].(float64))
			}
			if len(seqs) != len(tc.wantSeqs) {
				t.Fatalf("seqs %v want %v", seqs, tc.wantSeqs)
			}
			for i := range seqs {
				if seqs[i] != tc.wantSeqs[i] {
					t.Fatalf("seqs %v want %v", seqs, tc.wantSeqs)
				}
			}
		})
	}
}

func TestMonitorInsightsShow(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantRID  string
		table    bool
	}{
		{name: "ok/vault-name", args: []string{"--vault-name", "v1"}, wantRID: auditVault},
		{name: "ok/resource-table", args: []string{"--resource", auditVault, "-o", "table"}, wantRID: auditVault, table: true},
		{name: "fail/no-target", wantCode: 2},
		{name: "fail/unknown-vault", args: []string{"--vault-name", "nope"}, wantCode: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServer(t)
			(&auditFake{}).install(t, f)
			h := newHarness(t)
			h.login(f)
			out, errOut, code := h.run(append([]string{"monitor", "insights", "show"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if code != 0 {
				if len(auditRequests(f)) != 0 {
					t.Fatal("a failed target resolution reached the audit API")
				}
				return
			}
			reqs := auditRequests(f)
			q, _ := url.ParseQuery(reqs[0].Query)
			if len(reqs) != 1 || reqs[0].Path != "/audit/insights" || q.Get("resourceId") != tc.wantRID {
				t.Fatalf("requests %+v", reqs)
			}
			if tc.table {
				if !strings.Contains(out, "P99Ms") || !strings.Contains(out, "1000") || !strings.Contains(out, "alice@keyhaven.local") {
					t.Fatalf("table:\n%s", out)
				}
				return
			}
			m, _ := decodeJSON(t, out).(map[string]any)
			if m["total"] != float64(10) {
				t.Fatalf("output %s", out)
			}
		})
	}
}
