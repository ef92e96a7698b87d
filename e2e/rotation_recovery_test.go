package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
	"github.com/keyhaven/keyhaven/internal/testutil/redfishtest"
)

// Issue 7: each archive failure cause, through the real binary and CLI,
// produces its status and alert, and delivery resumes once it is fixed with
// nothing lost: the credential a machine holds is always one keyhaven holds
// too, every rotation adds exactly one secret version, and none is skipped.
//
// Each case deploys its own cluster (one bare-metal machine whose BMC is a
// Redfish test server, so BMCCredential, ConsoleUser and
// LocalPathStorageKey) on one server, one cluster manager with a
// system-assigned identity, and one customer vault (RBAC) that serves every
// cluster.
//
// The fix is followed by `cluster rotate-credential`: with the default
// backoff the engine retries a blocked credential only after 30 s, and a
// configuration change does not wake it; the operator's request is the
// nudge. It starts no extra rotation: a blocked credential already carries
// its request, and one waiting in ArchivePending is only re-delivered
// (versions == rotations checks both). TestRotationRetriesAutomatically
// runs two of the cases with a short backoff and no nudge.
//
// On PostgreSQL, concurrent workers raising alerts for one cluster hit
// serialization failures at COMMIT; the alert checks here caught alerts
// lost or never cleared on the retried commit (see
// internal/rotation/save_retry_test.go).
func TestRotationRecoversFromArchiveFailures(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { runRotationRecovery(t, b.opts(t), false) })
	}
}

// TestRotationRetriesAutomatically: with --rotation-retry-initial short, a
// blocked delivery is retried by the engine itself, again and again while
// the cause holds (with still one alert per credential and nothing
// delivered), and it succeeds on its own after the fix, with no operator
// request: both a rotation that never started (role removed) and one whose
// new value the machine already holds (vault deleted mid-flight).
func TestRotationRetriesAutomatically(t *testing.T) {
	runRotationRecovery(t, khtest.Options{}, true)
}

const writerRoleID = "44f0a1a8-6fea-4b35-980a-8ff50c487c97"

var recoveryKinds = []string{"BMCCredential", "ConsoleUser", "LocalPathStorageKey"}

type recoveryCase struct {
	name string
	// archive: secretArchive is set before deployment (else the case is
	// "no vault configured" from the start).
	archive bool
	// brk breaks delivery after the deployment's; fix repairs it.
	brk, fix func()
	// midFlight: brk runs while the BMC password is being changed, after
	// the rotation's preflight passed, so the new value is already in force
	// on the machine when delivery fails (ArchivePending).
	midFlight bool
	code      string
	// msg is a part of the alert's message naming what is missing.
	msg string
	// autoRetry: TestRotationRetriesAutomatically runs this case.
	autoRetry bool
}

// runRotationRecovery runs the cases; auto runs only those marked autoRetry,
// on a server with a short retry backoff, and leaves the retry after the
// fix to the engine (a nudge there could race the engine's own retry and
// start a second rotation).
func runRotationRecovery(t *testing.T, opts khtest.Options, auto bool) {
	start := time.Now()
	cases := []string{"no-vault-configured", "role-removed", "wrong-role", "vault-deleted-then-recovered"}
	accounts := map[string]string{}
	for _, c := range cases {
		accounts[bmcUserFor(c)] = "Initial-" + c
	}
	bmc := redfishtest.New(t, accounts)
	caFile := filepath.Join(t.TempDir(), "bmc-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bmc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Args = append(opts.Args, "--rotation-interval", "200ms", "--target-ca-file", caFile,
		"--throttle-vault-transactions", "-1", "--throttle-vault-creates", "-1")
	if auto {
		opts.Args = append(opts.Args, "--rotation-retry-initial", "300ms", "--rotation-retry-max", "1s")
	}
	s := khtest.Start(t, opts)
	cliSession(t, s) // logs in; the CLI keeps the session in its config directory
	// runner runs the CLI, failing t (the running subtest: FailNow must not
	// reach a parent test) when a command fails. kh is re-bound per case so
	// the helpers below fail the case that calls them.
	runner := func(t *testing.T) func(args ...string) string {
		return func(args ...string) string {
			t.Helper()
			out, err := s.CLI(t, args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			return out
		}
	}
	kh := runner(t)
	sub := s.Admin.SubscriptionID
	rgID := "/subscriptions/" + sub + "/resourceGroups/rg"

	kh("group", "create", "-n", "rg", "-l", "local", "-o", "none")
	vaultID := tsv(kh("keyvault", "create", "-n", "custvault", "-g", "rg", "-l", "local", "--enable-rbac-authorization", "true", "--query", "id", "-o", "tsv"))
	cmID := rgID + "/providers/Microsoft.NetworkCloud/clusterManagers/cm"
	kh("networkcloud", "clustermanager", "create", "-n", "cm", "-g", "rg", "-l", "local",
		"--fabric-controller-id", rgID+"/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/nfc",
		"--mi-system-assigned", "-o", "none")
	pid := tsv(kh("networkcloud", "clustermanager", "show", "--ids", cmID, "--query", "identity.principalId", "-o", "tsv"))
	if pid == "" {
		t.Fatal("the cluster manager has no system-assigned principal")
	}
	grant := func(role string) {
		kh("role", "assignment", "create", "--assignee", pid, "--role", role, "--scope", vaultID, "-o", "none")
	}
	revoke := func(role string) {
		kh("role", "assignment", "delete", "--assignee", pid, "--role", role, "--scope", vaultID, "-o", "none")
		if n := tsv(kh("role", "assignment", "list", "--scope", vaultID, "--assignee", pid, "--role", role, "--query", "length(@)", "-o", "tsv")); n != "0" {
			t.Fatalf("role %s still assigned after delete: %s", role, n)
		}
	}
	grant(writerRoleID)
	setArchive := func(clusterID string) {
		kh("networkcloud", "cluster", "update", "--ids", clusterID, "--secret-archive", "{key-vault-id:"+vaultID+",use-key-vault:true}", "-o", "none")
	}
	var current string // the cluster of the running case, for setArchive
	table := []recoveryCase{
		{name: "no-vault-configured", code: "SecretArchiveNotConfigured", msg: "has no secret archive",
			fix: func() { setArchive(current) }},
		{name: "role-removed", archive: true, autoRetry: true, code: "MissingRoleAssignment", msg: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
			brk: func() { revoke(writerRoleID) }, fix: func() { grant(writerRoleID) }},
		{name: "wrong-role", archive: true, code: "WrongRole", msg: "Microsoft.KeyVault/vaults/secrets/setSecret/action",
			brk: func() { revoke(writerRoleID); grant("Key Vault Reader") },
			fix: func() { grant(writerRoleID) }},
		{name: "vault-deleted-then-recovered", archive: true, midFlight: true, autoRetry: true, code: "VaultNotFound", msg: "'custvault' was not found",
			brk: func() { kh("keyvault", "delete", "-n", "custvault", "-g", "rg", "-o", "none") },
			fix: func() { kh("keyvault", "recover", "-n", "custvault", "-o", "none") }},
	}
	for i, tc := range table {
		if tc.name != cases[i] {
			t.Fatalf("case %d is %s, accounts were made for %s", i, tc.name, cases[i])
		}
	}

	for i, tc := range table {
		if auto && !tc.autoRetry {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			caseStart := time.Now()
			kh = runner(t)
			name := fmt.Sprintf("rc%d", i)
			user := bmcUserFor(tc.name)
			clusterID := rgID + "/providers/Microsoft.NetworkCloud/clusters/" + name
			current = clusterID
			r := &recoveryRun{t: t, kh: kh, s: s, clusterID: clusterID, cluster: name}

			rack, _ := json.Marshal(map[string]any{
				"networkRackId":    rgID + "/providers/Microsoft.ManagedNetworkFabric/networkRacks/" + name,
				"rackSkuId":        "/subscriptions/" + sub + "/providers/Microsoft.NetworkCloud/rackSkus/sku",
				"rackSerialNumber": name,
				"bareMetalMachineConfigurationData": []map[string]any{{
					"bmcConnectionString": bmc.Endpoint,
					"bmcCredentials":      map[string]string{"username": user, "password": accounts[user]},
					"bmcMacAddress":       fmt.Sprintf("AA:BB:CC:DD:EE:%02X", i), "bootMacAddress": fmt.Sprintf("AA:BB:CC:DD:EF:%02X", i),
					"machineName": name + "m1", "rackSlot": 1, "serialNumber": "SN-" + name,
				}},
			})
			rackFile := filepath.Join(t.TempDir(), "rack.json")
			if err := os.WriteFile(rackFile, rack, 0o600); err != nil {
				t.Fatal(err)
			}
			kh("networkcloud", "cluster", "create", "-n", name, "-g", "rg", "-l", "local",
				"--extended-location", "name="+cmID, "type=CustomLocation", "--cluster-type", "SingleRack", "--cluster-version", "3.10.0",
				"--network-fabric-id", rgID+"/providers/Microsoft.ManagedNetworkFabric/networkFabrics/f",
				"--aggregator-or-single-rack-definition", "@"+rackFile, "-o", "none")
			if tc.archive {
				setArchive(clusterID)
			}
			kh("networkcloud", "cluster", "deploy", "--ids", clusterID, "-o", "none")

			rotations := 0 // rotations each credential has had
			if tc.archive {
				// Rotated at deployment and delivered: one version each.
				rotations = 1
				r.waitDelivered(rotations)
				r.waitHealthy()
				if got := bmc.PatchesFor(user); got != 1 {
					t.Fatalf("BMC password changed %d times at deployment, want 1", got)
				}
				r.checkBMCMatchesVault(bmc, user)
			}
			lastArchived := bmc.Password(user)
			patches := bmc.PatchesFor(user)

			// Break delivery, then rotate.
			var held string // the BMC password in force while delivery is blocked
			switch {
			case !tc.archive:
				// The deployment's rotation is already blocked. An on-demand
				// one is refused up front with the same code.
				out, err := s.CLI(t, "networkcloud", "cluster", "rotate-credential", "--ids", clusterID, "--credentials", "BMCCredential", "-o", "none")
				if err == nil || !strings.Contains(out, tc.code) {
					t.Fatalf("rotate-credential without an archive: err %v, want a refusal naming %s:\n%s", err, tc.code, out)
				}
			case tc.midFlight:
				// Slow the BMC so the vault goes while its password is being
				// changed: the rotation has passed its preflight (it logged in
				// to the BMC), and the archive step finds the vault gone. The
				// change and its verification take about ten more requests
				// (4 s) after the first login: ample time for the delete.
				bmc.SetDelay(400 * time.Millisecond)
				logins := bmc.SessionLogins()
				kh("networkcloud", "cluster", "rotate-credential", "--ids", clusterID, "--credentials", "BMCCredential", "-o", "none")
				eventually(t, 10*time.Second, "the BMC rotation logs in", func() (bool, string) {
					return bmc.SessionLogins() > logins, fmt.Sprintf("%d logins", bmc.SessionLogins())
				})
				tc.brk()
				// The password changed on the machine; keyhaven keeps it
				// sealed and says so.
				r.waitStatus("ArchivePending", "held sealed by keyhaven", tc.code+": ")
				bmc.SetDelay(0)
				held = bmc.Password(user)
				if got := bmc.PatchesFor(user); got != patches+1 || held == lastArchived {
					t.Fatalf("BMC changed %d times (want %d), new password differs from the archived one: %v", got, patches+1, held != lastArchived)
				}
				r.checkAlerts(tc.code, tc.msg, []string{"BMCCredential"})
				// The other credentials do not start rotating at all.
				kh("networkcloud", "cluster", "rotate-credential", "--ids", clusterID, "--credentials", "ConsoleUser", "LocalPathStorageKey", "-o", "none")
			default:
				tc.brk()
				kh(append([]string{"networkcloud", "cluster", "rotate-credential", "--ids", clusterID, "--credentials"}, append(recoveryKinds, "-o", "none")...)...)
			}
			r.waitStatus(tc.code, tc.msg)
			r.checkAlerts(tc.code, tc.msg, recoveryKinds)
			// Nothing was lost: a rotation that did not start left the BMC
			// alone; one that did left its new value with keyhaven only
			// (checked below: it is the value delivered after the fix).
			if tc.midFlight {
				if got := bmc.Password(user); got != held || bmc.PatchesFor(user) != patches+1 {
					t.Fatalf("the BMC changed again while delivery was blocked (%d changes)", bmc.PatchesFor(user))
				}
			} else {
				if got := bmc.PatchesFor(user); got != patches || bmc.Password(user) != lastArchived {
					t.Fatalf("blocked rotation touched the BMC: %d changes, want %d", got, patches)
				}
				if tc.archive {
					r.checkVersions(rotations) // nothing new reached the vault
				}
			}

			if auto {
				// The engine keeps retrying while the cause holds: more
				// failed attempts, still one alert each and nothing new.
				attempts := r.attempts()
				eventually(t, 10*time.Second, "the engine retries on its own", func() (bool, string) {
					n := r.attempts()
					return n >= attempts+2, fmt.Sprintf("attempt %d, then %d", attempts, n)
				})
				r.checkAlerts(tc.code, tc.msg, recoveryKinds)
			}
			// Fix, nudge (or, auto, let the engine retry), and delivery resumes.
			tc.fix()
			if !auto {
				kh(append([]string{"networkcloud", "cluster", "rotate-credential", "--ids", clusterID, "--credentials"}, append(recoveryKinds, "-o", "none")...)...)
			}
			rotations++
			r.waitDelivered(rotations)
			r.waitHealthy()
			if got := bmc.PatchesFor(user); got != rotations {
				t.Fatalf("BMC password changed %d times for %d rotations", got, rotations)
			}
			vaultBMC := r.checkBMCMatchesVault(bmc, user)
			if tc.midFlight && vaultBMC != held {
				t.Fatal("the value delivered after recovery is not the one the BMC was given while the vault was gone")
			}
			if tc.midFlight {
				// The held value was delivered, not regenerated: the BMC was
				// changed once for this rotation.
				if bmc.Password(user) != held {
					t.Fatal("the BMC password changed during recovery")
				}
			}
			r.checkVersions(rotations) // versions == rotations: none skipped, none doubled
			r.checkCleared(tc.code)
			t.Logf("%s: blocked with %s, delivered after the fix (%d versions each) in %v", tc.name, tc.code, rotations, time.Since(caseStart).Round(time.Millisecond))
		})
		kh = runner(t)
		if t.Failed() {
			t.Logf("server log (rotation):\n%s", tailLines(s.Logs(), `"kind":`, 40))
			return
		}
	}
	t.Logf("all cases in %v", time.Since(start).Round(time.Millisecond))
}

func bmcUserFor(c string) string { return "bmc-" + c }

func tsv(s string) string { return strings.TrimSpace(s) }

// eventually polls f until it holds or timeout passes (then fails with f's
// last detail).
func eventually(t *testing.T, timeout time.Duration, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, detail := f()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, detail)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

type recoveryRun struct {
	t                  *testing.T
	kh                 func(args ...string) string
	s                  *khtest.Server
	clusterID, cluster string
	bmcSecret, bmm     string // found on first use
}

type rotationAlert struct {
	Kind      string     `json:"kind"`
	Code      string     `json:"code"`
	Message   string     `json:"message"`
	ClearedAt *time.Time `json:"clearedAt"`
}

// attempts is the highest attempt number of the "rotation blocked" lines
// the server logged for this cluster: it grows only by the engine's own
// retries while no one asks for a rotation.
func (r *recoveryRun) attempts() int {
	n := 0
	for _, line := range strings.Split(r.s.Logs(), "\n") {
		var l struct {
			Msg     string `json:"msg"`
			Cluster string `json:"cluster"`
			Attempt int    `json:"attempt"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "rotation blocked" && strings.EqualFold(l.Cluster, r.clusterID) {
			n = max(n, l.Attempt)
		}
	}
	return n
}

func (r *recoveryRun) status() (string, string) {
	var st struct{ S, M string }
	mustJSON(r.t, r.kh("networkcloud", "cluster", "show", "--ids", r.clusterID, "--query", "{s:detailedStatus,m:detailedStatusMessage}"), &st)
	return st.S, st.M
}

// waitStatus waits until the cluster is Degraded with a detailedStatusMessage
// "Credential rotation: {code}: ..." that contains every part of want.
func (r *recoveryRun) waitStatus(code string, want ...string) {
	r.t.Helper()
	eventually(r.t, 10*time.Second, "detailedStatus names "+code, func() (bool, string) {
		s, m := r.status()
		ok := s == "Degraded" && strings.HasPrefix(m, "Credential rotation: "+code+": ")
		for _, w := range want {
			ok = ok && strings.Contains(m, w)
		}
		return ok, s + ": " + m
	})
}

func (r *recoveryRun) waitHealthy() {
	r.t.Helper()
	eventually(r.t, 10*time.Second, "the cluster is Running", func() (bool, string) {
		s, m := r.status()
		return s == "Running", s + ": " + m
	})
	if n := tsv(r.kh("networkcloud", "cluster", "alert", "list", "--ids", r.clusterID, "--query", "length(@)", "-o", "tsv")); n != "0" {
		r.t.Fatalf("%s active alerts on a Running cluster", n)
	}
}

// checkAlerts waits until the active alerts are exactly one per kind, each
// with code and a message containing msg; an alert with another code or
// message fails at once.
func (r *recoveryRun) checkAlerts(code, msg string, kinds []string) {
	r.t.Helper()
	want := slices.Clone(kinds)
	sort.Strings(want)
	eventually(r.t, 10*time.Second, "an alert "+code+" per credential", func() (bool, string) {
		var alerts []rotationAlert
		mustJSON(r.t, r.kh("networkcloud", "cluster", "alert", "list", "--ids", r.clusterID), &alerts)
		var got []string
		for _, a := range alerts {
			if a.Code != code || !strings.Contains(a.Message, msg) || a.ClearedAt != nil {
				r.t.Fatalf("alert %+v, want code %s naming %q", a, code, msg)
			}
			got = append(got, a.Kind)
		}
		sort.Strings(got)
		return slices.Equal(got, want), fmt.Sprintf("alerts for %v, want one each for %v", got, want)
	})
}

// checkCleared: no active alert; the case's alerts are kept as cleared.
func (r *recoveryRun) checkCleared(code string) {
	r.t.Helper()
	var alerts []rotationAlert
	mustJSON(r.t, r.kh("networkcloud", "cluster", "alert", "list", "--ids", r.clusterID, "--include-cleared"), &alerts)
	cleared := 0
	for _, a := range alerts {
		if a.ClearedAt == nil {
			r.t.Fatalf("alert still active after recovery: %+v", a)
		}
		if a.Code == code {
			cleared++
		}
	}
	if cleared < len(recoveryKinds) {
		r.t.Fatalf("%d cleared %s alerts, want one per credential (%d): %+v", cleared, code, len(recoveryKinds), alerts)
	}
}

type vaultSecret struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// secrets lists the cluster's secrets in the customer vault.
func (r *recoveryRun) secrets() []vaultSecret {
	var out []vaultSecret
	mustJSON(r.t, r.kh("keyvault", "secret", "list", "--vault-name", "custvault",
		"--query", "[?tags.clusterName=='"+r.cluster+"'].{name:name,type:tags.credentialType}"), &out)
	return out
}

func (r *recoveryRun) versions(name string) int {
	var n int
	mustJSON(r.t, r.kh("keyvault", "secret", "list-versions", "--vault-name", "custvault", "-n", name, "--query", "length(@)"), &n)
	return n
}

// waitDelivered waits until each credential's secret has exactly n
// versions (more fails at once: a rotation archived twice).
func (r *recoveryRun) waitDelivered(n int) {
	r.t.Helper()
	eventually(r.t, 15*time.Second, fmt.Sprintf("%d versions of each credential", n), func() (bool, string) {
		secs := r.secrets()
		var types, detail []string
		ok := true
		for _, sec := range secs {
			v := r.versions(sec.Name)
			if v > n {
				r.t.Fatalf("%s (%s) has %d versions, want %d (one per rotation)", sec.Name, sec.Type, v, n)
			}
			types = append(types, sec.Type)
			detail = append(detail, fmt.Sprintf("%s=%d", sec.Type, v))
			ok = ok && v == n
		}
		sort.Strings(types)
		ok = ok && slices.Equal(types, recoveryKinds)
		_, m := r.status()
		return ok, strings.Join(detail, " ") + "; status: " + m
	})
}

// checkVersions: one secret per credential kind, each with exactly n
// versions.
func (r *recoveryRun) checkVersions(n int) {
	r.t.Helper()
	secs := r.secrets()
	var types []string
	for _, sec := range secs {
		types = append(types, sec.Type)
		if v := r.versions(sec.Name); v != n {
			r.t.Fatalf("%s (%s) has %d versions, want %d (one per rotation)", sec.Name, sec.Type, v, n)
		}
	}
	sort.Strings(types)
	if !slices.Equal(types, recoveryKinds) {
		r.t.Fatalf("secrets of %s: %v, want %v", r.cluster, types, recoveryKinds)
	}
}

// checkBMCMatchesVault: the BMC's latest archived version holds the password
// the BMC accepts, and the machine's secretRotationStatus names that version.
// It returns the value.
func (r *recoveryRun) checkBMCMatchesVault(bmc *redfishtest.Server, user string) string {
	r.t.Helper()
	if r.bmcSecret == "" {
		for _, sec := range r.secrets() {
			if sec.Type == "BMCCredential" {
				r.bmcSecret = sec.Name
			}
		}
		r.bmm = tsv(r.kh("networkcloud", "baremetalmachine", "list", "-g", "rg", "--query", "[?name=='"+r.cluster+"m1'].id | [0]", "-o", "tsv"))
	}
	name := r.bmcSecret
	var latest struct {
		ID    string            `json:"id"`
		Value string            `json:"value"`
		Tags  map[string]string `json:"tags"`
	}
	mustJSON(r.t, r.kh("keyvault", "secret", "show", "--vault-name", "custvault", "-n", name), &latest)
	if latest.Value != bmc.Password(user) || latest.Tags["username"] != user {
		r.t.Fatalf("the latest version of %s (user %q) is not the password the BMC accepts", name, latest.Tags["username"])
	}
	ref := tsv(r.kh("networkcloud", "baremetalmachine", "show", "--ids", r.bmm, "--query",
		"secretRotationStatus[?secretType=='BMCCredential'] | [0].secretArchiveReference.secretVersion", "-o", "tsv"))
	if ref == "" || !strings.HasSuffix(latest.ID, "/"+ref) {
		r.t.Fatalf("secretRotationStatus names version %q, the vault's latest is %s", ref, latest.ID)
	}
	return latest.Value
}
