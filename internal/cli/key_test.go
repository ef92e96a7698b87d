package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keyBundle is what the fake data plane answers for a key.
func keyBundle(f *fakeServer, name, version string) map[string]any {
	return map[string]any{
		"key": map[string]any{
			"kid": "https://myvault.vault.localhost:" + f.port + "/keys/" + name + "/" + version,
			"kty": "EC", "crv": "P-256", "key_ops": []any{"sign", "verify"}, "x": "AAAA", "y": "AAAA",
		},
		"attributes": map[string]any{"enabled": true, "created": 1700000000, "updated": 1700000000, "recoveryLevel": "Recoverable+Purgeable"},
	}
}

func TestKeyCommands(t *testing.T) {
	f := newFakeServer(t)
	kid := func(name string) string { return "https://myvault.vault.localhost:" + f.port + "/keys/" + name }
	fakeVault(f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch {
		case r.URL.Path == "/keys/missing/":
			writeNotFound(w, "KeyNotFound", "A key with (name/id) missing was not found in this key vault.")
		case r.URL.Path == "/keys/k1/backup":
			writeJSON(w, 200, map[string]any{"value": base64.RawURLEncoding.EncodeToString([]byte("sealed-key-blob"))})
		case strings.HasSuffix(r.URL.Path, "/encrypt"), strings.HasSuffix(r.URL.Path, "/decrypt"), strings.HasSuffix(r.URL.Path, "/sign"):
			writeJSON(w, 200, map[string]any{"kid": kid("k1") + "/v1", "value": base64.RawURLEncoding.EncodeToString([]byte("result"))})
		case strings.HasSuffix(r.URL.Path, "/verify"):
			writeJSON(w, 200, map[string]any{"value": true})
		case r.URL.Path == "/keys" || r.URL.Path == "/deletedkeys":
			writeJSON(w, 200, map[string]any{"value": []any{
				map[string]any{"kid": kid("a")},
				map[string]any{"kid": kid("b"), "managed": true},
			}})
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/deletedkeys/"):
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, 200, keyBundle(f, "k1", "v1"))
		}
	})
	h := newHarness(t)
	h.login(f)
	dir := t.TempDir()
	backup := filepath.Join(dir, "k1.bak")
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	pemFile := filepath.Join(dir, "ec.pem")
	_ = os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaPEM := filepath.Join(dir, "rsa.pem")
	_ = os.WriteFile(rsaPEM, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}), 0o600)
	encPEM := filepath.Join(dir, "enc.pem")
	_ = os.WriteFile(encPEM, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}}), 0o600)
	pub, _ := ecKey.PublicKey.Bytes()
	d, _ := ecKey.Bytes()
	b64u := base64.RawURLEncoding.EncodeToString
	digest := base64.StdEncoding.EncodeToString(make([]byte, 32))

	vaultURL := "https://myvault.vault.localhost:" + f.port
	tests := []kvCase{
		{name: "ok/create-rsa", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1", "--kty", "RSA", "--size", "3072",
			"--ops", "encrypt", "decrypt", "--tags", "env=prod", "--expires", "2030-01-02T03:04:05Z", "--protection", "software"},
			wantMethod: "POST", wantPath: "/keys/k1/create",
			wantBody: map[string]any{"kty": "RSA", "key_size": 3072.0, "key_ops": []any{"encrypt", "decrypt"}, "tags": map[string]any{"env": "prod"},
				"attributes": map[string]any{"exp": 1893553445.0}},
			wantOut: `"kty": "EC"`},
		{name: "ok/create-ec-curve", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1", "--curve", "P-384", "--disabled"},
			wantMethod: "POST", wantPath: "/keys/k1/create",
			wantBody: map[string]any{"kty": "EC", "crv": "P-384", "attributes": map[string]any{"enabled": false}}},
		{name: "ok/create-default-rsa", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1"},
			wantMethod: "POST", wantPath: "/keys/k1/create", wantBody: map[string]any{"kty": "RSA"}},
		{name: "ok/create-hsm-protection", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1", "--kty", "EC", "-p", "hsm"},
			wantMethod: "POST", wantPath: "/keys/k1/create", wantBody: map[string]any{"kty": "EC-HSM"}},
		{name: "ok/import-pkcs8-ec", args: []string{"keyvault", "key", "import", "--vault-name", "myvault", "-n", "k1", "--pem-file", pemFile, "--ops", "sign"},
			wantMethod: "PUT", wantPath: "/keys/k1",
			wantBody: map[string]any{"key": map[string]any{"kty": "EC", "crv": "P-256", "x": b64u(pub[1:33]), "y": b64u(pub[33:]), "d": b64u(d), "key_ops": []any{"sign"}}}},
		{name: "ok/import-pkcs1-rsa", args: []string{"keyvault", "key", "import", "--vault-name", "myvault", "-n", "k1", "--pem-file", rsaPEM},
			wantMethod: "PUT", wantPath: "/keys/k1", check: func(t *testing.T, r recorded) {
				var got struct {
					Key map[string]string `json:"key"`
				}
				_ = json.Unmarshal(r.Body, &got)
				if got.Key["kty"] != "RSA" || got.Key["n"] != b64u(rsaKey.N.Bytes()) || got.Key["d"] == "" || got.Key["qi"] == "" {
					t.Fatalf("rsa jwk %v", got.Key)
				}
			}},
		{name: "ok/show-latest", args: []string{"keyvault", "key", "show", "--vault-name", "myvault", "-n", "k1"},
			wantMethod: "GET", wantPath: "/keys/k1/", wantOut: `"crv": "P-256"`},
		{name: "ok/show-by-id", args: []string{"keyvault", "key", "show", "--id", vaultURL + "/keys/k1/v9"},
			wantMethod: "GET", wantPath: "/keys/k1/v9"},
		{name: "ok/list-hides-managed", args: []string{"keyvault", "key", "list", "--vault-name", "myvault", "--query", "[].name", "-o", "tsv"},
			wantMethod: "GET", wantPath: "/keys", wantOut: "a\n"},
		{name: "ok/set-attributes", args: []string{"keyvault", "key", "set-attributes", "--vault-name", "myvault", "-n", "k1", "--enabled", "false", "--ops", "sign", "verify"},
			wantMethod: "PATCH", wantPath: "/keys/k1/", wantBody: map[string]any{"attributes": map[string]any{"enabled": false}, "key_ops": []any{"sign", "verify"}}},
		{name: "ok/rotate", args: []string{"keyvault", "key", "rotate", "--vault-name", "myvault", "-n", "k1"},
			wantMethod: "POST", wantPath: "/keys/k1/rotate"},
		{name: "ok/rotation-policy-show", args: []string{"keyvault", "key", "rotation-policy", "show", "--vault-name", "myvault", "-n", "k1"},
			wantMethod: "GET", wantPath: "/keys/k1/rotationpolicy"},
		{name: "ok/rotation-policy-update", args: []string{"keyvault", "key", "rotation-policy", "update", "--vault-name", "myvault", "-n", "k1",
			"--value", `{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}`},
			wantMethod: "PUT", wantPath: "/keys/k1/rotationpolicy", wantBody: map[string]any{
				"lifetimeActions": []any{map[string]any{"trigger": map[string]any{"timeAfterCreate": "P90D"}, "action": map[string]any{"type": "Rotate"}}},
				"attributes":      map[string]any{"expiryTime": "P2Y"}}},
		{name: "fail/rotation-policy-update-not-json", args: []string{"keyvault", "key", "rotation-policy", "update", "--vault-name", "myvault", "-n", "k1",
			"--value", "P90D"}, wantCode: 2, wantErr: "ERROR: argument --value: the rotation policy as a JSON object (or @file holding one), at most 8192 bytes\nRun 'keyhaven keyvault key rotation-policy update --help' for usage.\n"},
		{name: "ok/encrypt-plaintext", args: []string{"keyvault", "key", "encrypt", "--vault-name", "myvault", "-n", "k1", "-a", "RSA-OAEP-256",
			"--value", "hello", "--data-type", "plaintext"},
			wantMethod: "POST", wantPath: "/keys/k1/encrypt", wantBody: map[string]any{"alg": "RSA-OAEP-256", "value": b64u([]byte("hello"))},
			wantOut: `"result": "` + base64.StdEncoding.EncodeToString([]byte("result")) + `"`},
		{name: "ok/decrypt-version", args: []string{"keyvault", "key", "decrypt", "--vault-name", "myvault", "-n", "k1", "--version", "v1",
			"--algorithm", "RSA-OAEP", "--value", base64.StdEncoding.EncodeToString([]byte("ct")), "--data-type", "plaintext"},
			wantMethod: "POST", wantPath: "/keys/k1/v1/decrypt", wantBody: map[string]any{"alg": "RSA-OAEP", "value": b64u([]byte("ct"))},
			wantOut: `"result": "result"`},
		{name: "ok/sign", args: []string{"keyvault", "key", "sign", "--vault-name", "myvault", "-n", "k1", "-a", "ES256", "--digest", digest},
			wantMethod: "POST", wantPath: "/keys/k1/sign", wantBody: map[string]any{"alg": "ES256", "value": b64u(make([]byte, 32))},
			wantOut: `"signature": "`},
		{name: "ok/verify", args: []string{"keyvault", "key", "verify", "--vault-name", "myvault", "-n", "k1", "-a", "PS256", "--digest", digest, "--signature", "AQID"},
			wantMethod: "POST", wantPath: "/keys/k1/verify", wantBody: map[string]any{"alg": "PS256", "digest": b64u(make([]byte, 32)), "value": "AQID"},
			wantOut: `"isValid": true`},
		{name: "fail/not-found", args: []string{"keyvault", "key", "show", "--vault-name", "myvault", "-n", "missing"}, wantCode: 1,
			wantErr: "ERROR: (KeyNotFound) A key with (name/id) missing was not found in this key vault.\n", wantMethod: "GET", wantPath: "/keys/missing/"},
		{name: "fail/bad-kty", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1", "--kty", "DSA"}, wantCode: 2},
		{name: "fail/bad-op", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1", "--ops", "fly"}, wantCode: 2},
		{name: "fail/bad-curve", args: []string{"keyvault", "key", "create", "--vault-name", "myvault", "-n", "k1", "--curve", "X25519"}, wantCode: 2},
		{name: "fail/bad-key-name", args: []string{"keyvault", "key", "show", "--vault-name", "myvault", "-n", "a_b"}, wantCode: 2},
		{name: "fail/encrypted-pem", args: []string{"keyvault", "key", "import", "--vault-name", "myvault", "-n", "k1", "--pem-file", encPEM}, wantCode: 2},
		{name: "fail/no-pem", args: []string{"keyvault", "key", "import", "--vault-name", "myvault", "-n", "k1"}, wantCode: 2},
		{name: "fail/bad-algorithm", args: []string{"keyvault", "key", "encrypt", "--vault-name", "myvault", "-n", "k1", "-a", "A256GCM", "--value", "AA=="}, wantCode: 2},
		{name: "fail/digest-not-base64", args: []string{"keyvault", "key", "sign", "--vault-name", "myvault", "-n", "k1", "-a", "ES256", "--digest", "***"}, wantCode: 2},
		{name: "fail/foreign-id-host", args: []string{"keyvault", "key", "show", "--id", "https://evil.example.com/keys/k1"}, wantCode: 2},
		{name: "fail/secret-id", args: []string{"keyvault", "key", "show", "--id", vaultURL + "/secrets/k1"}, wantCode: 2},
	}
	tests = append(tests, sharedVerbCases("key", "keys", "k1", vaultURL, backup, []byte("sealed-key-blob"))...)
	runKVCases(t, f, h, tests)
}
