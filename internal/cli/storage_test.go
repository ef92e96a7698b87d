package cli

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// storageFake serves one resource group, one storage account "logs1" and
// one append blob whose content it returns in 4-byte ranges, recording
// PUT bodies.
func storageFake(t *testing.T, f *fakeServer, content string, puts *[]map[string]any) {
	rg := "/subscriptions/" + testSub + "/resourceGroups/rg1"
	acct := rg + "/providers/Microsoft.Storage/storageAccounts/logs1"
	blobs := acct + "/blobServices/default/containers/insights-logs-auditevent/blobs"
	blobID := blobs + "/0f0f0f0f-0000-0000-0000-000000000001"
	blob := func(withContent bool, offset int) map[string]any {
		m := map[string]any{"id": blobID, "name": "resourceId=/X/PT1H.json",
			"properties": map[string]any{"contentLength": len(content), "blobType": "AppendBlob"}}
		if withContent {
			end := min(offset+4, len(content))
			m["content"] = map[string]any{"offset": offset, "length": end - offset,
				"data": base64.StdEncoding.EncodeToString([]byte(content[offset:end]))}
		}
		return m
	}
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		p := r.URL.Path
		switch {
		case p == rg && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"id": rg, "name": "rg1", "location": "westeurope"})
		case p == "/subscriptions/"+testSub+"/providers/Microsoft.Storage/storageAccounts" || p == rg+"/providers/Microsoft.Storage/storageAccounts":
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": acct, "name": "logs1"}}})
		case p == blobs:
			items := []any{}
			if strings.HasPrefix("resourceId=/X/PT1H.json", r.URL.Query().Get("prefix")) {
				items = append(items, blob(false, 0))
			}
			writeJSON(w, 200, map[string]any{"value": items})
		case p == blobID:
			off, _ := strconv.Atoi(r.URL.Query().Get("offset"))
			writeJSON(w, 200, blob(true, off))
		case r.Method == http.MethodPut:
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			m["_path"] = p
			*puts = append(*puts, m)
			writeJSON(w, 200, map[string]any{"id": p, "properties": m["properties"], "sku": m["sku"]})
		case r.Method == http.MethodGet && strings.HasSuffix(p, "/diagnosticSettings"):
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": p + "/audit", "name": "audit"}}})
		case r.Method == http.MethodGet && strings.HasPrefix(p, rg+"/providers/"):
			writeJSON(w, 200, map[string]any{"id": p, "name": p[strings.LastIndex(p, "/")+1:]})
		case r.Method == http.MethodDelete:
			w.WriteHeader(200)
		default:
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "ResourceNotFound", "message": p}})
		}
	}
}

func TestStorageAccountCommands(t *testing.T) {
	f := newFakeServer(t)
	var puts []map[string]any
	storageFake(t, f, "", &puts)
	h := newHarness(t)
	h.login(f)
	acct := "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/logs1"
	uai := "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1"
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantBody map[string]any
	}{
		{"ok/defaults", []string{"-n", "logs1", "-g", "rg1"}, 0,
			map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Standard_RAGRS"}, "kind": "StorageV2"}},
		{"ok/zrs with tags", []string{"-n", "logs1", "-g", "rg1", "--sku", "Standard_ZRS", "-l", "eastus", "--tags", "vault=kv1", "team=x"}, 0,
			map[string]any{"location": "eastus", "sku": map[string]any{"name": "Standard_ZRS"}, "kind": "StorageV2",
				"tags": map[string]any{"vault": "kv1", "team": "x"}}},
		{"ok/system identity", []string{"-n", "logs1", "-g", "rg1", "--assign-identity"}, 0,
			map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Standard_RAGRS"}, "kind": "StorageV2",
				"identity": map[string]any{"type": "SystemAssigned"}}},
		{"ok/both identities", []string{"-n", "logs1", "-g", "rg1", "--assign-identity", "--user-identity-id", uai}, 0,
			map[string]any{"location": "westeurope", "sku": map[string]any{"name": "Standard_RAGRS"}, "kind": "StorageV2",
				"identity": map[string]any{"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": map[string]any{uai: map[string]any{}}}}},
		{"fail/user identity not an identity", []string{"-n", "logs1", "-g", "rg1", "--user-identity-id", acct}, 2, nil},
		{"fail/no group", []string{"-n", "logs1"}, 2, nil},
		{"fail/bad name", []string{"-n", "a/b", "-g", "rg1"}, 2, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			puts = nil
			_, errOut, code := h.run(append([]string{"storage", "account", "create"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if code != 0 {
				if len(puts) != 0 {
					t.Fatalf("failed create sent %v", puts)
				}
				return
			}
			if len(puts) != 1 || puts[0]["_path"] != acct {
				t.Fatalf("puts %v", puts)
			}
			delete(puts[0], "_path")
			got, _ := json.Marshal(puts[0])
			want, _ := json.Marshal(tc.wantBody)
			if string(got) != string(want) {
				t.Fatalf("body %s want %s", got, want)
			}
		})
	}
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		method   string
		path     string
	}{
		{"ok/show", []string{"show", "-n", "logs1", "-g", "rg1"}, 0, "GET", acct},
		{"ok/show ids", []string{"show", "--ids", acct}, 0, "GET", acct},
		{"ok/list", []string{"list", "-g", "rg1"}, 0, "GET", "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts"},
		{"ok/delete", []string{"delete", "-n", "logs1", "-g", "rg1", "--yes"}, 0, "DELETE", acct},
		{"fail/show wrong id type", []string{"show", "--ids", "/subscriptions/" + testSub + "/resourceGroups/rg1"}, 2, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			_, errOut, code := h.run(append([]string{"storage", "account"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
			if tc.method == "" {
				return
			}
			reqs := f.requests(func(r recorded) bool { return r.Method == tc.method && r.Path == tc.path })
			if len(reqs) != 1 || !strings.Contains(reqs[0].Query, "api-version=2023-01-01") {
				t.Fatalf("requests %v", f.requests(nil))
			}
		})
	}
}

func TestStorageBlobCommands(t *testing.T) {
	f := newFakeServer(t)
	const content = "{\"n\":1}\n{\"n\":2}\n"
	var puts []map[string]any
	storageFake(t, f, content, &puts)
	h := newHarness(t)
	h.login(f)

	out := h.mustRun("storage", "blob", "list", "--account-name", "logs1", "-c", "insights-logs-auditevent", "--prefix", "resourceId=/X")
	items := decodeJSON(t, out).([]any)
	if len(items) != 1 || items[0].(map[string]any)["name"] != "resourceId=/X/PT1H.json" {
		t.Fatalf("list %s", out)
	}
	if reqs := f.requests(func(r recorded) bool { return strings.HasSuffix(r.Path, "/blobs") }); len(reqs) != 1 ||
		!strings.Contains(reqs[0].Query, "prefix=resourceId%3D%2FX") {
		t.Fatalf("list requests %v", reqs)
	}

	// Download to stdout: the ranges are joined in order.
	out = h.mustRun("storage", "blob", "download", "--account-name", "logs1", "-c", "insights-logs-auditevent", "-n", "resourceId=/X/PT1H.json")
	if out != content {
		t.Fatalf("stdout %q", out)
	}
	file := filepath.Join(t.TempDir(), "audit.json")
	out = h.mustRun("storage", "blob", "download", "--account-name", "logs1", "-c", "insights-logs-auditevent", "-n", "resourceId=/X/PT1H.json", "-f", file)
	if got, err := os.ReadFile(file); err != nil || string(got) != content {
		t.Fatalf("file %q %v", got, err)
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", st.Mode())
	}
	if m := decodeJSON(t, out).(map[string]any); m["name"] != "resourceId=/X/PT1H.json" {
		t.Fatalf("download output %s", out)
	}

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"fail/blob not found", []string{"download", "--account-name", "logs1", "-c", "insights-logs-auditevent", "-n", "resourceId=/Y"}, 1},
		{"fail/prefix is not an exact name", []string{"download", "--account-name", "logs1", "-c", "insights-logs-auditevent", "-n", "resourceId=/X"}, 1},
		{"fail/unknown account", []string{"list", "--account-name", "nosuch", "-c", "insights-logs-auditevent"}, 1},
		{"fail/no container", []string{"list", "--account-name", "logs1"}, 2},
		{"fail/no blob name", []string{"download", "--account-name", "logs1", "-c", "x"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := h.run(append([]string{"storage", "blob"}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d want %d: %s", code, tc.wantCode, errOut)
			}
		})
	}
}
