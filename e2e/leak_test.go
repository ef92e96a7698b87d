package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// Values that reach keyhaven through restore and through credential rotation
// appear in no audit event, log line, shipped blob or error message.
func TestNoSecretValueLeaksFromRestoreOrRotation(t *testing.T) {
	w := newWorld(t, khtest.Options{Args: []string{"--rotation-interval", "200ms"}})
	s := w.srv
	kh := cliSession(t, s)
	kh("storage", "account", "create", "-n", "leaklogs", "-g", "rg1", "-o", "none")
	kh("monitor", "diagnostic-settings", "create", "-n", "ship", "--resource", w.vaultID, "--storage-account", "leaklogs",
		"--logs", `[{"category":"AuditEvent","enabled":true}]`, "-o", "none")

	// Restore: back up, delete, purge, restore.
	restored := "RESTORED-VALUE-" + randHex(8)
	code, body := w.setSecret(t, "r", restored)
	mustStatus(t, 200, code, body)
	vu := s.VaultURL(w.vault)
	code, backup := s.Do(t, "POST", vu+"secrets/r/backup?api-version=7.5", w.kvToken, nil)
	mustStatus(t, 200, code, backup)
	var blob map[string]string
	_ = json.Unmarshal(backup, &blob)
	for _, step := range []struct{ method, path string }{{"DELETE", "secrets/r"}, {"DELETE", "deletedsecrets/r"}} {
		code, body = s.Do(t, step.method, vu+step.path+"?api-version=7.5", w.kvToken, nil)
		if code >= 300 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, code, body)
		}
	}
	waitFor(t, func() bool {
		code, _ := s.Do(t, "POST", vu+"secrets/restore?api-version=7.5", w.kvToken, map[string]string{"value": blob["value"]})
		return code == 200
	})
	// An error path that echoes input must not echo a value either.
	code, body = s.Do(t, "PUT", vu+"secrets/bad%20name?api-version=7.5", w.kvToken, map[string]string{"value": restored})
	if code != 400 || strings.Contains(string(body), restored) {
		t.Fatalf("bad-name set: %d %s", code, body)
	}

	// Rotation: a cluster whose credentials are archived into this vault.
	sub := s.Admin.SubscriptionID
	kh("networkcloud", "clustermanager", "create", "-n", "cm", "-g", "rg1",
		"--fabric-controller-id", "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/n", "--mi-system-assigned", "-o", "none")
	cmID := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.NetworkCloud/clusterManagers/cm"
	pid := strings.TrimSpace(kh("networkcloud", "clustermanager", "show", "--ids", cmID, "--query", "identity.principalId", "-o", "tsv"))
	kh("role", "assignment", "create", "--assignee", pid, "--role", "44f0a1a8-6fea-4b35-980a-8ff50c487c97", "--scope", w.vaultID, "-o", "none")
	initial := "INITIAL-BMC-" + randHex(6)
	rack := "{networkRackId:'/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkRacks/r',rackSkuId:'/subscriptions/" + sub + "/providers/Microsoft.NetworkCloud/rackSkus/s',rackSerialNumber:r1,bareMetalMachineConfigurationData:[{bmcCredentials:{username:root,password:'" + initial + "'},bmcMacAddress:'AA:BB:CC:DD:EE:01',bootMacAddress:'AA:BB:CC:DD:EF:01',machineName:m1,rackSlot:1,serialNumber:S1}]}"
	clusterID := "/subscriptions/" + sub + "/resourceGroups/rg1/providers/Microsoft.NetworkCloud/clusters/leak"
	kh("networkcloud", "cluster", "create", "-n", "leak", "-g", "rg1", "--extended-location", "name="+cmID, "type=CustomLocation",
		"--cluster-type", "SingleRack", "--cluster-version", "3.10.0", "--network-fabric-id", "/subscriptions/"+sub+"/resourceGroups/rg1/providers/Microsoft.ManagedNetworkFabric/networkFabrics/f",
		"--aggregator-or-single-rack-definition", rack, "-o", "none")
	kh("networkcloud", "cluster", "update", "--ids", clusterID, "--secret-archive", "{key-vault-id:"+w.vaultID+",use-key-vault:true}", "-o", "none")
	kh("networkcloud", "cluster", "deploy", "--ids", clusterID, "-o", "none")
	var rotated []string
	waitFor(t, func() bool {
		names := strings.Fields(kh("keyvault", "secret", "list", "--vault-name", w.vault, "--query", "[?tags.cluster].name", "-o", "tsv"))
		if len(names) < 3 { // BMC, console user, local path storage key
			names = strings.Fields(kh("keyvault", "secret", "list", "--vault-name", w.vault, "--query", "[?name!='r'].name", "-o", "tsv"))
		}
		if len(names) < 3 {
			return false
		}
		rotated = rotated[:0]
		for _, n := range names {
			rotated = append(rotated, strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", w.vault, "-n", n, "--query", "value", "-o", "tsv")))
		}
		return true
	})

	// Everything an operator or an attacker with log access could read.
	var haystack []string
	haystack = append(haystack, s.Logs())
	for _, id := range []string{w.vaultID, clusterID, "/"} {
		_, ev := s.Do(t, "GET", s.BaseURL+"/audit/events?resourceId="+id+"&top=1000", w.armToken, nil)
		haystack = append(haystack, string(ev))
	}
	waitFor(t, func() bool {
		out, err := s.CLI(t, "storage", "blob", "list", "--account-name", "leaklogs", "--container-name", "insights-logs-auditevent", "--query", "[].name", "-o", "tsv")
		return err == nil && strings.TrimSpace(out) != ""
	})
	for _, name := range strings.Fields(kh("storage", "blob", "list", "--account-name", "leaklogs", "--container-name", "insights-logs-auditevent", "--query", "[].name", "-o", "tsv")) {
		haystack = append(haystack, kh("storage", "blob", "download", "--account-name", "leaklogs", "--container-name", "insights-logs-auditevent", "--name", name))
	}
	needles := append([]string{restored, initial}, rotated...)
	for _, n := range needles {
		if len(n) < 8 {
			t.Fatalf("implausible secret value %q: the test would prove nothing", n)
		}
		for _, h := range haystack {
			if strings.Contains(h, n) {
				t.Fatalf("a secret value leaked (%d chars) into logs, audit events or shipped blobs", len(n))
			}
		}
	}
	t.Logf("%d values checked against %d haystacks", len(needles), len(haystack))
}
