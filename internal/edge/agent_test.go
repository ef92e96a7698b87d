package edge

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testDevice   = "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.DataBoxEdge/dataBoxEdgeDevices/edge1"
	testKey      = "khase1.good.key"
	testHeader   = "ih-secret-0123456789"
	testAudience = "https://vault.test"
	testCIK      = "Q0lLLXZhbHVlLW9mLXRoaXJ0eS10d28tYnl0ZXMhISE="
)

// fakeKeyhaven is what the agent talks to — the activation route, the
// managed-identity endpoint (App Service protocol), the device's extended
// information on ARM and the vault data plane (path form) — with knobs for
// the failures the agent must report.
type fakeKeyhaven struct {
	t   *testing.T
	srv *httptest.Server

	mu        sync.Mutex
	redeemed  bool
	status    string              // keyVaultSyncStatus shown
	vaults    map[string]bool     // vault name → exists
	current   string              // the device's vault
	forbidden bool                // the device identity lost its access policy
	revoked   bool                // the workload secret no longer works
	secrets   map[string][]string // "vault/name" → versions' values
	reports   []map[string]any    // updateExtendedInformation bodies
	bodies    []string            // every request body the server received
}

func newFake(t *testing.T) *fakeKeyhaven {
	f := &fakeKeyhaven{t: t, status: SyncSynced, vaults: map[string]bool{"kv1": true}, current: "kv1",
		secrets: map[string][]string{"kv1/ase-cik-1": {testCIK}}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKeyhaven) vaultURI(name string) string { return f.srv.URL + "/vaults/" + name }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, code string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": code + " (fake)"}})
}

func (f *fakeKeyhaven) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	f.bodies = append(f.bodies, string(body))
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	p := r.URL.Path
	switch {
	case p == ActivationPath && r.Method == http.MethodPost:
		var in struct{ ActivationKey string }
		_ = json.Unmarshal(body, &in)
		if in.ActivationKey != testKey || f.redeemed {
			apiErr(w, 401, "InvalidActivationKey")
			return
		}
		f.redeemed = true
		writeJSON(w, 200, map[string]any{"deviceId": testDevice, "tenantId": "t1", "clientId": "c1", "principalId": "p1",
			"resourceManager": f.srv.URL, "identityEndpoint": f.srv.URL + "/msi/token", "identityHeader": testHeader,
			"vaultAudience": testAudience, "keyVaultId": "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/kv1",
			"keyVaultUri": f.vaultURI("kv1"), "channelIntegrityKeyName": "ase-cik-1",
			"deviceSecretNames": map[string]string{SecretBitLockerRecoveryKey: "ase-bitlocker-1", SecretBMCPassword: "ase-bmc-1"}})
	case p == "/msi/token" && r.Method == http.MethodGet:
		if r.Header.Get("X-IDENTITY-HEADER") != testHeader || f.revoked || r.URL.Query().Get("api-version") != msiAPIVersion {
			writeJSON(w, 401, map[string]any{"error": "invalid_request", "error_description": "The X-IDENTITY-HEADER value is not valid."})
			return
		}
		res := r.URL.Query().Get("resource")
		writeJSON(w, 200, map[string]any{"access_token": "tok|" + res, "expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10),
			"resource": res, "token_type": "Bearer"})
	case strings.HasPrefix(p, testDevice+"/"):
		if bearer != "tok|"+f.srv.URL || r.URL.Query().Get("api-version") != armAPIVersion {
			apiErr(w, 401, "InvalidAuthenticationToken")
			return
		}
		switch strings.TrimPrefix(p, testDevice+"/") {
		case "getExtendedInformation":
			status := f.status
			if !f.vaults[f.current] || f.forbidden {
				status = SyncFailed
			}
			props := map[string]any{"clientSecretStoreUrl": f.vaultURI(f.current),
				"clientSecretStoreId":     "/subscriptions/s1/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/" + f.current,
				"channelIntegrityKeyName": "ase-cik-1", "keyVaultSyncStatus": status}
			if status == SyncPending {
				props["keyVaultSyncRequestId"] = "req-" + strconv.Itoa(len(f.reports))
			}
			writeJSON(w, 200, map[string]any{"properties": props})
		case "updateExtendedInformation":
			var m map[string]any
			_ = json.Unmarshal(body, &m)
			f.reports = append(f.reports, m)
			if s, ok := m["syncStatus"].(string); ok {
				f.status = s
			}
			writeJSON(w, 200, map[string]any{"properties": map[string]any{"keyVaultSyncStatus": f.status}})
		default:
			apiErr(w, 404, "NotFound")
		}
	case strings.HasPrefix(p, "/vaults/"):
		segs := strings.Split(strings.TrimPrefix(p, "/vaults/"), "/")
		if len(segs) != 3 || segs[1] != "secrets" {
			apiErr(w, 404, "NotFound")
			return
		}
		if bearer != "tok|"+testAudience {
			apiErr(w, 401, "Unauthorized")
			return
		}
		if !f.vaults[segs[0]] {
			apiErr(w, 404, "VaultNotFound")
			return
		}
		if f.forbidden {
			apiErr(w, 403, "Forbidden")
			return
		}
		k := segs[0] + "/" + segs[2]
		switch r.Method {
		case http.MethodPut:
			var in struct{ Value string }
			_ = json.Unmarshal(body, &in)
			f.secrets[k] = append(f.secrets[k], in.Value)
		case http.MethodGet:
			if len(f.secrets[k]) == 0 {
				apiErr(w, 404, "SecretNotFound")
				return
			}
		}
		n := len(f.secrets[k])
		writeJSON(w, 200, map[string]any{"id": f.vaultURI(segs[0]) + "/secrets/" + segs[2] + "/v" + strconv.Itoa(n), "value": f.secrets[k][n-1]})
	default:
		apiErr(w, 404, "NotFound")
	}
}

func (f *fakeKeyhaven) activate(t *testing.T, dir string) {
	t.Helper()
	if _, err := Activate(context.Background(), ActivateOptions{Server: f.srv.URL, ActivationKey: testKey, StateDir: dir, HTTPClient: f.srv.Client()}); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeKeyhaven) agent(t *testing.T, dir string) *Agent {
	t.Helper()
	a, err := Open(dir, Options{HTTPClient: f.srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f *fakeKeyhaven) set(fn func(f *fakeKeyhaven)) { f.mu.Lock(); defer f.mu.Unlock(); fn(f) }

func TestActivate(t *testing.T) {
	f := newFake(t)
	base := t.TempDir()
	tests := []struct {
		name    string
		dir     string
		key     string
		prepare func(dir string)
		wantErr string
	}{
		{name: "fail/wrong-key", dir: "a", key: "khase1.bad.key", wantErr: "InvalidActivationKey"},
		{name: "ok/activate", dir: "b", key: testKey},
		{name: "fail/used-up", dir: "c", key: testKey, wantErr: "InvalidActivationKey"},
		{name: "fail/already-activated", dir: "b", key: testKey, wantErr: "already holds an activated device"},
		{name: "fail/shared-dir", dir: "d", key: testKey, prepare: func(d string) { _ = os.MkdirAll(d, 0o755); _ = os.Chmod(d, 0o755) },
			wantErr: "accessible by group or others"},
		{name: "fail/no-key", dir: "e", key: " ", wantErr: "required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(base, tc.dir)
			if tc.prepare != nil {
				tc.prepare(dir)
			}
			out, err := Activate(context.Background(), ActivateOptions{Server: f.srv.URL, ActivationKey: tc.key, StateDir: dir, HTTPClient: f.srv.Client()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.DeviceID != testDevice || out.KeyVaultURI != f.vaultURI("kv1") || strings.Join(out.DeviceSecrets, ",") != SecretBMCPassword+","+SecretBitLockerRecoveryKey {
				t.Fatalf("activation %+v", out)
			}
			if b, _ := json.Marshal(out); strings.Contains(string(b), testHeader) {
				t.Fatal("the activation result shows the workload secret")
			}
			if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %v", fi.Mode().Perm())
			}
			for _, name := range []string{KeyFile, StateFile} {
				if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s: %v %v", name, fi, err)
				}
			}
			a := f.agent(t, dir)
			secrets, err := a.st.deviceSecrets()
			if err != nil {
				t.Fatal(err)
			}
			assertNoPlaintext(t, dir, testHeader, secrets[SecretBitLockerRecoveryKey], secrets[SecretBMCPassword])
		})
	}
}

// assertNoPlaintext fails if any value appears in a file of dir.
func assertNoPlaintext(t *testing.T, dir string, values ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			if v == "" {
				t.Fatalf("value %d is empty: the check would prove nothing", i)
			}
			if bytes.Contains(b, []byte(v)) {
				t.Fatalf("value %d appears in the clear in %s", i, e.Name())
			}
		}
	}
}

func TestStateSealing(t *testing.T) {
	f := newFake(t)
	tests := []struct {
		name    string
		tamper  func(t *testing.T, dir string)
		wantErr string // from Open ("" = opens) ...
		openErr string // ... or from opening the secrets
	}{
		{name: "ok/untouched", tamper: func(*testing.T, string) {}},
		{name: "fail/key-readable", tamper: func(t *testing.T, dir string) { _ = os.Chmod(filepath.Join(dir, KeyFile), 0o644) }, wantErr: "accessible by group or others"},
		{name: "fail/state-readable", tamper: func(t *testing.T, dir string) { _ = os.Chmod(filepath.Join(dir, StateFile), 0o640) }, wantErr: "accessible by group or others"},
		{name: "fail/other-key", tamper: func(t *testing.T, dir string) {
			k := make([]byte, keySize)
			_, _ = rand.Read(k)
			if err := writePrivate(filepath.Join(dir, KeyFile), k); err != nil {
				t.Fatal(err)
			}
		}, openErr: "does not open"},
		{name: "fail/fields-swapped", tamper: func(t *testing.T, dir string) {
			editState(t, dir, func(s *State) { s.Sealed.DeviceSecrets = s.Sealed.IdentityHeader })
		}, openErr: "does not open"},
		{name: "fail/other-device", tamper: func(t *testing.T, dir string) {
			editState(t, dir, func(s *State) { s.DeviceID += "x" })
		}, openErr: "does not open"},
		{name: "fail/bit-flipped", tamper: func(t *testing.T, dir string) {
			editState(t, dir, func(s *State) {
				b := []byte(s.Sealed.DeviceSecrets)
				b[len(b)-3] ^= 1
				s.Sealed.DeviceSecrets = string(b)
			})
		}, openErr: "does not open"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.set(func(f *fakeKeyhaven) { f.redeemed = false })
			dir := filepath.Join(t.TempDir(), "dev")
			f.activate(t, dir)
			tc.tamper(t, dir)
			a, err := Open(dir, Options{HTTPClient: f.srv.Client()})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("open: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.st.deviceSecrets()
			if tc.openErr == "" && err != nil || tc.openErr != "" && (err == nil || !strings.Contains(err.Error(), tc.openErr)) {
				t.Fatalf("open secrets: %v, want %q", err, tc.openErr)
			}
		})
	}
}

func editState(t *testing.T, dir string, fn func(*State)) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	fn(&s)
	b, _ = json.Marshal(s)
	if err := writePrivate(filepath.Join(dir, StateFile), b); err != nil {
		t.Fatal(err)
	}
}

// TestPasses runs one device through the guide's situations, pass by pass.
func TestPasses(t *testing.T) {
	f := newFake(t)
	dir := filepath.Join(t.TempDir(), "dev")
	f.activate(t, dir)
	a := f.agent(t, dir)
	secrets, err := a.st.deviceSecrets()
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		before     func(f *fakeKeyhaven)
		wantStatus string
		wantPushed int
		wantReport string // the syncStatus reported ("" = nothing)
		wantReason string
		wantErr    string // the pass could not reach the service
		wantVault  string
		reopen     bool // a new agent process (no cached tokens)
	}{
		{name: "ok/first-pass-pushes", wantStatus: SyncSynced, wantPushed: 2, wantReport: SyncSynced, wantVault: "kv1"},
		{name: "ok/steady-pass", wantStatus: SyncSynced, wantVault: "kv1"},
		{name: "ok/pending-pushes-again", before: func(f *fakeKeyhaven) { f.status = SyncPending }, wantStatus: SyncSynced, wantPushed: 2, wantReport: SyncSynced, wantVault: "kv1"},
		{name: "fail/vault-deleted", before: func(f *fakeKeyhaven) { f.vaults["kv1"] = false }, wantStatus: SyncFailed, wantReport: SyncFailed,
			wantReason: "404 VaultNotFound", wantVault: "kv1"},
		{name: "fail/still-deleted", wantStatus: SyncFailed, wantReport: SyncFailed, wantReason: "404 VaultNotFound", wantVault: "kv1"},
		{name: "ok/recovered", before: func(f *fakeKeyhaven) { f.vaults["kv1"] = true; f.status = SyncPending }, wantStatus: SyncSynced, wantPushed: 2,
			wantReport: SyncSynced, wantVault: "kv1"},
		{name: "fail/access-policy-removed", before: func(f *fakeKeyhaven) { f.forbidden = true }, wantStatus: SyncFailed, wantReport: SyncFailed,
			wantReason: "403 Forbidden", wantVault: "kv1"},
		{name: "ok/access-restored", before: func(f *fakeKeyhaven) { f.forbidden = false; f.status = SyncPending }, wantStatus: SyncSynced, wantPushed: 2,
			wantReport: SyncSynced, wantVault: "kv1"},
		{name: "ok/new-vault-after-purge", before: func(f *fakeKeyhaven) {
			f.vaults["kv1"], f.vaults["kv2"], f.current, f.status = false, true, "kv2", SyncPending
			f.secrets["kv2/ase-cik-1"] = []string{testCIK + "2"}
		}, wantStatus: SyncSynced, wantPushed: 2, wantReport: SyncSynced, wantVault: "kv2"},
		{name: "fail/identity-revoked", before: func(f *fakeKeyhaven) { f.revoked = true }, wantErr: "managed-identity token: 401", wantVault: "kv2", reopen: true},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			var nReports int
			f.set(func(f *fakeKeyhaven) {
				if s.before != nil {
					s.before(f)
				}
				nReports = len(f.reports)
			})
			if s.reopen {
				a = f.agent(t, dir)
			}
			res, err := a.Pass(context.Background())
			if s.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), s.wantErr) {
					t.Fatalf("pass: %v, want %q", err, s.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if res.Status != s.wantStatus || len(res.Pushed) != s.wantPushed || !strings.Contains(res.Reason, s.wantReason) ||
				res.Reported != (s.wantReport != "") {
				t.Fatalf("result %+v", res)
			}
			f.set(func(f *fakeKeyhaven) {
				reports := f.reports[nReports:]
				if s.wantReport == "" {
					if len(reports) != 0 {
						t.Fatalf("reported %v", reports)
					}
				} else {
					if len(reports) != 1 || reports[0]["syncStatus"] != s.wantReport {
						t.Fatalf("reports %v, want one %s", reports, s.wantReport)
					}
					if s.wantReport == SyncFailed && !strings.Contains(reports[0]["keyVaultSyncError"].(string), s.wantReason) {
						t.Fatalf("reason %v", reports[0])
					}
					if s.wantReport == SyncSynced && s.before != nil && reports[0]["keyVaultSyncRequestId"] != "req-"+strconv.Itoa(nReports) {
						t.Fatalf("the pending request's id is not echoed: %v", reports[0])
					}
					if s.wantPushed > 0 {
						refs := reports[0]["deviceSecrets"].(map[string]any)
						for _, n := range []string{SecretBitLockerRecoveryKey, SecretBMCPassword} {
							id := refs[n].(map[string]any)["keyVaultId"].(string)
							if !strings.HasPrefix(id, f.vaultURI(s.wantVault)+"/secrets/") || len(refs[n].(map[string]any)) != 1 {
								t.Fatalf("reference %s: %v", n, refs[n])
							}
						}
					}
				}
				if s.wantPushed > 0 {
					for n, want := range map[string]string{"ase-bitlocker-1": secrets[SecretBitLockerRecoveryKey], "ase-bmc-1": secrets[SecretBMCPassword]} {
						vs := f.secrets[s.wantVault+"/"+n]
						if len(vs) == 0 || vs[len(vs)-1] != want {
							t.Fatalf("%s not pushed to %s", n, s.wantVault)
						}
					}
				}
			})
			if got := a.State().KeyVaultURI; got != f.vaultURI(s.wantVault) {
				t.Fatalf("vault %s, want %s", got, s.wantVault)
			}
			if s.wantStatus == SyncSynced {
				want := testCIK
				if s.wantVault == "kv2" {
					want += "2"
				}
				if cik, err := a.CIK(); err != nil || cik != want {
					t.Fatalf("CIK kept: %v", err)
				}
			}
			if res != nil {
				b, _ := json.Marshal(res)
				for _, v := range []string{secrets[SecretBitLockerRecoveryKey], secrets[SecretBMCPassword], testCIK, testHeader} {
					if strings.Contains(string(b), v) {
						t.Fatal("a secret value is in the pass result")
					}
				}
			}
			assertNoPlaintext(t, dir, testHeader, secrets[SecretBitLockerRecoveryKey], secrets[SecretBMCPassword], testCIK)
		})
	}
	// Reopening the state directory keeps what the passes learned.
	b := f.agent(t, dir)
	if st := b.State(); st.KeyVaultURI != f.vaultURI("kv2") || st.LastSync == nil || st.LastSync.Status != SyncSynced {
		t.Fatalf("reopened state %+v", st.LastSync)
	}
	// Nothing the agent sent to ARM or the identity endpoint carried a value.
	f.set(func(f *fakeKeyhaven) {
		for _, body := range f.bodies {
			if strings.Contains(body, `"syncStatus"`) && (strings.Contains(body, secrets[SecretBMCPassword]) || strings.Contains(body, secrets[SecretBitLockerRecoveryKey])) {
				t.Fatal("a report carries a secret value")
			}
		}
	})
}

func TestRunStopsWithContext(t *testing.T) {
	f := newFake(t)
	dir := filepath.Join(t.TempDir(), "dev")
	f.activate(t, dir)
	a := f.agent(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeKeyhaven) {
		if len(f.reports) != 1 || f.reports[0]["syncStatus"] != SyncSynced {
			t.Fatalf("reports %v: the first pass pushes and later ones only check", f.reports)
		}
	})
	if err := a.Run(context.Background(), 0); err == nil {
		t.Fatal("a zero interval runs")
	}
}

func TestDeviceSecretFormats(t *testing.T) {
	re := regexp.MustCompile(`^\d{6}(-\d{6}){7}$`)
	seen := map[string]bool{}
	for range 50 {
		s, err := generateSecrets(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		bl, bmc := s[SecretBitLockerRecoveryKey], s[SecretBMCPassword]
		if !re.MatchString(bl) {
			t.Fatalf("BitLocker recovery key format: %d chars", len(bl))
		}
		for _, g := range strings.Split(bl, "-") {
			n, _ := strconv.Atoi(g)
			if n%11 != 0 || n/11 > 65535 {
				t.Fatal("a BitLocker group is not a 16-bit value times 11")
			}
		}
		if len(bmc) != 24 || !strings.ContainsAny(bmc, lowerChars) || !strings.ContainsAny(bmc, upperChars) ||
			!strings.ContainsAny(bmc, digitChars) || !strings.ContainsAny(bmc, symbolChars) {
			t.Fatal("BMC password lacks a character class")
		}
		if seen[bl] || seen[bmc] {
			t.Fatal("a device secret repeated")
		}
		seen[bl], seen[bmc] = true, true
	}
}

func TestVaultDomainOf(t *testing.T) {
	for in, want := range map[string]string{
		"https://kv1.vault.localhost:8443": "vault.localhost",
		"https://kv1.vault.example.com":    "vault.example.com",
		"https://server:8443/vaults/kv1":   "",
		"https://localhost":                "",
	} {
		if got := vaultDomainOf(in); got != want {
			t.Errorf("vaultDomainOf(%s) = %q, want %q", in, got, want)
		}
	}
}
