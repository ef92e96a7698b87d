package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// The Azure Stack Edge guide ("Manage Azure Stack Edge secrets using Azure
// Key Vault") through the CLI and the real binary: device creation,
// activation-key generation creating the locked vault, storage and
// diagnostic setting, regeneration without touching the vault, the alert
// for an accidentally deleted vault, "Reconfigure", and device deletion
// with and without consent to delete the vault.
func TestEdgeDeviceSecretsGuide(t *testing.T) {
	s := khtest.Start(t, khtest.Options{})
	kh := cliSession(t, s)
	tsv := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(kh(append(args, "-o", "tsv")...))
	}
	fails := func(wantCode string, args ...string) {
		t.Helper()
		out, err := s.CLI(t, args...)
		if err == nil || !strings.Contains(out, wantCode) {
			t.Fatalf("keyhaven %s: want failure %s, got %v\n%s", strings.Join(args, " "), wantCode, err, out)
		}
	}
	kh("group", "create", "-n", "edge-rg", "-l", "local", "-o", "none")

	// The resource comes with its system-assigned identity.
	principalID := tsv("databoxedge", "device", "create", "--device-name", "edge1", "-g", "edge-rg", "--sku", "EdgeP_Base",
		"--query", "identity.principalId")
	if principalID == "" {
		t.Fatal("no system-assigned identity")
	}
	if got := tsv("databoxedge", "device", "show", "-n", "edge1", "-g", "edge-rg", "--query", "properties.dataBoxEdgeDeviceStatus"); got != "ReadyToSetup" {
		t.Fatalf("status %q", got)
	}
	if !strings.Contains(tsv("databoxedge", "device", "list", "-g", "edge-rg", "--query", "[].name"), "edge1") {
		t.Fatal("device not listed")
	}

	// Generate the activation key: the key vault and everything around it.
	kh("keyvault", "create", "-n", "edge-taken", "-g", "edge-rg", "-o", "none")
	fails("KeyVaultNameInUse", "databoxedge", "device", "generate-activation-key", "-n", "edge1", "-g", "edge-rg", "--key-vault-name", "edge-taken")
	key := tsv("databoxedge", "device", "generate-activation-key", "-n", "edge1", "-g", "edge-rg", "--key-vault-name", "edge1-kv",
		"--query", "activationKey")
	if !strings.HasPrefix(key, "khase1.") {
		t.Fatalf("activation key %q", key)
	}
	pol := tsv("keyvault", "show", "-n", "edge1-kv", "-g", "edge-rg", "--query",
		"[properties.sku.name, properties.enableRbacAuthorization, properties.enableSoftDelete, length(properties.accessPolicies), properties.accessPolicies[0].objectId, join(',', properties.accessPolicies[0].permissions.secrets)]")
	if want := "standard\tFalse\tTrue\t1\t" + principalID + "\tget,set"; strings.ReplaceAll(pol, "\n", "\t") != want {
		t.Fatalf("vault: %q, want %q", pol, want)
	}
	if got := tsv("lock", "list", "-g", "edge-rg", "--resource", "edge1-kv", "--resource-type", "Microsoft.KeyVault/vaults", "--query", "[].level"); got != "CanNotDelete" {
		t.Fatalf("vault locks %q", got)
	}
	acct := tsv("storage", "account", "list", "-g", "edge-rg", "--query", "[?tags.keyVaultName=='edge1-kv'].[id, sku.name]")
	acctID, sku, _ := strings.Cut(strings.ReplaceAll(acct, "\n", "\t"), "\t")
	if sku != "Standard_ZRS" {
		t.Fatalf("audit account %q", acct)
	}
	if got := tsv("lock", "list", "--resource", acctID, "--query", "[].level"); got != "CanNotDelete" {
		t.Fatalf("account locks %q", got)
	}
	if got := tsv("monitor", "diagnostic-settings", "list", "--resource", "edge1-kv", "-g", "edge-rg", "--resource-type", "Microsoft.KeyVault/vaults",
		"--query", "[].properties.storageAccountId"); !strings.EqualFold(got, acctID) {
		t.Fatalf("diagnostic setting destination %q, want %q", got, acctID)
	}
	// The platform stored the Channel Integrity Key as the device's identity,
	// and that write is in the vault's audit log like any client's.
	if got := tsv("monitor", "log", "list", "--vault-name", "edge1-kv", "--operation", "SecretSet",
		"--query", "[?resultType=='Success'].identity.claim.oid | [0]"); got != principalID {
		t.Fatalf("the CIK's SecretSet event names caller %q, want the device identity %s", got, principalID)
	}
	ext := tsv("databoxedge", "device", "show-extended-info", "-n", "edge1", "-g", "edge-rg", "--query",
		"[properties.clientSecretStoreUrl, properties.keyVaultSyncStatus, properties.channelIntegrityKeyName]")
	if f := strings.Fields(ext); len(f) != 3 || !strings.Contains(f[0], "edge1-kv.") || f[1] != "KeyVaultSynced" || !strings.HasPrefix(f[2], "ase-cik-") {
		t.Fatalf("extended info %q", ext)
	}

	// Regenerating does not access the vault: a new key, the same vault.
	again := tsv("databoxedge", "device", "generate-activation-key", "-n", "edge1", "-g", "edge-rg", "--query", "[activationKey, keyVaultCreated]")
	if f := strings.Fields(again); len(f) != 2 || f[0] == key || f[1] != "False" {
		t.Fatalf("regenerated %q", again)
	}

	// The vault is deleted by accident: a critical alert; Reconfigure.
	fails("ScopeLocked", "keyvault", "delete", "-n", "edge1-kv", "-g", "edge-rg")
	kh("lock", "delete", "-n", "DataBoxEdgeKeyVaultLock", "-g", "edge-rg", "--resource", "edge1-kv", "--resource-type", "Microsoft.KeyVault/vaults")
	kh("keyvault", "delete", "-n", "edge1-kv", "-g", "edge-rg")
	if got := tsv("databoxedge", "alert", "list", "-n", "edge1", "-g", "edge-rg", "--query", "[].[properties.alertType, properties.severity]"); got != "KeyVaultDeletedEvent\tCritical" {
		t.Fatalf("alerts %q", got)
	}
	if got := tsv("databoxedge", "device", "recover-key-vault", "-n", "edge1", "-g", "edge-rg", "--query", "properties.keyVaultSyncStatus"); got != "KeyVaultSyncPending" {
		t.Fatalf("sync status after recovery %q", got)
	}
	if got := tsv("databoxedge", "alert", "list", "-n", "edge1", "-g", "edge-rg", "--query", "length(@)"); got != "0" {
		t.Fatalf("alerts after recovery %q", got)
	}
	if got := tsv("lock", "list", "-g", "edge-rg", "--resource", "edge1-kv", "--resource-type", "Microsoft.KeyVault/vaults", "--query", "[].level"); got != "CanNotDelete" {
		t.Fatalf("vault locks after recovery %q", got)
	}
	kh("databoxedge", "device", "update-extended-info", "-n", "edge1", "-g", "edge-rg", "--sync-status", "KeyVaultSynced", "-o", "none")

	// Delete without consent: the vault stays. With consent: it goes.
	kh("databoxedge", "device", "delete", "-n", "edge1", "-g", "edge-rg", "--yes")
	fails("ResourceNotFound", "databoxedge", "device", "show", "-n", "edge1", "-g", "edge-rg")
	kh("keyvault", "show", "-n", "edge1-kv", "-g", "edge-rg", "-o", "none")

	kh("databoxedge", "device", "create", "-n", "edge2", "-g", "edge-rg", "--sku", "EdgeP_Base", "-o", "none")
	kh("databoxedge", "device", "generate-activation-key", "-n", "edge2", "-g", "edge-rg", "--key-vault-name", "edge2-kv", "-o", "none")
	kh("databoxedge", "device", "delete", "-n", "edge2", "-g", "edge-rg", "--delete-key-vault", "--yes")
	fails("ResourceNotFound", "keyvault", "show", "-n", "edge2-kv", "-g", "edge-rg")
	if !strings.Contains(tsv("keyvault", "list-deleted", "--query", "[].name"), "edge2-kv") {
		t.Fatal("the consented vault is not soft-deleted")
	}
}

// The device side of the guide through the real binary: the device agent
// activates with its key, pushes its BitLocker recovery key and BMC user
// password to the vault as its own identity and keeps the CIK; an
// accidental vault delete makes its sync fail (critical alert),
// Reconfigure brings a pending sync the agent completes, and so does the
// operator's "Sync device secrets". No device secret reaches the state
// directory in the clear, the audit log or the logs.
func TestEdgeDeviceAgentGuide(t *testing.T) {
	s := khtest.Start(t, khtest.Options{})
	kh := cliSession(t, s)
	tsv := func(args ...string) string {
		t.Helper()
		return strings.TrimSpace(kh(append(args, "-o", "tsv")...))
	}
	var agentOutput []string
	// agent runs one pass; it returns the result and whether it succeeded.
	agent := func(dir string) (map[string]any, bool) {
		t.Helper()
		out, err := s.CLI(t, "edge", "agent", "--state-dir", dir, "--once")
		agentOutput = append(agentOutput, out)
		var res map[string]any
		if i := strings.Index(out, "{"); i >= 0 {
			dec := json.NewDecoder(strings.NewReader(out[i:]))
			_ = dec.Decode(&res)
		}
		if res == nil {
			t.Fatalf("edge agent --once: %v\n%s", err, out)
		}
		return res, err == nil
	}
	ext := func(query string) string {
		t.Helper()
		return tsv("databoxedge", "device", "show-extended-info", "-n", "edge3", "-g", "edge-rg", "--query", query)
	}
	alerts := func() string {
		t.Helper()
		return tsv("databoxedge", "alert", "list", "-n", "edge3", "-g", "edge-rg", "--query", "[].[properties.alertType, properties.severity]")
	}
	kh("group", "create", "-n", "edge-rg", "-l", "local", "-o", "none")
	principalID := tsv("databoxedge", "device", "create", "-n", "edge3", "-g", "edge-rg", "--sku", "EdgeP_Base", "--query", "identity.principalId")
	key := tsv("databoxedge", "device", "generate-activation-key", "-n", "edge3", "-g", "edge-rg", "--key-vault-name", "edge3-kv", "--query", "activationKey")
	// The operator may read the vault's secrets ("View secrets").
	kh("keyvault", "set-policy", "-n", "edge3-kv", "-g", "edge-rg", "--upn", s.Admin.Username, "--secret-permissions", "get", "list", "-o", "none")

	// Activate the device with its key: once.
	dir := filepath.Join(t.TempDir(), "edge3")
	act := kh("edge", "activate", "--server", s.BaseURL, "--ca-file", s.CAFile, "--activation-key", key, "--state-dir", dir,
		"--query", "[deviceId, keyVaultUri]", "-o", "tsv")
	if f := strings.Fields(act); len(f) != 2 || !strings.HasSuffix(f[0], "/dataBoxEdgeDevices/edge3") || !strings.Contains(f[1], "edge3-kv.") {
		t.Fatalf("activate: %q", act)
	}
	if out, err := s.CLI(t, "edge", "activate", "--server", s.BaseURL, "--ca-file", s.CAFile, "--activation-key", key,
		"--state-dir", filepath.Join(t.TempDir(), "again")); err == nil || !strings.Contains(out, "InvalidActivationKey") {
		t.Fatalf("a used activation key redeemed again: %v\n%s", err, out)
	}
	if got := tsv("databoxedge", "device", "show", "-n", "edge3", "-g", "edge-rg", "--query", "properties.dataBoxEdgeDeviceStatus"); got != "Online" {
		t.Fatalf("status after activation %q", got)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir: %v %v", fi, err)
	}
	for _, f := range []string{"device.key", "device.json", "ca.pem"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, fi, err)
		}
	}

	// The first pass pushes the device secrets; the operator sees them.
	res, ok := agent(dir)
	if !ok || res["status"] != "KeyVaultSynced" || len(res["pushed"].([]any)) != 2 {
		t.Fatalf("first pass: %v", res)
	}
	if got := ext("properties.keyVaultSyncStatus"); got != "KeyVaultSynced" {
		t.Fatalf("sync status %q", got)
	}
	refs := ext("[properties.deviceSecrets.SystemVolumeBitLockerRecoveryKey.keyVaultId, properties.deviceSecrets.BMCDefaultUserPassword.keyVaultId, properties.channelIntegrityKeyName]")
	f := strings.Fields(refs)
	if len(f) != 3 || !strings.Contains(f[0], "edge3-kv.") || !strings.Contains(f[1], "/secrets/ase-bmc-") {
		t.Fatalf("deviceSecrets %q", refs)
	}
	if x := kh("databoxedge", "device", "show-extended-info", "-n", "edge3", "-g", "edge-rg"); strings.Contains(x, "encryptedSecret") || strings.Contains(x, `"value"`) {
		t.Fatalf("extended info shows a value: %s", x)
	}
	blName := f[0][strings.Index(f[0], "/secrets/")+9 : strings.LastIndex(f[0], "/")]
	bmcName := f[1][strings.Index(f[1], "/secrets/")+9 : strings.LastIndex(f[1], "/")]
	names := tsv("keyvault", "secret", "list", "--vault-name", "edge3-kv", "--query", "[].name")
	for _, n := range []string{blName, bmcName, f[2]} {
		if !strings.Contains(names, n) {
			t.Fatalf("secret %s not listed: %q", n, names)
		}
	}
	show := func(name string) string {
		t.Helper()
		return tsv("keyvault", "secret", "show", "--vault-name", "edge3-kv", "-n", name, "--query", "value")
	}
	bitlocker, bmc, cik := show(blName), show(bmcName), show(f[2])
	if !regexp.MustCompile(`^\d{6}(-\d{6}){7}$`).MatchString(bitlocker) || len(bmc) != 24 || len(cik) != 44 {
		t.Fatalf("device secrets of unexpected shape: %d, %d, %d chars", len(bitlocker), len(bmc), len(cik))
	}
	// Pushed as the device identity, through the data plane.
	if got := tsv("keyvault", "secret", "show", "--vault-name", "edge3-kv", "-n", blName, "--query", "tags.deviceSecret"); got != "SystemVolumeBitLockerRecoveryKey" {
		t.Fatalf("tags %q", got)
	}
	// A steady pass pushes nothing.
	if res, ok := agent(dir); !ok || res["status"] != "KeyVaultSynced" || len(res["pushed"].([]any)) != 0 || res["reported"] != false {
		t.Fatalf("steady pass: %v", res)
	}

	// The vault is deleted by accident: the device cannot sync.
	kh("lock", "delete", "-n", "DataBoxEdgeKeyVaultLock", "-g", "edge-rg", "--resource", "edge3-kv", "--resource-type", "Microsoft.KeyVault/vaults")
	kh("keyvault", "delete", "-n", "edge3-kv", "-g", "edge-rg")
	if res, ok := agent(dir); ok || res["status"] != "KeyVaultSyncFailed" || res["reason"] == "" || res["reported"] != true {
		t.Fatalf("pass without vault: %v", res)
	}
	if got := ext("[properties.keyVaultSyncStatus, length(properties.keyVaultSyncError) > `0`]"); strings.Join(strings.Fields(got), " ") != "KeyVaultSyncFailed True" {
		t.Fatalf("extended info after a failed sync %q", got)
	}
	if got := alerts(); got != "KeyVaultDeletedEvent\tCritical" {
		t.Fatalf("alerts %q", got)
	}
	if got := tsv("databoxedge", "device", "show", "-n", "edge3", "-g", "edge-rg", "--query", "properties.dataBoxEdgeDeviceStatus"); got != "NeedsAttention" {
		t.Fatalf("status %q", got)
	}

	// Reconfigure: pending until the agent pushes the secrets again.
	if got := tsv("databoxedge", "device", "recover-key-vault", "-n", "edge3", "-g", "edge-rg", "--query", "properties.keyVaultSyncStatus"); got != "KeyVaultSyncPending" {
		t.Fatalf("after recovery %q", got)
	}
	if res, ok := agent(dir); !ok || res["status"] != "KeyVaultSynced" || len(res["pushed"].([]any)) != 2 {
		t.Fatalf("pass after recovery: %v", res)
	}
	if got := ext("properties.keyVaultSyncStatus"); got != "KeyVaultSynced" {
		t.Fatalf("after the pass %q", got)
	}
	if got := alerts(); got != "" {
		t.Fatalf("alerts after recovery %q", got)
	}
	if v := tsv("keyvault", "secret", "list-versions", "--vault-name", "edge3-kv", "-n", blName, "--query", "length(@)"); v != "2" {
		t.Fatalf("BitLocker key versions after the push %q", v)
	}

	// The managed identity loses its access policy: the sync fails, the
	// alert names it; Reconfigure restores it.
	kh("keyvault", "delete-policy", "-n", "edge3-kv", "-g", "edge-rg", "--object-id", principalID, "-o", "none")
	kh("databoxedge", "device", "sync-secrets", "-n", "edge3", "-g", "edge-rg", "-o", "none")
	if res, ok := agent(dir); ok || res["status"] != "KeyVaultSyncFailed" || !strings.Contains(res["reason"].(string), "403") {
		t.Fatalf("pass without access policy: %v", res)
	}
	if got := alerts(); got != "KeyVaultAccessPolicyMissingEvent\tCritical" {
		t.Fatalf("alerts %q", got)
	}
	kh("databoxedge", "device", "recover-key-vault", "-n", "edge3", "-g", "edge-rg", "-o", "none")
	if res, ok := agent(dir); !ok || res["status"] != "KeyVaultSynced" {
		t.Fatalf("pass after restoring access: %v", res)
	}

	// Sync device secrets: pending, then pushed.
	if got := tsv("databoxedge", "device", "sync-secrets", "-n", "edge3", "-g", "edge-rg", "--query", "properties.keyVaultSyncStatus"); got != "KeyVaultSyncPending" {
		t.Fatalf("sync-secrets %q", got)
	}
	if res, ok := agent(dir); !ok || res["status"] != "KeyVaultSynced" || len(res["pushed"].([]any)) != 2 {
		t.Fatalf("pass after sync-secrets: %v", res)
	}
	if got := ext("properties.keyVaultSyncStatus"); got != "KeyVaultSynced" {
		t.Fatalf("after sync-secrets %q", got)
	}
	if got := alerts(); got != "" {
		t.Fatalf("alerts at the end %q", got)
	}

	// No device secret in the clear: not in the state directory, the audit
	// log, the server's log or the agent's output.
	haystack := map[string][]string{"server log": {s.Logs()}, "agent output": agentOutput}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		haystack["state dir"] = append(haystack["state dir"], string(b))
	}
	armToken := s.AdminToken(t, s.BaseURL)
	var events []string
	for next := s.BaseURL + "/audit/events?top=1000"; next != ""; {
		code, b := s.Do(t, "GET", next, armToken, nil)
		if code != 200 {
			t.Fatalf("audit events: %d %s", code, b)
		}
		events = append(events, string(b))
		var page struct {
			NextLink string `json:"nextLink"`
		}
		_ = json.Unmarshal(b, &page)
		next = page.NextLink
		if strings.HasPrefix(next, "/") {
			next = s.BaseURL + next
		}
	}
	haystack["audit events"] = events
	keySecret := key[strings.LastIndex(key, ".")+1:]
	for name, v := range map[string]string{"BitLocker recovery key": bitlocker, "BMC password": bmc, "CIK": cik, "activation key": keySecret} {
		for where, hs := range haystack {
			for _, h := range hs {
				if strings.Contains(h, v) {
					t.Fatalf("the %s appears in the %s", name, where)
				}
			}
		}
	}
	all := strings.Join(events, "")
	if n := strings.Count(all, `"operationName":"DataBoxEdgeDeviceActivate"`); n != 2 {
		t.Fatalf("%d activation events, want 2 (one redeemed, one refused)", n)
	}
}
