package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
// tables, nor in the server's logs: neither secret values nor the private
// parts of keys (imported ones, whose private bytes the test knows, in raw,
// PKCS #8 and JWK encodings; created ones are checked to leave only public
// members).
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
			keyNeedles, public := w.writeKeys(t)
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
			for _, n := range keyNeedles {
				for _, h := range haystack {
					if bytes.Contains(h, n.bytes) {
						t.Fatalf("private key material (%s) found at rest", n.what)
					}
				}
			}
			// The key records are in what was searched: the imported RSA
			// modulus, which is public and kept unsealed, is found in one of
			// its encodings.
			if !slices.ContainsFunc(public, func(n needle) bool {
				return slices.ContainsFunc(haystack, func(h []byte) bool { return bytes.Contains(h, n.bytes) })
			}) {
				t.Fatal("the imported key's public modulus is nowhere in the searched bytes: the search would prove nothing")
			}
		})
	}
}

// needle is private key material that must never be stored or logged.
type needle struct {
	what  string
	bytes []byte
}

// writeKeys creates an RSA and an EC key, imports an RSA and an EC key
// generated here, and backs one up, all through the data plane. It returns
// the imported keys' private material in every encoding that could leak (the
// raw RSA private exponent and primes and EC scalar, their base64url (JWK)
// and standard base64 forms, and each key's PKCS #8 DER), and the imported
// RSA modulus in the same encodings.
func (w *world) writeKeys(t *testing.T) (private, public []needle) {
	t.Helper()
	keyURL := func(path string) string { return w.srv.VaultURL(w.vault) + "keys/" + path + "?api-version=7.5" }
	for _, c := range []struct{ name, body string }{
		{"created-rsa", `{"kty":"RSA","key_size":2048}`},
		{"created-ec", `{"kty":"EC","crv":"P-256"}`},
	} {
		code, body := w.srv.Do(t, "POST", keyURL(c.name+"/create"), w.kvToken, json.RawMessage(c.body))
		mustStatus(t, 200, code, body)
		checkPublicJWK(t, c.name, body)
	}

	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rk.Precompute()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := ek.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	epub, err := ek.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	imports := []struct {
		name string
		jwk  map[string]string
	}{
		{"imported-rsa", map[string]string{
			"kty": "RSA", "n": b64(rk.N.Bytes()), "e": b64(big.NewInt(int64(rk.E)).Bytes()), "d": b64(rk.D.Bytes()),
			"p": b64(rk.Primes[0].Bytes()), "q": b64(rk.Primes[1].Bytes()),
			"dp": b64(rk.Precomputed.Dp.Bytes()), "dq": b64(rk.Precomputed.Dq.Bytes()), "qi": b64(rk.Precomputed.Qinv.Bytes()),
		}},
		{"imported-ec", map[string]string{"kty": "EC", "crv": "P-256", "x": b64(epub[1:33]), "y": b64(epub[33:]), "d": b64(ed)}},
	}
	for _, im := range imports {
		code, body := w.srv.Do(t, "PUT", keyURL(im.name), w.kvToken, map[string]any{"key": im.jwk})
		mustStatus(t, 200, code, body)
		checkPublicJWK(t, im.name, body)
	}
	// Backup writes nothing, but seals the key again for the blob; restore
	// is covered by the vault tests.
	code, body := w.srv.Do(t, "POST", keyURL("imported-rsa/backup"), w.kvToken, nil)
	mustStatus(t, 200, code, body)

	encodings := func(what string, raw []byte) []needle {
		return []needle{
			{what + " (raw)", raw},
			{what + " (base64url)", []byte(b64(raw))},
			{what + " (base64)", []byte(base64.StdEncoding.EncodeToString(raw))},
		}
	}
	private = slices.Concat(
		encodings("RSA private exponent d", rk.D.Bytes()),
		encodings("RSA prime p", rk.Primes[0].Bytes()),
		encodings("RSA prime q", rk.Primes[1].Bytes()),
		encodings("EC private scalar d", ed))
	for _, k := range []any{rk, ek} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		private = append(private, encodings(fmt.Sprintf("%T PKCS #8", k), der)...)
	}
	return private, encodings("RSA modulus n", rk.N.Bytes())
}

// checkPublicJWK fails unless a key bundle's JWK has its public members and
// none of the private ones.
func checkPublicJWK(t *testing.T, name string, body []byte) {
	t.Helper()
	var kb struct {
		Key map[string]any `json:"key"`
	}
	if err := json.Unmarshal(body, &kb); err != nil || kb.Key == nil {
		t.Fatalf("%s: key bundle %s: %v", name, body, err)
	}
	if kb.Key["n"] == nil && kb.Key["x"] == nil {
		t.Fatalf("%s: no public key in %s", name, body)
	}
	for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
		if _, ok := kb.Key[m]; ok {
			t.Fatalf("%s: the returned JWK carries private member %q", name, m)
		}
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

// Stored data altered underneath a stopped server is refused, on both
// backends: whole version rows swapped (caught by the slot check before any
// decryption), and only the sealed value swapped between versions or secrets,
// a version moved to another secret under its own version id, or one byte of
// a sealed value flipped (caught by AES-GCM with the vault/name/version AAD).
// A refused read is a plain integrity error that carries no value, and
// untouched secrets still read.
func TestTamperedCiphertextRefused(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			opts := b.opts(t)
			w := newWorld(t, opts)
			values := map[string]string{} // "name/version" -> value
			set := func(name, value string) string {
				code, body := w.setSecret(t, name, value)
				mustStatus(t, 200, code, body)
				var out struct {
					ID string `json:"id"`
				}
				mustJSON(t, string(body), &out)
				version := out.ID[strings.LastIndex(out.ID, "/")+1:]
				values[name+"/"+version] = value
				return version
			}
			multi1 := set("multi", "multi-one-"+randHex(8))
			multi2 := set("multi", "multi-two-"+randHex(8))
			alpha, beta := set("alpha", "alpha-"+randHex(8)), set("beta", "beta-"+randHex(8))
			flip := set("flip", "flip-"+randHex(8))
			row1, row2 := set("row1", "row1-"+randHex(8)), set("row2", "row2-"+randHex(8))
			moved := set("src", "src-"+randHex(8))
			set("dst", "dst-"+randHex(8))
			keep := set("keep", "keep-"+randHex(8))
			w.srv.Stop()

			kv := openRaw(t, opts, w.srv.DataDir)
			kv.swapSealed(t, "multi/"+multi1, "multi/"+multi2)
			kv.swapSealed(t, "alpha/"+alpha, "beta/"+beta)
			kv.flipSealed(t, "flip/"+flip)
			kv.swapRows(t, "row1/"+row1, "row2/"+row2)
			kv.moveVersion(t, "src/"+moved, "dst")

			w.srv.Restart()
			w.reconnect(t)
			const (
				causeOpen = "seal: ciphertext does not authenticate"
				causeSlot = "integrity: version record stored at"
			)
			cases := []struct {
				name, secret, version string
				wantCause             string // "" = the read succeeds with wantValue
				wantValue             string
			}{
				{name: "fail/sealed-swapped-between-versions/latest", secret: "multi", wantCause: causeOpen},
				{name: "fail/sealed-swapped-between-versions/older", secret: "multi", version: multi1, wantCause: causeOpen},
				{name: "fail/sealed-swapped-between-secrets/alpha", secret: "alpha", wantCause: causeOpen},
				{name: "fail/sealed-swapped-between-secrets/beta", secret: "beta", wantCause: causeOpen},
				{name: "fail/sealed-byte-flipped", secret: "flip", wantCause: causeOpen},
				// Version ids are random, so only this case tells an AAD
				// without the name from one with it.
				{name: "fail/version-moved-to-other-secret", secret: "dst", version: moved, wantCause: causeOpen},
				{name: "fail/whole-rows-swapped", secret: "row1", wantCause: causeSlot},
				{name: "ok/untouched", secret: "keep", version: keep, wantValue: values["keep/"+keep]},
				{name: "ok/untouched-latest", secret: "keep", wantValue: values["keep/"+keep]},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					u := w.srv.VaultURL(w.vault) + "secrets/" + tc.secret
					if tc.version != "" {
						u += "/" + tc.version
					}
					code, hdr, body := getWithHeaders(t, w.srv, u+"?api-version=7.5", w.kvToken)
					if tc.wantCause == "" {
						mustStatus(t, 200, code, body)
						var out struct {
							Value string `json:"value"`
						}
						mustJSON(t, string(body), &out)
						if out.Value != tc.wantValue {
							t.Fatalf("untouched secret reads %q, want %q", out.Value, tc.wantValue)
						}
						return
					}
					mustStatus(t, 500, code, body)
					for _, v := range values {
						if contains(body, v) {
							t.Fatalf("refusal carries a stored value: %s", body)
						}
					}
					if got := errCode(body); got != "InternalError" {
						t.Fatalf("error code %q, want InternalError: %s", got, body)
					}
					if !contains(body, "secret '"+tc.secret+"' failed its integrity check") {
						t.Fatalf("refusal does not say why: %s", body)
					}
					// The cause stays internal: the access log (written after
					// the response) records it under the request's id.
					id := hdr.Get("x-ms-request-id")
					var cause string
					waitFor(t, func() bool { cause = logCause(w.srv.Logs(), id); return cause != "" })
					if !strings.Contains(cause, tc.wantCause) {
						t.Fatalf("logged cause %q, want %q", cause, tc.wantCause)
					}
				})
			}
			logs := w.srv.Logs()
			for _, v := range values {
				if strings.Contains(logs, v) {
					t.Fatal("a secret value appears in the server's logs")
				}
			}
		})
	}
}

// getWithHeaders is a GET with a bearer token that also returns the
// response headers.
func getWithHeaders(t *testing.T, s *khtest.Server, u, token string) (int, http.Header, []byte) {
	t.Helper()
	req, err := newJSONRequest("GET", u, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// logCause returns the "cause" of the JSON access-log line of request id.
func logCause(logs, id string) string {
	for _, line := range strings.Split(logs, "\n") {
		var rec struct {
			RequestID string `json:"request_id"`
			Cause     string `json:"cause"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && id != "" && rec.RequestID == id {
			return rec.Cause
		}
	}
	return ""
}

// versionKey finds the store key of a secret version ("name/version"): the
// test world has one vault, so the suffix is unique.
func (kv *rawStore) versionKey(t *testing.T, slot string) string {
	t.Helper()
	var found []string
	for _, k := range kv.keys(t, "vault/") {
		if strings.HasPrefix(k, "vault/") && strings.HasSuffix(k, "/secrets/v/"+slot) {
			found = append(found, k)
		}
	}
	if len(found) != 1 {
		t.Fatalf("version record %s: found %q", slot, found)
	}
	return found[0]
}

// sealedField is the JSON field of versionRec (internal/vault) holding the
// sealed value; everything else in the record is plaintext metadata.
const sealedField = "s"

func (kv *rawStore) record(t *testing.T, slot string) (string, map[string]json.RawMessage) {
	t.Helper()
	key := kv.versionKey(t, slot)
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(kv.get(t, key), &rec); err != nil {
		t.Fatalf("version record %s: %v", slot, err)
	}
	if len(rec[sealedField]) == 0 || len(rec["n"]) == 0 {
		t.Fatalf("version record %s lacks the sealed value or the name: the record layout changed", slot)
	}
	return key, rec
}

func (kv *rawStore) putRecord(t *testing.T, key string, rec map[string]json.RawMessage) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	kv.put(t, key, b)
}

// swapSealed exchanges only the sealed values of two versions; names,
// versions and the rest of the metadata stay, so the slot check passes and
// decryption is what must refuse.
func (kv *rawStore) swapSealed(t *testing.T, a, b string) {
	t.Helper()
	ka, ra := kv.record(t, a)
	kb, rb := kv.record(t, b)
	ra[sealedField], rb[sealedField] = rb[sealedField], ra[sealedField]
	kv.putRecord(t, ka, ra)
	kv.putRecord(t, kb, rb)
}

// flipSealed flips one bit in the ciphertext body of a sealed value (after
// the format byte, data key id and nonce), leaving its length intact.
func (kv *rawStore) flipSealed(t *testing.T, slot string) {
	t.Helper()
	key, rec := kv.record(t, slot)
	var sealed []byte
	if err := json.Unmarshal(rec[sealedField], &sealed); err != nil {
		t.Fatal(err)
	}
	const header = 1 + 8 + 12
	if len(sealed) <= header+16 {
		t.Fatalf("sealed value of %d bytes has no ciphertext body", len(sealed))
	}
	sealed[header] ^= 0x01
	b, _ := json.Marshal(sealed)
	rec[sealedField] = b
	kv.putRecord(t, key, rec)
}

// moveVersion copies a version record ("name/version") to secret toName
// under the same version id, renamed so that the slot check passes: only the
// name in the AAD can tell the sealed value does not belong there.
func (kv *rawStore) moveVersion(t *testing.T, slot, toName string) {
	t.Helper()
	key, rec := kv.record(t, slot)
	from, _, _ := strings.Cut(slot, "/")
	rec["n"], _ = json.Marshal(toName)
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	kv.insert(t, strings.Replace(key, "/secrets/v/"+from+"/", "/secrets/v/"+toName+"/", 1), b)
}

// swapRows exchanges two whole version records.
func (kv *rawStore) swapRows(t *testing.T, a, b string) {
	t.Helper()
	ka, kb := kv.versionKey(t, a), kv.versionKey(t, b)
	va, vb := kv.get(t, ka), kv.get(t, kb)
	kv.put(t, ka, vb)
	kv.put(t, kb, va)
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
