package e2e

import (
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
