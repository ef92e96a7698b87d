package e2e

import (
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// The control plane through the CLI and the real binary: the vault life cycle
// (soft-delete, recover with its contents, purge), purge protection, the
// firewall by caller address, and locks.
func TestCLIControlPlane(t *testing.T) {
	s := khtest.Start(t, khtest.Options{})
	kh := cliSession(t, s)
	fails := func(wantCode string, args ...string) {
		t.Helper()
		out, err := s.CLI(t, args...)
		if err == nil || !strings.Contains(out, wantCode) {
			t.Fatalf("keyhaven %s: want failure %s, got %v\n%s", strings.Join(args, " "), wantCode, err, out)
		}
	}
	kh("group", "create", "-n", "rg1", "-l", "local", "-o", "none")

	// Name rules are enforced with a clear error.
	fails("InvalidResourceName", "keyvault", "create", "-n", "1bad", "-g", "rg1")
	fails("InvalidResourceName", "keyvault", "create", "-n", "a--b", "-g", "rg1")

	// Soft-delete keeps the vault and its secrets; recover brings both back.
	kh("keyvault", "create", "-n", "lifevault", "-g", "rg1", "--retention-days", "7", "-o", "none")
	firstVersion := strings.TrimSpace(kh("keyvault", "secret", "set", "--vault-name", "lifevault", "-n", "keep", "--value", "kept-v1",
		"--query", "id", "-o", "tsv"))
	firstVersion = firstVersion[strings.LastIndex(firstVersion, "/")+1:]
	kh("keyvault", "secret", "set", "--vault-name", "lifevault", "-n", "keep", "--value", "kept", "-o", "none")
	// A secret already soft-deleted inside the vault comes back deleted, not live.
	kh("keyvault", "secret", "set", "--vault-name", "lifevault", "-n", "gone", "--value", "gone-v1", "-o", "none")
	kh("keyvault", "secret", "delete", "--vault-name", "lifevault", "-n", "gone", "-o", "none")
	kh("keyvault", "delete", "-n", "lifevault", "-g", "rg1")
	if !strings.Contains(kh("keyvault", "list-deleted", "-o", "tsv"), "lifevault") {
		t.Fatal("deleted vault not listed")
	}
	// The name stays reserved while the vault is soft-deleted.
	fails("ConflictError", "keyvault", "create", "-n", "lifevault", "-g", "rg1")
	kh("keyvault", "recover", "-n", "lifevault", "-o", "none")
	if got := strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", "lifevault", "-n", "keep", "--query", "value", "-o", "tsv")); got != "kept" {
		t.Fatalf("secret after vault recovery: %q", got)
	}
	// Every version comes back, not only the latest.
	if got := strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", "lifevault", "-n", "keep", "--version", firstVersion,
		"--query", "value", "-o", "tsv")); got != "kept-v1" {
		t.Fatalf("older version after vault recovery: %q", got)
	}
	if got := strings.Fields(kh("keyvault", "secret", "list-versions", "--vault-name", "lifevault", "-n", "keep", "--query", "[].id", "-o", "tsv")); len(got) != 2 {
		t.Fatalf("versions after vault recovery: %v", got)
	}
	if !strings.Contains(kh("keyvault", "secret", "list-deleted", "--vault-name", "lifevault", "--query", "[].name", "-o", "tsv"), "gone") {
		t.Fatal("a secret deleted before the vault was not deleted after its recovery")
	}
	fails("SecretNotFound", "keyvault", "secret", "show", "--vault-name", "lifevault", "-n", "gone")
	kh("keyvault", "delete", "-n", "lifevault", "-g", "rg1")
	kh("keyvault", "purge", "-n", "lifevault")
	if strings.Contains(kh("keyvault", "list-deleted", "-o", "tsv"), "lifevault") {
		t.Fatal("purged vault still listed")
	}
	kh("keyvault", "create", "-n", "lifevault", "-g", "rg1", "-o", "none") // the name is free again
	if out, err := s.CLI(t, "keyvault", "secret", "show", "--vault-name", "lifevault", "-n", "keep"); err == nil {
		t.Fatalf("a purged vault's secret came back in the new vault: %s", out)
	}

	// Purge protection: cannot be turned off, and refuses purge.
	kh("keyvault", "create", "-n", "protvault", "-g", "rg1", "--enable-purge-protection", "true", "-o", "none")
	fails("ERROR", "keyvault", "update", "-n", "protvault", "-g", "rg1", "--enable-purge-protection", "false")
	kh("keyvault", "delete", "-n", "protvault", "-g", "rg1")
	fails("ERROR", "keyvault", "purge", "-n", "protvault")

	// Firewall: the caller is 127.0.0.1.
	kh("keyvault", "create", "-n", "fwvault", "-g", "rg1", "-o", "none")
	kh("keyvault", "secret", "set", "--vault-name", "fwvault", "-n", "s", "--value", "v", "-o", "none")
	kh("keyvault", "update", "-n", "fwvault", "-g", "rg1", "--default-action", "Deny", "--bypass", "None", "-o", "none")
	fails("ForbiddenByFirewall", "keyvault", "secret", "show", "--vault-name", "fwvault", "-n", "s")
	kh("keyvault", "network-rule", "add", "-n", "fwvault", "-g", "rg1", "--ip-address", "127.0.0.0/8", "-o", "none")
	kh("keyvault", "secret", "show", "--vault-name", "fwvault", "-n", "s", "-o", "none")
	if !strings.Contains(kh("keyvault", "network-rule", "list", "-n", "fwvault", "-g", "rg1", "-o", "json"), "127.0.0.0/8") {
		t.Fatal("network rule not listed")
	}
	kh("keyvault", "network-rule", "remove", "-n", "fwvault", "-g", "rg1", "--ip-address", "127.0.0.0/8", "-o", "none")
	fails("ForbiddenByFirewall", "keyvault", "secret", "show", "--vault-name", "fwvault", "-n", "s")
	// Bypass AzureServices admits trusted platform identities only; the
	// administrator is not one, so it is still refused.
	kh("keyvault", "update", "-n", "fwvault", "-g", "rg1", "--bypass", "AzureServices", "-o", "none")
	if got := strings.TrimSpace(kh("keyvault", "show", "-n", "fwvault", "-g", "rg1", "--query", "properties.networkAcls.bypass", "-o", "tsv")); got != "AzureServices" {
		t.Fatalf("bypass = %q", got)
	}
	fails("ForbiddenByFirewall", "keyvault", "secret", "show", "--vault-name", "fwvault", "-n", "s")

	// A storage account with a system-assigned and a user-assigned identity.
	uai := strings.TrimSpace(kh("identity", "create", "-n", "acct-uai", "-g", "rg1", "--query", "id", "-o", "tsv"))
	if got := strings.TrimSpace(kh("storage", "account", "create", "-n", "idacct", "-g", "rg1", "--assign-identity",
		"--user-identity-id", uai, "--query", "[identity.type, identity.principalId != null]", "-o", "tsv")); got != "SystemAssigned,UserAssigned\nTrue" {
		t.Fatalf("storage account identity = %q", got)
	}

	// Locks: CanNotDelete on the group protects the vault in it; ReadOnly on
	// the vault refuses updates; removing the lock restores both.
	kh("lock", "create", "-n", "keep", "-g", "rg1", "--lock-type", "CanNotDelete", "-o", "none")
	fails("ScopeLocked", "keyvault", "delete", "-n", "fwvault", "-g", "rg1")
	fails("ScopeLocked", "group", "delete", "-n", "rg1", "--yes")
	kh("lock", "delete", "-n", "keep", "-g", "rg1")
	kh("lock", "create", "-n", "ro", "-g", "rg1", "--resource", "fwvault", "--resource-type", "Microsoft.KeyVault/vaults", "--lock-type", "ReadOnly", "-o", "none")
	fails("ScopeLocked", "keyvault", "update", "-n", "fwvault", "-g", "rg1", "--default-action", "Allow")
	// Locks govern the control plane only: the data plane still works.
	kh("keyvault", "network-rule", "list", "-n", "fwvault", "-g", "rg1", "-o", "none")
	if !strings.Contains(kh("lock", "list", "-g", "rg1", "--query", "[].level", "-o", "tsv"), "ReadOnly") {
		t.Fatal("lock not listed")
	}
	kh("lock", "delete", "-n", "ro", "-g", "rg1", "--resource", "fwvault", "--resource-type", "Microsoft.KeyVault/vaults")
	kh("keyvault", "delete", "-n", "fwvault", "-g", "rg1")
}
