package vault

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupRestore(t *testing.T) {
	e := newEnv(t)
	s1 := e.mustSet("db-pass", `{"value":"one","tags":{"k":"v"},"contentType":"pw"}`)
	e.mustSet("db-pass", `{"value":"two","attributes":{"enabled":false}}`)
	s3 := e.mustSet("db-pass", `{"value":"three"}`)
	code, b := e.do("POST", "/secrets/db-pass/backup", "")
	if code != 200 {
		t.Fatalf("backup: %d %v", code, b)
	}
	blob := b["value"].(string)
	if strings.ContainsAny(blob, "+/=") {
		t.Fatal("backup is not unpadded base64url")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(blob)
	for _, v := range []string{"one", "two", "three", "pw"} {
		if strings.Contains(string(raw), `"`+v+`"`) {
			t.Fatalf("backup blob shows %q in clear", v)
		}
	}
	restoreBody := `{"value":"` + blob + `"}`

	w := e.serve(call{method: "POST", target: "/secrets/restore", body: restoreBody})
	if c, _, _ := errCode(t, w); w.Code != 409 || c != "Conflict" {
		t.Fatalf("restore over live: %d %s", w.Code, c)
	}
	e.do("DELETE", "/secrets/db-pass", "")
	w = e.serve(call{method: "POST", target: "/secrets/restore", body: restoreBody})
	if _, inner, _ := errCode(t, w); w.Code != 409 || inner != "ObjectIsDeletedButRecoverable" {
		t.Fatalf("restore over deleted: %d %s", w.Code, inner)
	}
	if w := e.serve(call{method: "DELETE", target: "/deletedsecrets/db-pass"}); w.Code != 204 {
		t.Fatal(w.Body)
	}

	code, r := e.do("POST", "/secrets/restore", restoreBody)
	if code != 200 || r["id"] != s3["id"] || r["value"] != nil {
		t.Fatalf("restore: %d %v", code, r)
	}
	if code, m := e.do("GET", "/secrets/db-pass", ""); code != 200 || m["value"] != "three" {
		t.Fatalf("latest after restore: %d %v", code, m)
	}
	code, m := e.do("GET", "/secrets/db-pass/"+versionOf(t, s1), "")
	if code != 200 || m["value"] != "one" || m["contentType"] != "pw" || m["tags"].(map[string]any)["k"] != "v" ||
		attr(m, "created") != attr(s1, "created") {
		t.Fatalf("first version after restore: %d %v", code, m)
	}
	if code, m := e.do("GET", "/secrets/db-pass/versions", ""); code != 200 || len(m["value"].([]any)) != 3 {
		t.Fatalf("versions after restore: %v", m)
	}

	// Into another vault of the same tenant: fine, ids follow the vault.
	e.dir.put(newVault("v2", tenant1))
	w = e.serve(call{vault: "v2", method: "POST", target: "/secrets/restore", body: restoreBody})
	if w.Code != 200 || !strings.HasPrefix(decodeMap(t, w)["id"].(string), "https://v2.vault.localhost:8443/secrets/db-pass/") {
		t.Fatalf("restore into v2: %d %s", w.Code, w.Body)
	}
	if w := e.serve(call{vault: "v2", method: "GET", target: "/secrets/db-pass"}); w.Code != 200 || decodeMap(t, w)["value"] != "three" {
		t.Fatalf("v2 value: %s", w.Body)
	}

	// Another tenant: refused.
	e.dir.put(newVault("t2", tenant2))
	w = e.serve(call{vault: "t2", method: "POST", target: "/secrets/restore", body: restoreBody, p: newPrincipal(tenant2, "oid-eve")})
	if c, _, msg := errCode(t, w); w.Code != 400 || c != "BadParameter" || !strings.Contains(msg, "same tenant") {
		t.Fatalf("cross-tenant: %d %s %q", w.Code, c, msg)
	}
	// Relabelling the tenant in the clear header does not help: the aad
	// binds it.
	var bb backupBlob
	if err := json.Unmarshal(raw, &bb); err != nil {
		t.Fatal(err)
	}
	bb.Tenant = tenant2
	forged, _ := json.Marshal(bb)
	w = e.serve(call{vault: "t2", method: "POST", target: "/secrets/restore", p: newPrincipal(tenant2, "oid-eve"),
		body: `{"value":"` + base64.RawURLEncoding.EncodeToString(forged) + `"}`})
	if w.Code != 400 {
		t.Fatalf("relabelled blob: %d", w.Code)
	}
}

func TestRestoreTampered(t *testing.T) {
	e := newEnv(t)
	e.mustSet("x", `{"value":"a"}`)
	e.mustSet("x", `{"value":"b"}`)
	_, b := e.do("POST", "/secrets/x/backup", "")
	raw, _ := base64.RawURLEncoding.DecodeString(b["value"].(string))
	e.do("DELETE", "/secrets/x", "")
	e.serve(call{method: "DELETE", target: "/deletedsecrets/x"})

	mutate := func(f func(*backupBlob)) string {
		var bb backupBlob
		if err := json.Unmarshal(raw, &bb); err != nil {
			t.Fatal(err)
		}
		f(&bb)
		out, _ := json.Marshal(bb)
		return base64.RawURLEncoding.EncodeToString(out)
	}
	cases := []struct{ name, blob string }{
		{"fail/flipped-meta-byte", mutate(func(bb *backupBlob) { bb.Meta[len(bb.Meta)/2] ^= 1 })},
		{"fail/flipped-value-byte", mutate(func(bb *backupBlob) { bb.Values[0][len(bb.Values[0])-1] ^= 1 })},
		{"fail/swapped-values", mutate(func(bb *backupBlob) { bb.Values[0], bb.Values[1] = bb.Values[1], bb.Values[0] })},
		{"fail/dropped-value", mutate(func(bb *backupBlob) { bb.Values = bb.Values[:1] })},
		{"fail/wrong-format", mutate(func(bb *backupBlob) { bb.Format = "other" })},
		{"fail/truncated", base64.RawURLEncoding.EncodeToString(raw[:len(raw)/2])},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.snapshot()
			w := e.serve(call{method: "POST", target: "/secrets/restore", body: `{"value":"` + tc.blob + `"}`})
			if c, _, _ := errCode(t, w); w.Code != 400 || c != "BadParameter" {
				t.Fatalf("%d %s", w.Code, c)
			}
			if len(e.snapshot()) != len(before) {
				t.Fatal("store changed")
			}
		})
	}
	// The untouched blob, padded, still restores.
	padded := base64.URLEncoding.EncodeToString(raw)
	if code, m := e.do("POST", "/secrets/restore", `{"value":"`+padded+`"}`); code != 200 {
		t.Fatalf("restore: %d %v", code, m)
	}
}

// assertNoMarkerInDir scans every file under dir (database, WAL, shm).
func assertNoMarkerInDir(t *testing.T, dir, marker string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), marker) {
			t.Errorf("plaintext found in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
