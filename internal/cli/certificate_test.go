package cli

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func certBundle(f *fakeServer, name, version string) map[string]any {
	base := "https://myvault.vault.localhost:" + f.port
	return map[string]any{
		"id": base + "/certificates/" + name + "/" + version, "kid": base + "/keys/" + name + "/" + version,
		"sid": base + "/secrets/" + name + "/" + version, "x5t": "AAAA", "cer": base64.StdEncoding.EncodeToString([]byte("DER-bytes")),
		"attributes": map[string]any{"enabled": true, "created": 1700000000, "updated": 1700000000},
	}
}

func TestCertificateCommands(t *testing.T) {
	f := newFakeServer(t)
	base := "https://myvault.vault.localhost:" + f.port
	pendingPolls := 0
	fakeVault(f, func(w http.ResponseWriter, r *http.Request, body []byte) {
		switch {
		case r.URL.Path == "/certificates/missing/":
			writeNotFound(w, "CertificateNotFound", "A certificate with (name/id) missing was not found in this key vault.")
		case r.URL.Path == "/certificates/slow/create":
			writeJSON(w, 202, map[string]any{"id": base + "/certificates/slow/pending", "status": "inProgress", "issuer": map[string]any{"name": "Self"}})
		case r.URL.Path == "/certificates/slow/pending":
			pendingPolls++
			writeJSON(w, 200, map[string]any{"id": base + "/certificates/slow/pending", "status": "completed", "target": base + "/certificates/slow"})
		case r.URL.Path == "/certificates/ext/create":
			writeJSON(w, 202, map[string]any{"id": base + "/certificates/ext/pending", "status": "inProgress", "issuer": map[string]any{"name": "Unknown"}, "csr": "AAAA"})
		case strings.HasSuffix(r.URL.Path, "/create"):
			writeJSON(w, 202, map[string]any{"id": base + "/certificates/c1/pending", "status": "completed"})
		case r.URL.Path == "/certificates/c1/backup":
			writeJSON(w, 200, map[string]any{"value": base64.RawURLEncoding.EncodeToString([]byte("sealed-cert-blob"))})
		case r.URL.Path == "/certificates" || r.URL.Path == "/deletedcertificates" || strings.HasSuffix(r.URL.Path, "/versions"):
			writeJSON(w, 200, map[string]any{"value": []any{map[string]any{"id": base + "/certificates/a"}, map[string]any{"id": base + "/certificates/b"}}})
		case r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/deletedcertificates/"):
			w.WriteHeader(http.StatusNoContent)
		default:
			writeJSON(w, 200, certBundle(f, "c1", "v1"))
		}
	})
	h := newHarness(t)
	h.login(f)
	dir := t.TempDir()
	policyFile := filepath.Join(dir, "policy.json")
	_ = os.WriteFile(policyFile, []byte(`{"issuerParameters":{"name":"Self","certificateTransparency":null},"keyProperties":{"keyType":"EC","curve":"P-256","exportable":true},
		"secretProperties":{"contentType":"application/x-pem-file"},"x509CertificateProperties":{"subject":"CN=a","subjectAlternativeNames":{"dnsNames":["a.example"]},"validityInMonths":12}}`), 0o600)
	pemFile := filepath.Join(dir, "c.pem")
	_ = os.WriteFile(pemFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	pfxFile := filepath.Join(dir, "c.pfx")
	_ = os.WriteFile(pfxFile, []byte{0x30, 0x82, 1, 2}, 0o600)
	backup := filepath.Join(dir, "c1.bak")
	pemOut := filepath.Join(dir, "out.pem")
	derOut := filepath.Join(dir, "out.der")
	exists := filepath.Join(dir, "exists")
	_ = os.WriteFile(exists, nil, 0o600)

	tests := []kvCase{
		{name: "ok/create-policy-file-az-shape", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "c1", "-p", "@" + policyFile, "--tags", "env=prod", "--validity", "6"},
			wantMethod: "POST", wantPath: "/certificates/c1/create", wantReqs: 2, wantOut: `"name": "c1"`,
			wantBody: map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"},
				"key_props":    map[string]any{"kty": "EC", "crv": "P-256", "exportable": true},
				"secret_props": map[string]any{"contentType": "application/x-pem-file"},
				"x509_props":   map[string]any{"subject": "CN=a", "sans": map[string]any{"dns_names": []any{"a.example"}}, "validity_months": 6.0}},
				"tags": map[string]any{"env": "prod"}}},
		{name: "ok/create-rest-shape-disabled", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "c1", "--policy", `{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=b"}}`, "--disabled"},
			wantMethod: "POST", wantPath: "/certificates/c1/create", wantReqs: 2,
			wantBody: map[string]any{"policy": map[string]any{"issuer": map[string]any{"name": "Self"}, "x509_props": map[string]any{"subject": "CN=b"}}, "attributes": map[string]any{"enabled": false}}},
		{name: "ok/create-polls-pending", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "slow", "-p", `{"issuer":{"name":"Self"}}`},
			wantMethod: "POST", wantPath: "/certificates/slow/create", wantReqs: 3},
		{name: "ok/create-unknown-prints-operation", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "ext", "-p", `{"issuer":{"name":"Unknown"}}`},
			wantMethod: "POST", wantPath: "/certificates/ext/create", wantReqs: 1, wantOut: `"csr": "AAAA"`},
		{name: "ok/import-pem", args: []string{"keyvault", "certificate", "import", "--vault-name", "myvault", "-n", "c1", "-f", pemFile},
			wantMethod: "POST", wantPath: "/certificates/c1/import",
			wantBody: map[string]any{"value": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "policy": map[string]any{"secret_props": map[string]any{"contentType": "application/x-pem-file"}}}},
		{name: "ok/import-pfx-password", args: []string{"keyvault", "certificate", "import", "--vault-name", "myvault", "-n", "c1", "--file", pfxFile, "--password", "pw"},
			wantMethod: "POST", wantPath: "/certificates/c1/import",
			wantBody: map[string]any{"value": base64.StdEncoding.EncodeToString([]byte{0x30, 0x82, 1, 2}), "pwd": "pw"}},
		{name: "ok/show-latest", args: []string{"keyvault", "certificate", "show", "--vault-name", "myvault", "-n", "c1"},
			wantMethod: "GET", wantPath: "/certificates/c1/", wantOut: `"x5t": "AAAA"`},
		{name: "ok/show-version", args: []string{"keyvault", "certificate", "show", "--vault-name", "myvault", "-n", "c1", "--version", "v9"},
			wantMethod: "GET", wantPath: "/certificates/c1/v9"},
		{name: "ok/show-by-id", args: []string{"keyvault", "certificate", "show", "--id", base + "/certificates/c1/v9"},
			wantMethod: "GET", wantPath: "/certificates/c1/v9"},
		{name: "ok/list", args: []string{"keyvault", "certificate", "list", "--vault-name", "myvault", "--query", "[].name", "-o", "tsv"},
			wantMethod: "GET", wantPath: "/certificates", wantOut: "a\nb\n"},
		{name: "ok/set-attributes", args: []string{"keyvault", "certificate", "set-attributes", "--vault-name", "myvault", "-n", "c1", "--enabled", "false", "--tags", "a=b"},
			wantMethod: "PATCH", wantPath: "/certificates/c1/", wantBody: map[string]any{"attributes": map[string]any{"enabled": false}, "tags": map[string]any{"a": "b"}}},
		{name: "ok/download-pem", args: []string{"keyvault", "certificate", "download", "--vault-name", "myvault", "-n", "c1", "-f", pemOut},
			wantMethod: "GET", wantPath: "/certificates/c1/"},
		{name: "ok/download-der", args: []string{"keyvault", "certificate", "download", "--vault-name", "myvault", "-n", "c1", "-f", derOut, "--encoding", "DER"},
			wantMethod: "GET", wantPath: "/certificates/c1/"},
		{name: "ok/pending-show", args: []string{"keyvault", "certificate", "pending", "show", "--vault-name", "myvault", "-n", "c1"},
			wantMethod: "GET", wantPath: "/certificates/c1/pending"},
		{name: "ok/get-default-policy", args: []string{"keyvault", "certificate", "get-default-policy", "--query", "issuerParameters.name", "-o", "tsv"},
			wantOut: "Self\n"},
		{name: "fail/not-found", args: []string{"keyvault", "certificate", "show", "--vault-name", "myvault", "-n", "missing"}, wantCode: 1,
			wantErr: "ERROR: (CertificateNotFound) A certificate with (name/id) missing was not found in this key vault.\n", wantMethod: "GET", wantPath: "/certificates/missing/"},
		{name: "fail/create-no-policy", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "c1"}, wantCode: 2},
		{name: "fail/policy-not-json", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "c1", "-p", "{"}, wantCode: 2},
		{name: "fail/policy-file-missing", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "c1", "-p", "@" + filepath.Join(dir, "nope")}, wantCode: 2},
		{name: "fail/validity", args: []string{"keyvault", "certificate", "create", "--vault-name", "myvault", "-n", "c1", "-p", "{}", "--validity", "1201"}, wantCode: 2},
		{name: "fail/import-no-file", args: []string{"keyvault", "certificate", "import", "--vault-name", "myvault", "-n", "c1"}, wantCode: 2},
		{name: "fail/bad-name", args: []string{"keyvault", "certificate", "show", "--vault-name", "myvault", "-n", "a_b"}, wantCode: 2},
		{name: "fail/download-exists", args: []string{"keyvault", "certificate", "download", "--vault-name", "myvault", "-n", "c1", "-f", exists}, wantCode: 2},
		{name: "fail/download-encoding", args: []string{"keyvault", "certificate", "download", "--vault-name", "myvault", "-n", "c1", "-f", filepath.Join(dir, "x"), "-e", "P7B"}, wantCode: 2},
		{name: "fail/key-id", args: []string{"keyvault", "certificate", "show", "--id", base + "/keys/c1"}, wantCode: 2},
		{name: "fail/too-many-tags", args: []string{"keyvault", "certificate", "set-attributes", "--vault-name", "myvault", "-n", "c1", "--tags",
			"a=1", "b=1", "c=1", "d=1", "e=1", "f=1", "g=1", "h=1", "i=1", "j=1", "k=1", "l=1", "m=1", "n=1", "o=1", "p=1"}, wantCode: 2},
	}
	tests = append(tests, sharedVerbCases("certificate", "certificates", "c1", base, backup, []byte("sealed-cert-blob"))...)
	runKVCases(t, f, h, tests)
	if pendingPolls != 1 {
		t.Fatalf("pending polled %d times", pendingPolls)
	}
	if b, _ := os.ReadFile(pemOut); !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("pem download %q", b)
	} else if blk, _ := pem.Decode(b); blk == nil || string(blk.Bytes) != "DER-bytes" {
		t.Fatalf("pem download content")
	}
	if b, _ := os.ReadFile(derOut); string(b) != "DER-bytes" {
		t.Fatalf("der download %q", b)
	}
}
