package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// cliSession logs the CLI in as the bootstrap administrator.
func cliSession(t *testing.T, s *khtest.Server) func(args ...string) string {
	t.Helper()
	run := func(args ...string) string {
		t.Helper()
		out, err := s.CLI(t, args...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	run("login", "--server", s.BaseURL, "--ca-file", s.CAFile, "--username", s.Admin.Username, "--password", s.Admin.Password, "-o", "none")
	cfg := filepath.Join(s.DataDir, "cli-config", "config.json")
	fi, err := os.Stat(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("CLI config mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(cfg); strings.Contains(string(b), s.Admin.Password) {
		t.Fatal("CLI config stores the user's password")
	}
	return run
}

// Every secret command of the CLI through the real binary, as an operator
// would type them.
func TestCLISecretLifecycle(t *testing.T) {
	s := khtest.Start(t, khtest.Options{})
	kh := cliSession(t, s)
	// The README's login: the bootstrap credential file as written by serve.
	if got := strings.TrimSpace(kh("login", "--credentials-file", filepath.Join(s.DataDir, "admin-credentials.json"), "--query", "[0].user.name", "-o", "tsv")); got != s.Admin.Username {
		t.Fatalf("login --credentials-file: %q", got)
	}
	kh("group", "create", "--name", "rg1", "--location", "local", "-o", "none")
	if got := strings.TrimSpace(kh("keyvault", "create", "--name", "clivault", "--resource-group", "rg1", "--location", "local", "--query", "properties.vaultUri", "-o", "tsv")); got != s.VaultURL("clivault") {
		t.Fatalf("vaultUri %q", got)
	}
	kv := func(args ...string) string {
		return kh(append([]string{"keyvault", "secret"}, append(args, "--vault-name", "clivault")...)...)
	}

	v1 := strings.TrimSpace(kv("set", "--name", "db", "--value", "first", "--query", "id", "-o", "tsv"))
	kv("set", "--name", "db", "--value", "second", "--content-type", "text/plain", "--tags", "env=test", "team=core", "-o", "none")
	if got := strings.TrimSpace(kv("show", "--name", "db", "--query", "value", "-o", "tsv")); got != "second" {
		t.Fatalf("latest value %q", got)
	}
	ver := v1[strings.LastIndex(v1, "/")+1:]
	if got := strings.TrimSpace(kv("show", "--name", "db", "--version", ver, "--query", "value", "-o", "tsv")); got != "first" {
		t.Fatalf("first version value %q", got)
	}
	if got := strings.TrimSpace(kh("keyvault", "secret", "show", "--id", v1, "--query", "value", "-o", "tsv")); got != "first" {
		t.Fatalf("--id show %q", got)
	}
	var versions []map[string]any
	mustJSON(t, kv("list-versions", "--name", "db"), &versions)
	if len(versions) != 2 {
		t.Fatalf("%d versions", len(versions))
	}

	// From a file, base64-encoded.
	f := filepath.Join(t.TempDir(), "blob.b64")
	os.WriteFile(f, []byte("aGVsbG8gZmlsZQ=="), 0o600)
	kv("set", "--name", "fromfile", "--file", f, "--encoding", "base64", "-o", "none")
	if got := strings.TrimSpace(kv("show", "--name", "fromfile", "--query", "value", "-o", "tsv")); got == "" {
		t.Fatal("file secret empty")
	}

	exp := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	kv("set-attributes", "--name", "db", "--expires", exp, "--tags", "env=prod", "-o", "none")
	var shown map[string]any
	mustJSON(t, kv("show", "--name", "db"), &shown)
	if tags, _ := shown["tags"].(map[string]any); tags["env"] != "prod" {
		t.Fatalf("tags after set-attributes: %v", shown["tags"])
	}

	table := kv("list", "-o", "table")
	if !strings.Contains(table, "db") || !strings.Contains(table, "fromfile") {
		t.Fatalf("list table:\n%s", table)
	}

	backup := filepath.Join(t.TempDir(), "db.backup")
	kv("backup", "--name", "db", "--file", backup)
	kv("delete", "--name", "db", "-o", "none")
	if got := strings.TrimSpace(kv("show-deleted", "--name", "db", "--query", "recoveryId", "-o", "tsv")); !strings.HasSuffix(got, "/deletedsecrets/db") {
		t.Fatalf("recoveryId %q", got)
	}
	if !strings.Contains(kv("list-deleted", "-o", "tsv"), "db") {
		t.Fatal("list-deleted lacks db")
	}
	// Setting a name that is deleted but recoverable is refused.
	if out, err := s.CLI(t, "keyvault", "secret", "set", "--vault-name", "clivault", "--name", "db", "--value", "x"); err == nil || !strings.Contains(out, "Conflict") {
		t.Fatalf("set on deleted name: %v %s", err, out)
	}
	kv("recover", "--name", "db", "-o", "none")
	waitFor(t, func() bool {
		out, err := s.CLI(t, "keyvault", "secret", "show", "--vault-name", "clivault", "--name", "db", "--query", "value", "-o", "tsv")
		return err == nil && strings.TrimSpace(out) == "second"
	})
	kv("delete", "--name", "db", "-o", "none")
	kv("purge", "--name", "db")
	if out, err := s.CLI(t, "keyvault", "secret", "show", "--vault-name", "clivault", "--name", "db"); err == nil || !strings.Contains(out, "SecretNotFound") {
		t.Fatalf("show after purge: %v %s", err, out)
	}
	kv("restore", "--file", backup, "-o", "none")
	if got := strings.TrimSpace(kv("show", "--name", "db", "--query", "value", "-o", "tsv")); got != "second" {
		t.Fatalf("value after restore %q", got)
	}
	if got := strings.TrimSpace(kh("account", "get-access-token", "--resource", s.VaultAudience(), "--query", "tokenType", "-o", "tsv")); got != "Bearer" {
		t.Fatalf("get-access-token tokenType %q", got)
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for i := 0; i < 50; i++ {
		if ok() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("condition not met in 5s")
}
