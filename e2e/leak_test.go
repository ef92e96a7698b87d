package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// minNeedle is the shortest value worth searching for: shorter strings
// would match by chance and prove nothing.
const minNeedle = 12

// needlesOf is what to search for to find value v leaked: v itself, its
// JSON-escaped form (as a log line or error body would carry it), and, for
// a JSON object value (the console user credential), each secret field on
// its own and each line of a multi-line field (a PEM private key), so a
// leaked password or key alone is found too. Public fields (the SSH public
// key, the user name) are not secrets and may be shown anywhere.
func needlesOf(v string) []string {
	out := []string{v}
	if b, _ := json.Marshal(v); len(b) > 2 {
		out = append(out, string(b[1:len(b)-1]))
	}
	var fields map[string]any
	if json.Unmarshal([]byte(v), &fields) != nil {
		return out
	}
	for k, f := range fields {
		s, ok := f.(string)
		lk := strings.ToLower(k)
		if !ok || strings.Contains(lk, "public") || strings.Contains(lk, "user") {
			continue
		}
		out = append(out, s)
		if b, _ := json.Marshal(s); len(b) > 2 {
			out = append(out, string(b[1:len(b)-1]))
		}
		for _, line := range strings.Split(s, "\n") {
			if line = strings.TrimSpace(line); !strings.HasPrefix(line, "-----") {
				out = append(out, line)
			}
		}
	}
	kept := out[:0]
	for _, n := range out {
		if len(n) >= minNeedle {
			kept = append(kept, n)
		}
	}
	return kept
}

func TestNeedlesOf(t *testing.T) {
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\nQyNTUxOQAAACBmZXhhbXBsZWtleWJ5dGVz\n-----END OPENSSH PRIVATE KEY-----\n"
	escapedPEM, _ := json.Marshal(pem)
	console, _ := json.Marshal(map[string]string{"password": "Pa55word-LongEnough", "sshPrivateKey": pem,
		"sshPublicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA public", "username": "consoleuser-admin"})
	tests := []struct {
		name    string
		value   string
		want    []string // needles
		notWant []string // not needles: public, or too short to mean anything
	}{
		{name: "ok/plain-value", value: "BMC-PASSWORD-123456", want: []string{"BMC-PASSWORD-123456"}},
		{name: "ok/json-fields-split", value: string(console),
			want: []string{string(console), "Pa55word-LongEnough", pem, string(escapedPEM[1 : len(escapedPEM)-1]),
				"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", "QyNTUxOQAAACBmZXhhbXBsZWtleWJ5dGVz"},
			notWant: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA public", "consoleuser-admin", "-----BEGIN OPENSSH PRIVATE KEY-----"}},
		{name: "fail/short-field-dropped", value: `{"password":"short","pin":"0000"}`, want: []string{`{"password":"short","pin":"0000"}`}, notWant: []string{"short", "0000"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]bool{}
			for _, n := range needlesOf(tc.value) {
				got[n] = true
			}
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("needle %q missing from %v", w, got)
				}
			}
			for _, w := range tc.notWant {
				if got[w] {
					t.Errorf("%q is a needle, but it is public or too short", w)
				}
			}
		})
	}
}

// Values that reach keyhaven through set, restore, credential rotation (a
// cluster's initial BMC passwords included), key create, import, backup and
// the crypto operations, and certificate create, import (with its PFX
// password) and backup appear in no audit event, log line, shipped blob,
// rotation alert, cluster or machine status, or error body; and each rotated
// value delivered to the vault is identified in its SecretSet event by the
// HMAC `keyhaven audit hash` computes. (Stack Edge device secrets have their
// own search in TestEdgeDeviceAgentGuide: they need a device and its agent.)
func TestNoSecretValueLeaks(t *testing.T) {
	w := newWorld(t, khtest.Options{Args: []string{"--rotation-interval", "200ms"}})
	s := w.srv
	kh := cliSession(t, s)
	kh("storage", "account", "create", "-n", "leaklogs", "-g", "rg1", "-o", "none")
	kh("monitor", "diagnostic-settings", "create", "-n", "ship", "--resource", w.vaultID, "--storage-account", "leaklogs",
		"--logs", `[{"category":"AuditEvent","enabled":true}]`, "-o", "none")
	var errorBodies []string
	vu := s.VaultURL(w.vault)
	// expectError sends a request that must fail and keeps its body.
	expectError := func(what, method, u string, body any) {
		t.Helper()
		code, b := s.Do(t, method, u, w.kvToken, body)
		if code < 400 {
			t.Fatalf("%s: status %d, want an error: %s", what, code, b)
		}
		errorBodies = append(errorBodies, string(b))
	}

	// Restore: back up, delete, purge, restore.
	restored := "RESTORED-VALUE-" + randHex(8)
	code, body := w.setSecret(t, "r", restored)
	mustStatus(t, 200, code, body)
	code, backup := s.Do(t, "POST", vu+"secrets/r/backup?api-version=7.5", w.kvToken, nil)
	mustStatus(t, 200, code, backup)
	var blob map[string]string
	_ = json.Unmarshal(backup, &blob)
	for _, step := range []struct{ method, path string }{{"DELETE", "secrets/r"}, {"DELETE", "deletedsecrets/r"}} {
		code, body = s.Do(t, step.method, vu+step.path+"?api-version=7.5", w.kvToken, nil)
		if code >= 300 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, code, body)
		}
	}
	waitFor(t, func() bool {
		code, _ := s.Do(t, "POST", vu+"secrets/restore?api-version=7.5", w.kvToken, map[string]string{"value": blob["value"]})
		return code == 200
	})
	// Error paths that get a value must not echo it.
	code, body = w.setSecret(t, "d", restored)
	mustStatus(t, 200, code, body)
	code, body = s.Do(t, "DELETE", vu+"secrets/d?api-version=7.5", w.kvToken, nil)
	mustStatus(t, 200, code, body)
	expectError("bad name", "PUT", vu+"secrets/bad%20name?api-version=7.5", map[string]string{"value": restored})
	expectError("set over a deleted secret", "PUT", vu+"secrets/d?api-version=7.5", map[string]string{"value": restored})
	expectError("malformed body", "PUT", vu+"secrets/e?api-version=7.5", json.RawMessage(`{"value":"`+restored+`","tags":"not-a-map"}`))
	expectError("value with wrong type", "PUT", vu+"secrets/e?api-version=7.5", json.RawMessage(`{"value":["`+restored+`"]}`))
	expectError("restore over an existing secret", "POST", vu+"secrets/restore?api-version=7.5", map[string]string{"value": blob["value"]})

	material := w.writeKeyAndCertMaterial(t, expectError)

	// Rotation: a cluster whose credentials are archived into this vault, and
	// one with no archive, whose blocked rotation raises an alert.
	sub := s.Admin.SubscriptionID
	rgID := "/subscriptions/" + sub + "/resourceGroups/rg1"
	kh("networkcloud", "clustermanager", "create", "-n", "cm", "-g", "rg1",
		"--fabric-controller-id", rgID+"/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/n", "--mi-system-assigned", "-o", "none")
	cmID := rgID + "/providers/Microsoft.NetworkCloud/clusterManagers/cm"
	pid := strings.TrimSpace(kh("networkcloud", "clustermanager", "show", "--ids", cmID, "--query", "identity.principalId", "-o", "tsv"))
	kh("role", "assignment", "create", "--assignee", pid, "--role", "44f0a1a8-6fea-4b35-980a-8ff50c487c97", "--scope", w.vaultID, "-o", "none")
	// Each cluster has its own rack and machine (n names them).
	rack := func(n, password, mac string) string {
		return "{networkRackId:'" + rgID + "/providers/Microsoft.ManagedNetworkFabric/networkRacks/r" + n + "',rackSkuId:'/subscriptions/" + sub + "/providers/Microsoft.NetworkCloud/rackSkus/s',rackSerialNumber:r" + n + ",bareMetalMachineConfigurationData:[{bmcCredentials:{username:root,password:'" + password + "'},bmcMacAddress:'" + mac + "',bootMacAddress:'AA:BB:CC:DD:EF:0" + n + "',machineName:m" + n + ",rackSlot:1,serialNumber:S" + n + "}]}"
	}
	createCluster := func(name, n, password, mac string) (string, error) {
		return s.CLI(t, "networkcloud", "cluster", "create", "-n", name, "-g", "rg1", "--extended-location", "name="+cmID, "type=CustomLocation",
			"--cluster-type", "SingleRack", "--cluster-version", "3.10.0", "--network-fabric-id", rgID+"/providers/Microsoft.ManagedNetworkFabric/networkFabrics/f"+n,
			"--aggregator-or-single-rack-definition", rack(n, password, mac), "-o", "none")
	}
	initial, blockedInitial := "INITIAL-BMC-"+randHex(6), "BLOCKED-BMC-"+randHex(6)
	// A refused create that carries a password: its error must not echo it.
	if out, err := createCluster("bad", "9", initial, "not-a-mac"); err == nil {
		t.Fatal("a cluster with an invalid BMC MAC address was created")
	} else {
		errorBodies = append(errorBodies, out) // what the CLI printed (err repeats the command line)
	}
	clusterID := rgID + "/providers/Microsoft.NetworkCloud/clusters/leak"
	blockedID := rgID + "/providers/Microsoft.NetworkCloud/clusters/blocked"
	for _, c := range []struct{ name, n, password string }{{"leak", "1", initial}, {"blocked", "2", blockedInitial}} {
		if out, err := createCluster(c.name, c.n, c.password, "AA:BB:CC:DD:EE:0"+c.n); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	kh("networkcloud", "cluster", "update", "--ids", clusterID, "--secret-archive", "{key-vault-id:"+w.vaultID+",use-key-vault:true}", "-o", "none")
	kh("networkcloud", "cluster", "deploy", "--ids", clusterID, "-o", "none")
	kh("networkcloud", "cluster", "deploy", "--ids", blockedID, "-o", "none")
	var rotated []string
	waitFor(t, func() bool {
		// Delivered secrets are tagged with their cluster's ID.
		names := strings.Fields(kh("keyvault", "secret", "list", "--vault-name", w.vault, "--query", "[?tags.clusterId].name", "-o", "tsv"))
		if len(names) < 3 { // BMC, console user, local path storage key
			return false
		}
		rotated = rotated[:0]
		for _, n := range names {
			rotated = append(rotated, strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", w.vault, "-n", n, "--query", "value", "-o", "tsv")))
		}
		return true
	})
	var alerts []string
	waitFor(t, func() bool {
		out := kh("networkcloud", "cluster", "alert", "list", "--ids", blockedID, "--include-cleared")
		alerts = []string{out}
		return strings.Contains(out, "SecretArchiveNotConfigured")
	})
	for _, id := range []string{clusterID, blockedID} {
		code, b := s.Do(t, "GET", s.BaseURL+"/rotation/alerts?"+url.Values{"clusterId": {id}, "includeCleared": {"true"}}.Encode(), w.armToken, nil)
		mustStatus(t, 200, code, b)
		alerts = append(alerts, string(b))
	}

	// Everything an operator or an attacker with log access could read.
	haystack := map[string][]string{"server log": {s.Logs()}, "error body": errorBodies, "rotation alerts": alerts}
	var events []string
	for next := s.BaseURL + "/audit/events?top=1000"; next != ""; {
		code, b := s.Do(t, "GET", next, w.armToken, nil)
		mustStatus(t, 200, code, b)
		events = append(events, string(b))
		var page struct {
			NextLink string `json:"nextLink"`
		}
		_ = json.Unmarshal(b, &page)
		next = page.NextLink
		if strings.HasPrefix(next, "/") {
			next = s.BaseURL + next
		}
	}
	haystack["audit events"] = events
	for _, id := range []string{clusterID, blockedID} {
		haystack["cluster status"] = append(haystack["cluster status"], kh("networkcloud", "cluster", "show", "--ids", id))
	}
	haystack["machine status"] = []string{kh("networkcloud", "baremetalmachine", "list", "-g", "rg1")}
	waitFor(t, func() bool {
		out, err := s.CLI(t, "storage", "blob", "list", "--account-name", "leaklogs", "--container-name", "insights-logs-auditevent", "--query", "[].name", "-o", "tsv")
		return err == nil && strings.TrimSpace(out) != ""
	})
	for _, name := range strings.Fields(kh("storage", "blob", "list", "--account-name", "leaklogs", "--container-name", "insights-logs-auditevent", "--query", "[].name", "-o", "tsv")) {
		haystack["shipped blob"] = append(haystack["shipped blob"], kh("storage", "blob", "download", "--account-name", "leaklogs", "--container-name", "insights-logs-auditevent", "--name", name))
	}
	if !strings.Contains(strings.Join(haystack["cluster status"], ""), "detailedStatus") {
		t.Fatal("cluster show has no detailedStatus: the search would miss it")
	}

	values := append([]string{restored, initial, blockedInitial}, rotated...)
	checked := 0
	for _, v := range values {
		needles := needlesOf(v)
		if len(needles) == 0 {
			t.Fatalf("implausible secret value of %d chars: the test would prove nothing", len(v))
		}
		for _, n := range needles {
			for where, hs := range haystack {
				for _, h := range hs {
					if strings.Contains(h, n) {
						t.Fatalf("a secret value (a %d-char part of a %d-char value) leaked into a %s", len(n), len(v), where)
					}
				}
			}
			checked++
		}
	}
	for _, n := range material {
		for where, hs := range haystack {
			for _, h := range hs {
				if strings.Contains(h, string(n.bytes)) {
					t.Fatalf("%s leaked into a %s", n.what, where)
				}
			}
		}
		checked++
	}
	// Forensics: the rotation engine's deliveries are SecretSet events whose
	// valueHmac identifies each delivered value.
	allEvents := strings.Join(events, "")
	for _, v := range rotated {
		h := strings.TrimSpace(kh("audit", "hash", "--value", v, "--query", "hash", "-o", "tsv"))
		if !strings.HasPrefix(h, "hmac-sha256:") || !strings.Contains(allEvents, `"valueHmac":"`+h+`"`) {
			t.Fatalf("no audit event identifies a rotated value by its HMAC %q", h)
		}
	}
	t.Logf("%d needles from %d values and key material checked against %d kinds of output", checked, len(values), len(haystack))
}

// writeKeyAndCertMaterial sends private material through every key and
// certificate path that takes or returns it: keys created, imported and
// backed up (writeKeys), data encrypted and a key wrapped and back, a key
// import refused with its private exponent in the body, a PFX imported with
// its password and refused with a wrong one, a certificate created (its
// secret read) and backed up. It returns what must never be seen again, in
// every encoding a leak could take.
func (w *world) writeKeyAndCertMaterial(t *testing.T, expectError func(what, method, u string, body any)) []needle {
	t.Helper()
	s, vu := w.srv, w.srv.VaultURL(w.vault)
	b64url, b64 := base64.RawURLEncoding.EncodeToString, base64.StdEncoding.EncodeToString
	encodings := func(what string, raw []byte) []needle {
		return []needle{{what + " (raw)", raw}, {what + " (base64url)", []byte(b64url(raw))}, {what + " (base64)", []byte(b64(raw))}}
	}
	out, _ := w.writeKeys(t)
	keyURL := func(p string) string { return vu + "keys/" + p + "?api-version=7.5" }
	plain := []byte("PLAINTEXT-" + randHex(12))
	for op, back := range map[string]string{"encrypt": "decrypt", "wrapKey": "unwrapKey"} {
		code, b := s.Do(t, "POST", keyURL("imported-rsa/"+op), w.kvToken, map[string]string{"alg": "RSA-OAEP-256", "value": b64url(plain)})
		mustStatus(t, 200, code, b)
		var res struct {
			Value string `json:"value"`
		}
		_ = json.Unmarshal(b, &res)
		code, b = s.Do(t, "POST", keyURL("imported-rsa/"+back), w.kvToken, map[string]string{"alg": "RSA-OAEP-256", "value": res.Value})
		mustStatus(t, 200, code, b)
		if err := json.Unmarshal(b, &res); err != nil || res.Value != b64url(plain) {
			t.Fatalf("%s then %s did not give the plaintext back: %s", op, back, b)
		}
	}
	out = append(out, encodings("plaintext of encrypt and wrapKey", plain)...)
	refused, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	expectError("key import with an unknown kty", "PUT", keyURL("refused-import"), map[string]any{"key": map[string]string{
		"kty": "RSA-XYZ", "n": b64url(refused.N.Bytes()), "e": "AQAB", "d": b64url(refused.D.Bytes())}})
	expectError("key import without its primes", "PUT", keyURL("refused-import"), map[string]any{"key": map[string]string{
		"kty": "RSA", "n": b64url(refused.N.Bytes()), "e": "AQAB", "d": b64url(refused.D.Bytes()), "p": "AQAB"}})
	out = append(out, encodings("private exponent of a refused import", refused.D.Bytes())...)

	ck, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cert := selfSigned(t, ck, "leak.example.com", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	pwd, wrong := "PFX-PASSWORD-"+randHex(8), "WRONG-PASSWORD-"+randHex(8)
	pfx, err := pkcs12.Modern.Encode(ck, cert, nil, pwd)
	if err != nil {
		t.Fatal(err)
	}
	certURL := func(p string) string { return vu + "certificates/" + p + "?api-version=7.5" }
	expectError("certificate import with a wrong password", "POST", certURL("leakcert/import"), map[string]string{"value": b64(pfx), "pwd": wrong})
	code, b := s.Do(t, "POST", certURL("leakcert/import"), w.kvToken, map[string]string{"value": b64(pfx), "pwd": pwd})
	mustStatus(t, 200, code, b)
	code, b = s.Do(t, "POST", certURL("leakcert/backup"), w.kvToken, nil)
	mustStatus(t, 200, code, b)
	code, b = s.Do(t, "POST", certURL("selfcert/create"), w.kvToken, json.RawMessage(`{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=self.example.com"}}}`))
	mustStatus(t, 202, code, b)
	code, b = s.Do(t, "GET", vu+"secrets/selfcert?api-version=7.5", w.kvToken, nil)
	mustStatus(t, 200, code, b)
	var sec struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(b, &sec); err != nil || len(sec.Value) < 100 {
		t.Fatalf("the created certificate's secret: %s", b)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(ck)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ck.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, needle{"PFX password", []byte(pwd)}, needle{"wrong PFX password", []byte(wrong)},
		needle{"imported PFX (base64)", []byte(b64(pfx))}, needle{"created certificate's secret", []byte(sec.Value)})
	out = append(out, encodings("imported certificate's private key (PKCS #8)", p8)...)
	return append(out, encodings("imported certificate's private scalar", d)...)
}
