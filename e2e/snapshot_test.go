package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// TestSnapshotSaveRestore: a snapshot taken while the server serves holds
// the state of that moment; restore refuses while the server runs, refuses a
// file that is not a keyhaven database and a keyring that does not open the
// snapshot, then puts the snapshot in place (keeping the database it
// replaces), and the restarted server serves the snapshot's state with its
// audit chains intact.
func TestSnapshotSaveRestore(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	s := w.srv
	kh := cliSession(t, s)
	admin := func(args ...string) (string, error) {
		t.Helper()
		out, err := exec.Command(khtest.Binary(t), append([]string{"admin", "snapshot"}, args...)...).CombinedOutput()
		return string(out), err
	}
	set := func(name, value string) {
		t.Helper()
		code, body := w.setSecret(t, name, value)
		mustStatus(t, 200, code, body)
	}
	set("a", "first")
	dir := t.TempDir()
	snap := filepath.Join(dir, "kh.snapshot")
	out, err := admin("save", "--data-dir", s.DataDir, "--out", snap)
	if err != nil || !strings.Contains(out, "snapshot written to "+snap) || !strings.Contains(out, "data keys, all opened by root key versions [1]") {
		t.Fatalf("snapshot save while serving: %v\n%s", err, out)
	}
	if out, err := admin("save", "--data-dir", s.DataDir, "--out", snap); err == nil {
		t.Fatalf("a second save overwrote the snapshot:\n%s", out)
	}
	set("a", "second")
	set("b", "after-the-snapshot")

	listen := fmt.Sprintf("127.0.0.1:%d", s.Port)
	if out, err := admin("restore", "--data-dir", s.DataDir, "--in", snap, "--listen", listen); err == nil || !strings.Contains(out, "keyhaven serve is running on") {
		t.Fatalf("restore while serving: %v\n%s", err, out)
	}
	s.Stop()

	junk := filepath.Join(dir, "junk")
	b := make([]byte, 8192)
	_, _ = rand.Read(b)
	if err := os.WriteFile(junk, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := admin("restore", "--data-dir", s.DataDir, "--in", junk, "--listen", listen); err == nil || !strings.Contains(out, "not a keyhaven database") {
		t.Fatalf("restore of random bytes: %v\n%s", err, out)
	}
	otherKey := filepath.Join(dir, "other.key")
	if _, _, err := seal.LoadOrCreateRoot(otherKey); err != nil {
		t.Fatal(err)
	}
	if out, err := admin("verify", "--data-dir", s.DataDir, "--in", snap, "--root-key-file", otherKey); err == nil || !strings.Contains(out, "do not open with this keyring") {
		t.Fatalf("verify with another keyring: %v\n%s", err, out)
	}
	if out, err := admin("verify", "--data-dir", s.DataDir, "--in", snap); err != nil || !strings.Contains(out, "verifies") {
		t.Fatalf("verify: %v\n%s", err, out)
	}

	out, err = admin("restore", "--data-dir", s.DataDir, "--in", snap, "--listen", listen)
	if err != nil || !strings.Contains(out, "restored ") || !strings.Contains(out, "kept as ") {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	kept := strings.TrimSpace(out[strings.LastIndex(out, "kept as ")+len("kept as "):])
	if fi, err := os.Stat(kept); err != nil || fi.Size() == 0 {
		t.Fatalf("the replaced database %q: %v", kept, err)
	}
	if fi, err := os.Stat(filepath.Join(s.DataDir, "keyhaven.db")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored database: %v %v", fi, err)
	}

	s.Restart()
	w.reconnect(t)
	if code, v, body := w.getSecret(t, "a"); code != 200 || v != "first" {
		t.Fatalf("a after restore: %d %q %s", code, v, body)
	}
	if code, _, _ := w.getSecret(t, "b"); code != 404 {
		t.Fatalf("b (written after the snapshot) after restore: %d", code)
	}
	if out := kh("audit", "verify", "--resource-id", w.vaultID); !strings.Contains(out, `"ok": true`) {
		t.Fatalf("audit chain after restore:\n%s", out)
	}
}
