package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// Data written before a graceful restart is there after it, on both backends.
func TestRestartKeepsData(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			w := newWorld(t, b.opts(t))
			for i := range 5 {
				code, body := w.setSecret(t, fmt.Sprintf("s%d", i), fmt.Sprintf("value-%d", i))
				mustStatus(t, 200, code, body)
			}
			w.srv.Stop()
			w.srv.Restart()
			w.reconnect(t)
			for i := range 5 {
				code, v, body := w.getSecret(t, fmt.Sprintf("s%d", i))
				mustStatus(t, 200, code, body)
				if v != fmt.Sprintf("value-%d", i) {
					t.Fatalf("s%d = %q after restart", i, v)
				}
			}
		})
	}
}

// keyhaven serve is SIGKILLed while clients write concurrently; after a
// restart every write that was acknowledged is there.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			opts := b.opts(t)
			opts.Args = append(opts.Args, "--throttle-vault-transactions", "-1", "--throttle-vault-creates", "-1")
			w := newWorld(t, opts)

			var (
				mu    sync.Mutex
				acked = map[string]string{}
				stop  atomic.Bool
				wg    sync.WaitGroup
				n     atomic.Int64
			)
			client := w.srv.Client()
			client.Timeout = 5 * time.Second
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; !stop.Load(); i++ {
						name, value := fmt.Sprintf("w%d-%d", g, i), fmt.Sprintf("crash-value-%d-%d-%s", g, i, randHex(4))
						req, _ := newJSONRequest("PUT", w.secretURL(name), w.kvToken, map[string]any{"value": value})
						resp, err := client.Do(req)
						if err != nil {
							return // the server died mid-request: not acknowledged
						}
						resp.Body.Close()
						if resp.StatusCode == 200 {
							mu.Lock()
							acked[name] = value
							mu.Unlock()
							n.Add(1)
						}
					}
				}()
			}
			deadline := time.Now().Add(30 * time.Second)
			for n.Load() < 150 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			w.srv.Kill()
			stop.Store(true)
			wg.Wait()
			if len(acked) < 50 {
				t.Fatalf("only %d writes acknowledged before the kill", len(acked))
			}
			w.srv.Restart()
			w.reconnect(t)
			for name, want := range acked {
				code, got, body := w.getSecret(t, name)
				if code != 200 || got != want {
					t.Fatalf("acknowledged write %s lost after SIGKILL: %d %s", name, code, body)
				}
			}
			t.Logf("%d acknowledged writes all present after SIGKILL", len(acked))
		})
	}
}

// No stored value appears in plaintext in the SQLite files or the PostgreSQL
// tables, nor in the server's logs.
func TestNoPlaintextAtRest(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			opts := b.opts(t)
			w := newWorld(t, opts)
			markers := []string{"PLAINTEXT-MARKER-" + randHex(8), "second-marker-" + randHex(8)}
			for i, m := range markers {
				code, body := w.setSecret(t, fmt.Sprintf("marker%d", i), m)
				mustStatus(t, 200, code, body)
			}
			// Backup and restore write the value again through another path.
			code, body := w.srv.Do(t, "POST", w.srv.VaultURL(w.vault)+"secrets/marker0/backup?api-version=7.5", w.kvToken, nil)
			mustStatus(t, 200, code, body)
			w.srv.Stop()

			var haystack [][]byte
			if opts.Store == "" {
				_ = filepath.Walk(w.srv.DataDir, func(p string, fi os.FileInfo, err error) error {
					if err == nil && !fi.IsDir() {
						b, _ := os.ReadFile(p)
						haystack = append(haystack, b)
					}
					return nil
				})
			} else {
				haystack = append(haystack, dumpPostgres(t, opts))
				haystack = append(haystack, []byte(w.srv.Logs()))
			}
			haystack = append(haystack, []byte(w.srv.Logs()))
			for _, m := range markers {
				for _, h := range haystack {
					if bytes.Contains(h, []byte(m)) {
						t.Fatalf("plaintext value %q found at rest", m)
					}
				}
			}
		})
	}
}

// dumpPostgres returns every key and value byte of the server's schema.
func dumpPostgres(t *testing.T, opts khtest.Options) []byte {
	t.Helper()
	schema := opts.Args[len(opts.Args)-1]
	conn, err := pgx.Connect(context.Background(), opts.Store)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT key, value FROM "+schema+".kv")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out bytes.Buffer
	n := 0
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out.Write(k)
		out.Write(v)
		n++
	}
	if n == 0 {
		t.Fatal("no rows in the PostgreSQL store: the test would prove nothing")
	}
	return out.Bytes()
}

// A ciphertext moved onto another secret's row does not open: the server
// refuses to return it rather than serving the wrong value.
func TestSwappedCiphertextRefused(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	for _, n := range []string{"alpha", "beta"} {
		code, body := w.setSecret(t, n, "value-of-"+n)
		mustStatus(t, 200, code, body)
	}
	w.srv.Stop()
	db, err := sql.Open("sqlite", filepath.Join(w.srv.DataDir, "keyhaven.db"))
	if err != nil {
		t.Fatal(err)
	}
	var ka, kb []byte
	var va, vb []byte
	q := "SELECT key, value FROM kv WHERE CAST(key AS TEXT) LIKE ?"
	if err := db.QueryRow(q, "%/secrets/v/alpha/%").Scan(&ka, &va); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(q, "%/secrets/v/beta/%").Scan(&kb, &vb); err != nil {
		t.Fatal(err)
	}
	// Swap the two version records wholesale.
	if _, err := db.Exec("UPDATE kv SET value = ? WHERE key = ?", vb, ka); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE kv SET value = ? WHERE key = ?", va, kb); err != nil {
		t.Fatal(err)
	}
	db.Close()
	w.srv.Restart()
	w.reconnect(t)
	code, v, body := w.getSecret(t, "alpha")
	if code == 200 {
		t.Fatalf("swapped record served: %q", v)
	}
	if contains(body, "value-of-beta") {
		t.Fatal("error body carries the other secret's value")
	}
	if !contains(body, "failed its integrity check") {
		t.Fatalf("refusal does not say why: %s", body)
	}
	// The access log is written after the response is sent.
	waitFor(t, func() bool { return strings.Contains(w.srv.Logs(), "integrity: version record stored at alpha") })
	t.Logf("swapped record refused: %d %s", code, body)
}

// keyhaven admin rotate-root-key re-wraps every data key; every value stays
// readable and the keyring file changes.
func TestRootKeyRotation(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			opts := b.opts(t)
			w := newWorld(t, opts)
			for i := range 3 {
				code, body := w.setSecret(t, fmt.Sprintf("r%d", i), fmt.Sprintf("rot-%d", i))
				mustStatus(t, 200, code, body)
			}
			w.srv.Stop()
			keyFile := filepath.Join(w.srv.DataDir, "root.key")
			before, _ := os.ReadFile(keyFile)
			args := []string{"admin", "rotate-root-key", "--data-dir", w.srv.DataDir}
			if opts.Store != "" {
				args = append(args, "--store", opts.Store, "--store-schema", opts.Args[len(opts.Args)-1])
			}
			out, err := exec.Command(khtest.Binary(t), args...).CombinedOutput()
			if err != nil {
				t.Fatalf("rotate-root-key: %v\n%s", err, out)
			}
			after, _ := os.ReadFile(keyFile)
			if bytes.Equal(before, after) {
				t.Fatal("root keyring unchanged after rotation")
			}
			w.srv.Restart()
			w.reconnect(t)
			for i := range 3 {
				code, v, body := w.getSecret(t, fmt.Sprintf("r%d", i))
				if code != 200 || v != fmt.Sprintf("rot-%d", i) {
					t.Fatalf("r%d after rotation: %d %s", i, code, body)
				}
			}
			// New writes work under the new root key too.
			code, body := w.setSecret(t, "after", "x")
			mustStatus(t, 200, code, body)
		})
	}
}
