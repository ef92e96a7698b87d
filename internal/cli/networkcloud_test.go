package cli

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestParseObjectArg(t *testing.T) {
	kv := "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1"
	uai := "/subscriptions/" + testSub + "/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/u1"
	dir := t.TempDir()
	rackFile := filepath.Join(dir, "rack.json")
	if err := os.WriteFile(rackFile, []byte(`{"networkRackId":"/x","rackSerialNumber":"r1","rackSkuId":"/y","bareMetalMachineConfigurationData":[{"rackSlot":3,"bmcCredentials":{"username":"root","password":"p"}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		arg    shArg
		tokens []string
		want   string // JSON
		help   bool
		errHas string
	}{
		{name: "ok/guide-secret-archive", arg: secretArchiveArg, tokens: []string{"{key-vault-id:" + kv + ",use-key-vault:true}"},
			want: `{"keyVaultId":"` + kv + `","useKeyVault":"True"}`},
		{name: "ok/case-insensitive-keys", arg: secretArchiveArg, tokens: []string{"{Key-Vault-ID:" + kv + ",USE_KEY_VAULT:FALSE}"},
			want: `{"keyVaultId":"` + kv + `","useKeyVault":"False"}`},
		{name: "ok/json-names", arg: secretArchiveArg, tokens: []string{`{"keyVaultId":"` + kv + `","useKeyVault":true}`},
			want: `{"keyVaultId":"` + kv + `","useKeyVault":"True"}`},
		{name: "ok/quoted-value", arg: secretArchiveArg, tokens: []string{"{key-vault-id:'" + kv + "',use-key-vault:'True'}"},
			want: `{"keyVaultId":"` + kv + `","useKeyVault":"True"}`},
		{name: "ok/pairs", arg: secretArchiveArg, tokens: []string{"key-vault-id=" + kv, "use-key-vault=true"},
			want: `{"keyVaultId":"` + kv + `","useKeyVault":"True"}`},
		{name: "ok/help", arg: secretArchiveArg, tokens: []string{"??"}, help: true},
		{name: "ok/settings-system", arg: secretArchiveSettingsArg, tokens: []string{"identity-type=SystemAssignedIdentity", "vault-uri=https://kv1.vault.localhost:8443/"},
			want: `{"associatedIdentity":{"identityType":"SystemAssignedIdentity"},"vaultUri":"https://kv1.vault.localhost:8443/"}`},
		{name: "ok/settings-user", arg: secretArchiveSettingsArg, tokens: []string{"identity-type=userassignedidentity", "identity-resource-id=" + uai, "vault_uri=https://kv1.vault.localhost:8443/"},
			want: `{"associatedIdentity":{"identityType":"UserAssignedIdentity","userAssignedIdentityResourceId":"` + uai + `"},"vaultUri":"https://kv1.vault.localhost:8443/"}`},
		{name: "ok/settings-shorthand", arg: secretArchiveSettingsArg, tokens: []string{"{identity-type:SystemAssignedIdentity,vault-uri:'https://kv1.vault.localhost:8443/'}"},
			want: `{"associatedIdentity":{"identityType":"SystemAssignedIdentity"},"vaultUri":"https://kv1.vault.localhost:8443/"}`},
		{name: "ok/rack-az-example", arg: rackArg, tokens: []string{"{networkRackId:'/a',rackSkuId:'/b',rackSerialNumber:b99m99r1,availabilityZone:1," +
			"storageApplianceConfigurationData:[{rackSlot:1,adminCredentials:{username:'adminuser',password:'password'},storageApplianceName:name,serialNumber:serial}]," +
			"bareMetalMachineConfigurationData:[{bmcCredentials:{password:'bmcPassword',username:'root'},bmcMacAddress:'AA:BB:CC:DD:E7:08',bootMacAddress:'AA:BB:CC:F8:71:2E',machineName:lab00r750wkr1,rackSlot:2,serialNumber:5HS7PK3}]}"},
			want: `{"availabilityZone":"1","bareMetalMachineConfigurationData":[{"bmcCredentials":{"password":"bmcPassword","username":"root"},"bmcMacAddress":"AA:BB:CC:DD:E7:08","bootMacAddress":"AA:BB:CC:F8:71:2E","machineName":"lab00r750wkr1","rackSlot":2,"serialNumber":"5HS7PK3"}],` +
				`"networkRackId":"/a","rackSerialNumber":"b99m99r1","rackSkuId":"/b","storageApplianceConfigurationData":[{"adminCredentials":{"password":"password","username":"adminuser"},"rackSlot":1,"serialNumber":"serial","storageApplianceName":"name"}]}`},
		{name: "ok/rack-file", arg: rackArg, tokens: []string{"@" + rackFile},
			want: `{"networkRackId":"/x","rackSerialNumber":"r1","rackSkuId":"/y","bareMetalMachineConfigurationData":[{"rackSlot":3,"bmcCredentials":{"username":"root","password":"p"}}]}`},
		{name: "ok/rack-file-path", arg: rackArg, tokens: []string{rackFile},
			want: `{"networkRackId":"/x","rackSerialNumber":"r1","rackSkuId":"/y","bareMetalMachineConfigurationData":[{"rackSlot":3,"bmcCredentials":{"username":"root","password":"p"}}]}`},
		{name: "ok/compute-list", arg: computeRacksArg, tokens: []string{"[{rackSerialNumber:r2},{rackSerialNumber:r3}]"},
			want: `[{"rackSerialNumber":"r2"},{"rackSerialNumber":"r3"}]`},
		{name: "fail/unknown-key", arg: secretArchiveArg, tokens: []string{"{vault:kv1}"}, errHas: "unknown key"},
		{name: "fail/enum", arg: secretArchiveArg, tokens: []string{"{key-vault-id:x,use-key-vault:maybe}"}, errHas: "invalid choice"},
		{name: "fail/unterminated", arg: secretArchiveArg, tokens: []string{"{key-vault-id:'x"}, errHas: "unterminated"},
		{name: "fail/missing-brace", arg: secretArchiveArg, tokens: []string{"{key-vault-id:x"}, errHas: "missing '}'"},
		{name: "fail/duplicate", arg: secretArchiveArg, tokens: []string{"{key-vault-id:x,keyVaultId:y}"}, errHas: ""},
		{name: "fail/not-pair", arg: secretArchiveSettingsArg, tokens: []string{"vault-uri"}, errHas: "KEY=VALUE"},
		{name: "fail/int", arg: rackArg, tokens: []string{"{bareMetalMachineConfigurationData:[{rackSlot:two}]}"}, errHas: "not an integer"},
		{name: "fail/list-expected", arg: computeRacksArg, tokens: []string{"{rackSerialNumber:r2}"}, errHas: "expected a list"},
		{name: "fail/deep", arg: rackArg, tokens: []string{strings.Repeat("[", 40) + strings.Repeat("]", 40)}, errHas: "deeper"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, help, err := parseObjectArg(tc.arg, tc.tokens)
			if help != tc.help {
				t.Fatalf("help %v", help)
			}
			if tc.help {
				return
			}
			if tc.want == "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err %v, want %q", err, tc.errHas)
				}
				if _, ok := err.(usageError); !ok {
					t.Fatalf("err %T is not a usage error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var w any
			if err := json.Unmarshal([]byte(tc.want), &w); err != nil {
				t.Fatal(err)
			}
			gb, _ := json.Marshal(v)
			var g any
			_ = json.Unmarshal(gb, &g)
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("got  %s\nwant %s", gb, tc.want)
			}
		})
	}
}

func FuzzSecretArchiveArg(f *testing.F) {
	for _, s := range []string{"{key-vault-id:/subscriptions/x/resourceGroups/r/providers/Microsoft.KeyVault/vaults/v,use-key-vault:true}",
		`{"keyVaultId":"a","useKeyVault":"False"}`, "{a:[b,{c:'d''e'}]}", "??", "{", "{'':x}", `{"k\"":1}`, "[]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, help, err := parseObjectArg(secretArchiveArg, []string{s})
		if help || err != nil {
			return
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%T", v)
		}
		for k, val := range m {
			switch k {
			case "keyVaultId":
				if _, ok := val.(string); !ok {
					t.Fatalf("keyVaultId %T", val)
				}
			case "useKeyVault":
				if val != "True" && val != "False" {
					t.Fatalf("useKeyVault %v", val)
				}
			default:
				t.Fatalf("unexpected key %q", k)
			}
		}
	})
}

func TestNetworkCloudSyntaxHelp(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name string
		args []string
		has  []string
	}{
		{"ok/settings-help", []string{"networkcloud", "cluster", "update", "--secret-archive-settings", "??", "--help"},
			[]string{"--secret-archive-settings", "identity-type", "identity-resource-id", "vault-uri", "SystemAssignedIdentity, UserAssignedIdentity", "Example:"}},
		{"ok/settings-without-help-flag", []string{"networkcloud", "cluster", "update", "--secret-archive-settings", "??"},
			[]string{"vault-uri", "Example:"}},
		{"ok/secret-archive-help", []string{"networkcloud", "cluster", "update", "--secret-archive", "??", "--help"},
			[]string{"--secret-archive", "key-vault-id", "use-key-vault", "True, False", `"{key-vault-id:XX,use-key-vault:XX}"`}},
		{"ok/create-settings-help", []string{"networkcloud", "cluster", "create", "--secret-archive-settings", "??"},
			[]string{"vault-uri"}},
		{"ok/plain-help", []string{"networkcloud", "cluster", "update", "--help"}, []string{"--secret-archive-settings", "--mi-user-assigned", "--ids"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := h.run(tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, s := range tc.has {
				if !strings.Contains(out, s) {
					t.Fatalf("output lacks %q:\n%s", s, out)
				}
			}
		})
	}
}

func TestNetworkCloudCommands(t *testing.T) {
	f := newFakeServer(t)
	sub := "/subscriptions/" + testSub
	rg := sub + "/resourceGroups/rg1"
	cm := rg + "/providers/Microsoft.NetworkCloud/clusterManagers/cm1"
	cl := rg + "/providers/Microsoft.NetworkCloud/clusters/c1"
	bmm := rg + "/providers/Microsoft.NetworkCloud/bareMetalMachines/bmm1"
	kv := rg + "/providers/Microsoft.KeyVault/vaults/kv1"
	uai := rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/myUAI"
	fc := rg + "/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/fc1"
	ws := rg + "/providers/microsoft.operationalInsights/workspaces/law1"
	var mu sync.Mutex
	var bodies []map[string]any
	resource := func(id string) map[string]any {
		return map[string]any{"id": id, "name": id[strings.LastIndex(id, "/")+1:], "location": "eastus",
			"properties": map[string]any{"provisioningState": "Succeeded", "secretArchive": map[string]any{"keyVaultId": kv, "useKeyVault": "True"}}}
	}
	f.handle = func(w http.ResponseWriter, r *http.Request, body []byte) {
		if len(body) > 0 {
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			mu.Lock()
			bodies = append(bodies, m)
			mu.Unlock()
		}
		switch {
		case strings.Contains(r.URL.Path, "/operationStatuses/"):
			writeJSON(w, 200, map[string]any{"status": "Succeeded"})
		case r.Method == http.MethodPost:
			w.Header().Set("Azure-AsyncOperation", f.base+sub+"/providers/Microsoft.NetworkCloud/locations/eastus/operationStatuses/op1?api-version=2025-02-01")
			w.WriteHeader(202)
		case r.Method == http.MethodGet && (strings.HasSuffix(r.URL.Path, "/clusters") || strings.HasSuffix(r.URL.Path, "/bareMetalMachines")):
			writeJSON(w, 200, map[string]any{"value": []any{resource(cl)}})
		case r.Method == http.MethodDelete:
			w.WriteHeader(200)
		default:
			writeJSON(w, 200, resource(r.URL.Path))
		}
	}
	h := newHarness(t)
	h.login(f)
	tests := []struct {
		name     string
		args     []string
		want     []string       // METHOD path?query
		body     map[string]any // the last request body, when checked
		stdout   string
		exitCode int
	}{
		{name: "ok/clustermanager-create-system", args: []string{"networkcloud", "clustermanager", "create", "--name", "cm1", "--location", "eastus",
			"--analytics-workspace-id", ws, "--fabric-controller-id", fc, "--managed-resource-group-configuration", "name=my-managed-rg",
			"--tags", "key1=myvalue1", "key2=myvalue2", "--resource-group", "rg1", "--mi-system-assigned", "-o", "none"},
			want: []string{"PUT " + cm + "?api-version=2025-02-01"},
			body: map[string]any{"location": "eastus", "tags": map[string]any{"key1": "myvalue1", "key2": "myvalue2"}, "identity": map[string]any{"type": "SystemAssigned"},
				"properties": map[string]any{"analyticsWorkspaceId": ws, "fabricControllerId": fc, "managedResourceGroupConfiguration": map[string]any{"name": "my-managed-rg"}}}},
		{name: "ok/clustermanager-update-user", args: []string{"networkcloud", "clustermanager", "update", "--name", "cm1", "--resource-group", "rg1", "--mi-user-assigned", uai, "-o", "none"},
			want: []string{"PATCH " + cm + "?api-version=2025-02-01"},
			body: map[string]any{"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uai: map[string]any{}}}}},
		{name: "ok/clustermanager-show-ids", args: []string{"networkcloud", "clustermanager", "show", "--ids", cm, "-o", "none"},
			want: []string{"GET " + cm + "?api-version=2025-02-01"}},
		{name: "ok/cluster-update-secret-archive", args: []string{"networkcloud", "cluster", "update", "--ids", cl, "--secret-archive", "{key-vault-id:" + kv + ",use-key-vault:true}", "-o", "none"},
			want: []string{"PATCH " + cl + "?api-version=2025-02-01"},
			body: map[string]any{"properties": map[string]any{"secretArchive": map[string]any{"keyVaultId": kv, "useKeyVault": "True"}}}},
		{name: "ok/cluster-show-query-secret-archive", args: []string{"networkcloud", "cluster", "show", "--ids", cl, "--query", "secretArchive", "-o", "json"},
			want:   []string{"GET " + cl + "?api-version=2025-02-01"},
			stdout: `{"keyVaultId":"` + kv + `","useKeyVault":"True"}`},
		{name: "ok/cluster-update-settings-both-identities", args: []string{"networkcloud", "cluster", "update", "--ids", cl, "--mi-system-assigned", "--mi-user-assigned", uai,
			"--secret-archive-settings", "identity-type=UserAssignedIdentity", "identity-resource-id=" + uai, "vault-uri=https://kv1.vault.localhost:8443/", "-o", "none"},
			want: []string{"PATCH " + cl + "?api-version=2025-02-01"},
			body: map[string]any{"identity": map[string]any{"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": map[string]any{uai: map[string]any{}}},
				"properties": map[string]any{"secretArchiveSettings": map[string]any{"vaultUri": "https://kv1.vault.localhost:8443/",
					"associatedIdentity": map[string]any{"identityType": "UserAssignedIdentity", "userAssignedIdentityResourceId": uai}}}}},
		{name: "ok/cluster-create", args: []string{"networkcloud", "cluster", "create", "--name", "c1", "--resource-group", "rg1", "--location", "eastus",
			"--extended-location", "name=" + cm, "--cluster-type", "SingleRack", "--cluster-version", "3.14.2", "--network-fabric-id", fc,
			"--aggregator-or-single-rack-definition", "{networkRackId:/n,rackSkuId:/s,rackSerialNumber:r1}",
			"--mi-system-assigned", "--secret-archive-settings", "identity-type=SystemAssignedIdentity", "vault-uri=https://kv1.vault.localhost:8443/", "-o", "none"},
			want: []string{"PUT " + cl + "?api-version=2025-02-01"},
			body: map[string]any{"location": "eastus", "identity": map[string]any{"type": "SystemAssigned"},
				"extendedLocation": map[string]any{"name": cm, "type": "CustomLocation"},
				"properties": map[string]any{"clusterType": "SingleRack", "clusterVersion": "3.14.2", "networkFabricId": fc,
					"aggregatorOrSingleRackDefinition": map[string]any{"networkRackId": "/n", "rackSkuId": "/s", "rackSerialNumber": "r1"},
					"secretArchiveSettings":            map[string]any{"vaultUri": "https://kv1.vault.localhost:8443/", "associatedIdentity": map[string]any{"identityType": "SystemAssignedIdentity"}}}}},
		{name: "ok/cluster-deploy", args: []string{"networkcloud", "cluster", "deploy", "-n", "c1", "-g", "rg1"},
			want: []string{"POST " + cl + "/deploy?api-version=2025-02-01", "GET " + sub + "/providers/Microsoft.NetworkCloud/locations/eastus/operationStatuses/op1?api-version=2025-02-01"}},
		{name: "ok/rotate-credential", args: []string{"networkcloud", "cluster", "rotate-credential", "--ids", cl, "--credentials", "BMCCredential", "ConsoleUser"},
			want: []string{"POST " + cl + "/rotateCredential?api-version=2025-02-01", "GET " + sub + "/providers/Microsoft.NetworkCloud/locations/eastus/operationStatuses/op1?api-version=2025-02-01"},
			body: map[string]any{"credentials": []any{"BMCCredential", "ConsoleUser"}}},
		{name: "ok/bmm-cordon", args: []string{"networkcloud", "baremetalmachine", "cordon", "-n", "bmm1", "-g", "rg1", "--evacuate", "true"},
			want: []string{"POST " + bmm + "/cordon?api-version=2025-02-01", "GET " + sub + "/providers/Microsoft.NetworkCloud/locations/eastus/operationStatuses/op1?api-version=2025-02-01"},
			body: map[string]any{"evacuate": "True"}},
		{name: "ok/bmm-list", args: []string{"networkcloud", "baremetalmachine", "list", "-g", "rg1", "-o", "none"},
			want: []string{"GET " + rg + "/providers/Microsoft.NetworkCloud/bareMetalMachines?api-version=2025-02-01"}},
		{name: "ok/sa-show", args: []string{"networkcloud", "storageappliance", "show", "-n", "sa1", "-g", "rg1", "-o", "none"},
			want: []string{"GET " + rg + "/providers/Microsoft.NetworkCloud/storageAppliances/sa1?api-version=2025-02-01"}},
		{name: "ok/cluster-list-sub", args: []string{"networkcloud", "cluster", "list", "-o", "none"},
			want: []string{"GET " + sub + "/providers/Microsoft.NetworkCloud/clusters?api-version=2025-02-01"}},
		{name: "ok/cluster-delete", args: []string{"networkcloud", "cluster", "delete", "--ids", cl, "--yes"},
			want: []string{"DELETE " + cl + "?api-version=2025-02-01"}},
		{name: "fail/ids-wrong-type", args: []string{"networkcloud", "cluster", "show", "--ids", cm}, exitCode: 2},
		{name: "fail/bad-secret-archive", args: []string{"networkcloud", "cluster", "update", "--ids", cl, "--secret-archive", "{key-vault-id:x,use-key-vault:perhaps}"}, exitCode: 2},
		{name: "fail/mi-user-not-uai", args: []string{"networkcloud", "clustermanager", "update", "-n", "cm1", "-g", "rg1", "--mi-user-assigned", kv}, exitCode: 2},
		{name: "fail/rotate-no-credentials", args: []string{"networkcloud", "cluster", "rotate-credential", "--ids", cl}, exitCode: 2},
		{name: "fail/create-missing-fabric", args: []string{"networkcloud", "clustermanager", "create", "-n", "cm1", "-g", "rg1"}, exitCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.reset()
			mu.Lock()
			bodies = nil
			mu.Unlock()
			out, errOut, code := h.run(tc.args...)
			if code != tc.exitCode {
				t.Fatalf("exit %d, want %d: %s", code, tc.exitCode, errOut)
			}
			if code != 0 {
				if len(f.requests(nil)) != 0 {
					t.Fatalf("a usage error sent requests: %v", f.requests(nil))
				}
				return
			}
			var got []string
			for _, r := range f.requests(nil) {
				got = append(got, r.Method+" "+r.Path+"?"+r.Query)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("requests\n got  %v\n want %v", got, tc.want)
			}
			if tc.body != nil {
				mu.Lock()
				last := bodies[len(bodies)-1]
				mu.Unlock()
				wb, _ := json.Marshal(tc.body)
				var w map[string]any
				_ = json.Unmarshal(wb, &w)
				if !reflect.DeepEqual(last, w) {
					gb, _ := json.Marshal(last)
					t.Fatalf("body\n got  %s\n want %s", gb, wb)
				}
			}
			if tc.stdout != "" {
				var g, w any
				if err := json.Unmarshal([]byte(out), &g); err != nil {
					t.Fatalf("stdout %q: %v", out, err)
				}
				_ = json.Unmarshal([]byte(tc.stdout), &w)
				if !reflect.DeepEqual(g, w) {
					t.Fatalf("stdout %s, want %s", out, tc.stdout)
				}
			}
		})
	}
}
