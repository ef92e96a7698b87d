package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// TestPurgerRemovesExpiredDeleted runs the server's background purger (the
// loop, not just the function): soft-deleted secrets and vaults whose
// retention has ended are purged on their own, with purge protection on,
// while those still within retention stay recoverable. Retention is 7 days
// at least, so the test moves the scheduled purge dates of some objects into
// the past in the stopped server's store (the purge index key and the
// deleted record, or the vault record), then restarts the server with a
// short --purge-interval.
func TestPurgerRemovesExpiredDeleted(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			opts := b.opts(t)
			opts.Args = append(opts.Args, "--purge-interval", "200ms")
			s := khtest.Start(t, opts)
			kh := cliSession(t, s)
			kh("group", "create", "-n", "rg", "-l", "local", "-o", "none")
			kh("keyvault", "create", "-n", "purgerkv", "-g", "rg", "-l", "local", "--enable-purge-protection", "true", "-o", "none")
			for _, v := range []string{"purgergone", "purgerkept"} {
				kh("keyvault", "create", "-n", v, "-g", "rg", "-l", "local", "-o", "none")
			}
			for _, n := range []string{"gone", "kept"} {
				kh("keyvault", "secret", "set", "--vault-name", "purgerkv", "-n", n, "--value", "v-"+n, "-o", "none")
				kh("keyvault", "secret", "delete", "--vault-name", "purgerkv", "-n", n, "-o", "none")
			}
			for _, v := range []string{"purgergone", "purgerkept"} {
				kh("keyvault", "delete", "-n", v, "-o", "none")
			}
			s.Stop()

			past := time.Now().Add(-time.Hour).Unix()
			raw := openRaw(t, opts, s.DataDir)
			expireDeletedSecret(t, raw, "gone", past)
			vk := "rp/keyvault/names/purgergone"
			var vrec map[string]any
			dec := json.NewDecoder(bytes.NewReader(raw.get(t, vk)))
			dec.UseNumber()
			if err := dec.Decode(&vrec); err != nil || vrec["scheduledPurgeDate"] == nil {
				t.Fatalf("vault record %s: %v, scheduledPurgeDate %v", vk, err, vrec["scheduledPurgeDate"])
			}
			vrec["scheduledPurgeDate"] = time.Unix(past, 0).UTC().Format(time.RFC3339)
			b, _ := json.Marshal(vrec)
			raw.put(t, vk, b)

			s.Restart()
			deleted := func(args ...string) []string {
				var names []string
				for _, l := range strings.Split(strings.TrimSpace(kh(append(args, "--query", "[].name", "-o", "tsv")...)), "\n") {
					if l != "" {
						names = append(names, l)
					}
				}
				return names
			}
			eventually(t, 15*time.Second, "the purger removes what is past its purge date", func() (bool, string) {
				secrets := deleted("keyvault", "secret", "list-deleted", "--vault-name", "purgerkv")
				vaults := deleted("keyvault", "list-deleted")
				return fmt.Sprint(secrets) == "[kept]" && !contains([]byte(strings.Join(vaults, " ")), "purgergone"),
					fmt.Sprintf("deleted secrets %v, deleted vaults %v", secrets, vaults)
			})
			if v := deleted("keyvault", "list-deleted"); !strings.Contains(strings.Join(v, " "), "purgerkept") {
				t.Fatalf("a vault within retention was purged: deleted vaults %v", v)
			}
			// The purged names are free again; what is kept is recoverable.
			if out, err := s.CLI(t, "keyvault", "secret", "show-deleted", "--vault-name", "purgerkv", "-n", "gone"); err == nil || !strings.Contains(out, "NotFound") {
				t.Fatalf("show-deleted of a purged secret: err %v\n%s", err, out)
			}
			kh("keyvault", "secret", "set", "--vault-name", "purgerkv", "-n", "gone", "--value", "again", "-o", "none")
			if n := tsv(kh("keyvault", "secret", "list-versions", "--vault-name", "purgerkv", "-n", "gone", "--query", "length(@)", "-o", "tsv")); n != "1" {
				t.Fatalf("a purged secret's name set again has %s versions, want 1 (the old one purged)", n)
			}
			kh("keyvault", "create", "-n", "purgergone", "-g", "rg", "-l", "local", "-o", "none")
			kh("keyvault", "secret", "recover", "--vault-name", "purgerkv", "-n", "kept", "-o", "none")
			if v := tsv(kh("keyvault", "secret", "show", "--vault-name", "purgerkv", "-n", "kept", "--query", "value", "-o", "tsv")); v != "v-kept" {
				t.Fatalf("recovered secret value %q", v)
			}
			kh("keyvault", "recover", "-n", "purgerkept", "-o", "none")
			for _, msg := range []string{"purged expired deleted secrets", "purged expired deleted vaults"} {
				if !strings.Contains(s.Logs(), msg) {
					t.Errorf("server log has no %q line", msg)
				}
			}
		})
	}
}

// expireDeletedSecret moves the scheduled purge date of the deleted secret
// name (in the only vault that has one by that name) to at.
func expireDeletedSecret(t *testing.T, raw *rawStore, name string, at int64) {
	t.Helper()
	var idx []string
	for _, k := range raw.keys(t, "vault/~purge/") {
		if strings.HasSuffix(k, "/"+name) {
			idx = append(idx, k)
		}
	}
	if len(idx) != 1 {
		t.Fatalf("purge index entries for %s: %v, want one", name, idx)
	}
	parts := strings.Split(strings.TrimPrefix(idx[0], "vault/~purge/"), "/")
	iid := parts[1]
	dk := "vault/" + iid + "/secrets/d/" + name
	var rec map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw.get(t, dk)))
	dec.UseNumber()
	if err := dec.Decode(&rec); err != nil || rec["pa"] == nil {
		t.Fatalf("deleted record %s: %v, pa %v", dk, err, rec["pa"])
	}
	rec["pa"] = at
	b, _ := json.Marshal(rec)
	raw.put(t, dk, b)
	value := raw.get(t, idx[0])
	raw.del(t, idx[0])
	raw.insert(t, fmt.Sprintf("vault/~purge/%020d/%s/%s", at, iid, name), value)
}
