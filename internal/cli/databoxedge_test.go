package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// edgeFake serves one resource group and answers device requests by echoing
// what it got; alerts list one alert.
func edgeFake(f *fakeServer) {
	rg := "/subscriptions/" + testSub + "/resourceGroups/rg1"
	dev := rg + "/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices/edge1"
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		p := r.URL.Path
		var in map[string]any
		_ = json.Unmarshal(body, &in)
		switch {
		case p == rg && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"id": rg, "name": "rg1", "location": "westeurope"})
		case p == dev && r.Method == http.MethodPut:
			writeJSON(w, 200, map[string]any{"id": dev, "name": "edge1", "location": in["location"], "sku": in["sku"], "identity": in["identity"],
				"properties": map[string]any{"dataBoxEdgeDeviceStatus": "ReadyToSetup"}})
		case p == dev && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"id": dev, "name": "edge1"})
		case p == dev && r.Method == http.MethodDelete:
			w.WriteHeader(200)
		case strings.HasSuffix(p, "/dataBoxEdgeDevices") && r.Method == http.MethodGet:
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": dev, "name": "edge1"}}})
		case p == dev+"/alerts":
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"name": "a1", "properties": map[string]any{"alertType": "KeyVaultDeletedEvent"}}}})
		case strings.HasPrefix(p, dev+"/") && r.Method == http.MethodPost:
			writeJSON(w, 200, map[string]any{"action": p[len(dev)+1:], "body": in})
		default:
			writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "ResourceNotFound", "message": p}})
		}
	}
}

func TestEdgeCommands(t *testing.T) {
	f := newFakeServer(t)
	edgeFake(f)
	h := newHarness(t)
	h.login(f)
	dev := "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices/edge1"
	tests := []struct {
		name      string
		args      []string
		wantCode  int
		method    string
		path      string
		wantQuery string
		wantBody  string // a substring of the request body
		wantOut   string // a substring of stdout
	}{
		{name: "ok/create", args: []string{"databoxedge", "device", "create", "--device-name", "edge1", "-g", "rg1", "--sku", "EdgeP_Base"},
			method: "PUT", path: dev, wantBody: `"identity":{"type":"SystemAssigned"}`, wantOut: `"EdgeP_Base"`},
		{name: "ok/create-location", args: []string{"databoxedge", "device", "create", "-n", "edge1", "-g", "rg1", "-l", "eastus", "--sku", "Edge"},
			method: "PUT", path: dev, wantBody: `"location":"eastus"`},
		{name: "ok/show", args: []string{"databoxedge", "device", "show", "-n", "edge1", "-g", "rg1"}, method: "GET", path: dev, wantOut: `"edge1"`},
		{name: "ok/show-ids", args: []string{"databoxedge", "device", "show", "--ids", dev}, method: "GET", path: dev},
		{name: "ok/list", args: []string{"databoxedge", "device", "list", "-g", "rg1"}, method: "GET",
			path: "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices", wantOut: `"edge1"`},
		{name: "ok/generate-activation-key", args: []string{"databoxedge", "device", "generate-activation-key", "-n", "edge1", "-g", "rg1", "--key-vault-name", "edge1-kv"},
			method: "POST", path: dev + "/generateActivationKey", wantBody: `"keyVaultName":"edge1-kv"`},
		{name: "ok/show-extended-info", args: []string{"databoxedge", "device", "show-extended-info", "-n", "edge1", "-g", "rg1"},
			method: "POST", path: dev + "/getExtendedInformation", wantOut: `"getExtendedInformation"`},
		{name: "ok/update-extended-info", args: []string{"databoxedge", "device", "update-extended-info", "-n", "edge1", "-g", "rg1", "--sync-status", "KeyVaultSynced"},
			method: "POST", path: dev + "/updateExtendedInformation", wantBody: `"syncStatus":"KeyVaultSynced"`},
		{name: "ok/recover-key-vault", args: []string{"databoxedge", "device", "recover-key-vault", "-n", "edge1", "-g", "rg1"},
			method: "POST", path: dev + "/recoverKeyVault"},
		{name: "ok/sync-secrets", args: []string{"databoxedge", "device", "sync-secrets", "-n", "edge1", "-g", "rg1"},
			method: "POST", path: dev + "/syncDeviceSecrets", wantOut: `"syncDeviceSecrets"`},
		{name: "ok/alert-list", args: []string{"databoxedge", "alert", "list", "-n", "edge1", "-g", "rg1"}, method: "GET", path: dev + "/alerts",
			wantOut: "KeyVaultDeletedEvent"},
		{name: "ok/delete-keeps-vault", args: []string{"databoxedge", "device", "delete", "-n", "edge1", "-g", "rg1", "--yes"}, method: "DELETE", path: dev},
		{name: "ok/delete-with-vault", args: []string{"databoxedge", "device", "delete", "-n", "edge1", "-g", "rg1", "--delete-key-vault", "-y"},
			method: "DELETE", path: dev, wantQuery: "deleteKeyVault=true"},
		{name: "fail/create-no-name", args: []string{"databoxedge", "device", "create", "-g", "rg1"}, wantCode: 2},
		{name: "fail/show-no-group", args: []string{"databoxedge", "device", "show", "-n", "edge1"}, wantCode: 2},
		{name: "fail/update-no-status", args: []string{"databoxedge", "device", "update-extended-info", "-n", "edge1", "-g", "rg1"}, wantCode: 2},
		{name: "fail/alert-no-name", args: []string{"databoxedge", "alert", "list", "-g", "rg1"}, wantCode: 2},
		{name: "fail/ids-wrong-type", args: []string{"databoxedge", "device", "show", "--ids",
			"/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/v1"}, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			out, errOut, code := h.run(tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tc.wantCode, errOut)
			}
			if tc.wantCode != 0 {
				return
			}
			reqs := f.requests(func(r recorded) bool { return r.Method == tc.method && r.Path == tc.path })
			if len(reqs) != 1 {
				t.Fatalf("want one %s %s, saw %v", tc.method, tc.path, f.requests(func(recorded) bool { return true }))
			}
			if !strings.Contains(reqs[0].Query, "api-version="+apiEdge) || !strings.Contains(reqs[0].Query, tc.wantQuery) {
				t.Fatalf("query %q", reqs[0].Query)
			}
			if !strings.Contains(string(reqs[0].Body), tc.wantBody) {
				t.Fatalf("body %s, want %s", reqs[0].Body, tc.wantBody)
			}
			if !strings.Contains(out, tc.wantOut) {
				t.Fatalf("stdout %s, want %s", out, tc.wantOut)
			}
		})
	}
	t.Run("ok/delete-without-consent-has-no-query", func(t *testing.T) {
		f.reset()
		h.mustRun("databoxedge", "device", "delete", "-n", "edge1", "-g", "rg1")
		reqs := f.requests(func(r recorded) bool { return r.Method == "DELETE" })
		if len(reqs) != 1 || strings.Contains(reqs[0].Query, "deleteKeyVault") {
			t.Fatalf("delete %v", reqs)
		}
	})
}
