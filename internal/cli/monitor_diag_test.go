package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiagnosticSettingsCommands(t *testing.T) {
	f := newFakeServer(t)
	var puts []map[string]any
	storageFake(t, f, "", &puts)
	h := newHarness(t)
	h.login(f)
	rg := "/subscriptions/" + testSub + "/resourceGroups/rg1"
	vault := rg + "/providers/Microsoft.KeyVault/vaults/kv1"
	acct := rg + "/providers/Microsoft.Storage/storageAccounts/logs1"
	setting := vault + "/providers/Microsoft.Insights/diagnosticSettings/audit"
	logsFile := filepath.Join(t.TempDir(), "logs.json")
	if err := os.WriteFile(logsFile, []byte(`[{"categoryGroup":"audit","enabled":true}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	audit := []any{map[string]any{"category": "AuditEvent", "enabled": true}}
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		wantProps map[string]any
	}{
		{"ok/storage name resolved", []string{"-n", "audit", "--resource", vault, "--storage-account", "logs1",
			"--logs", `[{"category":"AuditEvent","enabled":true}]`}, 0,
			map[string]any{"storageAccountId": acct, "logs": audit}},
		{"ok/storage id, resource by name", []string{"-n", "audit", "--resource", "kv1", "-g", "rg1", "--resource-type", "Microsoft.KeyVault/vaults",
			"--storage-account", acct, "--logs", `[{"category":"AuditEvent","enabled":true}]`, "--metrics", `[{"category":"AllMetrics","enabled":true}]`}, 0,
			map[string]any{"storageAccountId": acct, "logs": audit, "metrics": []any{map[string]any{"category": "AllMetrics", "enabled": true}}}},
		{"ok/logs from file", []string{"-n", "audit", "--resource", vault, "--storage-account", acct, "--logs", "@" + logsFile}, 0,
			map[string]any{"storageAccountId": acct, "logs": []any{map[string]any{"categoryGroup": "audit", "enabled": true}}}},
		{"fail/no destination", []string{"-n", "audit", "--resource", vault, "--logs", "[]"}, 2, nil},
		{"fail/logs not a list", []string{"-n", "audit", "--resource", vault, "--storage-account", acct, "--logs", `{"category":"x"}`}, 2, nil},
		{"fail/no resource", []string{"-n", "audit", "--storage-account", acct}, 2, nil},
		{"fail/resource name without type", []string{"-n", "audit", "--resource", "kv1", "-g", "rg1", "--storage-account", acct}, 2, nil},
		{"fail/storage id of wrong type", []string{"-n", "audit", "--resource", vault, "--storage-account", vault}, 2, nil},
		{"fail/unknown storage name", []string{"-n", "audit", "--resource", vault, "--storage-account", "nosuch"}, 1, nil},
		{"fail/bad setting name", []string{"-n", "a/b", "--resource", vault, "--storage-account", acct}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			puts = nil
			f.reset()
			_, errOut, code := h.run(append([]string{"monitor", "diagnostic-settings", "create"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if code != 0 {
				if len(puts) != 0 {
					t.Fatalf("failed create sent %v", puts)
				}
				return
			}
			if len(puts) != 1 || puts[0]["_path"] != setting {
				t.Fatalf("puts %v", puts)
			}
			got, _ := json.Marshal(puts[0]["properties"])
			want, _ := json.Marshal(tc.wantProps)
			if string(got) != string(want) {
				t.Fatalf("properties %s want %s", got, want)
			}
			if reqs := f.requests(func(r recorded) bool { return r.Method == "PUT" }); !strings.Contains(reqs[0].Query, "api-version=2021-05-01-preview") {
				t.Fatalf("query %s", reqs[0].Query)
			}
		})
	}
	for _, tc := range []struct {
		name, method, path string
		args               []string
	}{
		{"ok/list", "GET", vault + "/providers/Microsoft.Insights/diagnosticSettings", []string{"list", "--resource", vault}},
		{"ok/show", "GET", setting, []string{"show", "-n", "audit", "--resource", vault}},
		{"ok/delete", "DELETE", setting, []string{"delete", "-n", "audit", "--resource", vault}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			if _, errOut, code := h.run(append([]string{"monitor", "diagnostic-settings"}, tc.args...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if reqs := f.requests(func(r recorded) bool { return r.Method == tc.method && r.Path == tc.path }); len(reqs) != 1 {
				t.Fatalf("requests %v", f.requests(nil))
			}
		})
	}
}
