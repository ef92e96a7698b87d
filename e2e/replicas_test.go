package e2e

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
	"github.com/keyhaven/keyhaven/internal/testutil/redfishtest"
)

// Three keyhaven replicas share one PostgreSQL database. A cluster is
// deployed (a wave of credential rotations) and one replica is SIGKILLed
// mid-wave: every credential is still rotated and archived exactly once,
// and every BMC password is changed exactly once.
//
// The kill must land mid-wave: some credentials archived, not all, and the
// killed replica inside a BMC rotation (its Redfish session is never closed;
// the others always close theirs). The BMCs are slow (every request waits)
// so that is the usual case; a run where it is not is repeated, and the
// test fails if no run lands.
func TestReplicasRotateEachCredentialOnce(t *testing.T) {
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is unset: the PostgreSQL replica test needs a shared database")
	}
	const attempts = 3
	for i := 1; i <= attempts; i++ {
		r := killMidWave(t)
		if r.atKill > 0 && r.atKill < r.want && r.orphans > 0 {
			t.Logf("attempt %d: replica B killed with %d of %d credentials archived, inside %d BMC sessions; "+
				"every credential rotated and archived exactly once, every BMC changed once", i, r.atKill, r.want, r.orphans)
			return
		}
		t.Logf("attempt %d: the kill did not land mid-wave (%d of %d archived, %d sessions left by the killed replica)",
			i, r.atKill, r.want, r.orphans)
	}
	t.Fatalf("in %d attempts the kill never landed mid-wave: completion after a kill was not exercised", attempts)
}

type waveRun struct {
	atKill, want int
	// orphans: Redfish sessions never closed, i.e. the killed replica's.
	orphans int
}

// killMidWave runs one scenario on fresh replicas, a fresh schema and fresh
// BMCs, checks that every credential was rotated and archived exactly once,
// and reports where the kill landed.
func killMidWave(t *testing.T) waveRun {
	t.Helper()
	const machines = 30
	accounts := map[string]string{}
	for i := range machines {
		accounts[bmcUser(i)] = "Initial-" + bmcUser(i)
	}
	bmc := redfishtest.New(t, accounts)
	// Slow BMCs make a wave last seconds, so the kill lands inside one.
	bmc.SetDelay(30 * time.Millisecond)
	caFile := filepath.Join(t.TempDir(), "bmc-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bmc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	opts := backends(t)[1].opts(t) // a fresh PostgreSQL schema
	opts.DataDir = t.TempDir()     // shared: root key, TLS material, admin credential
	opts.Args = append(opts.Args, "--rotation-lease-ttl", "3s", "--target-ca-file", caFile,
		"--throttle-vault-transactions", "-1", "--throttle-vault-creates", "-1")
	withInterval := func(d string) khtest.Options {
		o := opts
		o.Args = append(append([]string{}, opts.Args...), "--rotation-interval", d)
		return o
	}
	// B receives the deploy, wakes at once and claims the wave; A and C poll
	// slowly, so most of the wave is B's when B is killed.
	a := khtest.Start(t, withInterval("1s"))
	b := khtest.Start(t, withInterval("200ms"))
	c := khtest.Start(t, withInterval("1s"))
	defer func() { a.Stop(); c.Stop() }() // free the CPU before another attempt

	kh := cliSession(t, b)
	kh("group", "create", "-n", "rg", "-l", "local", "-o", "none")
	vaultID := strings.TrimSpace(kh("keyvault", "create", "-n", "wavevault", "-g", "rg", "--query", "id", "-o", "tsv"))
	sub := a.Admin.SubscriptionID
	kh("networkcloud", "clustermanager", "create", "-n", "cm", "-g", "rg", "-l", "local",
		"--fabric-controller-id", "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.ManagedNetworkFabric/networkFabricControllers/nfc",
		"--mi-system-assigned", "-o", "none")
	cmID := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.NetworkCloud/clusterManagers/cm"
	pid := strings.TrimSpace(kh("networkcloud", "clustermanager", "show", "--ids", cmID, "--query", "identity.principalId", "-o", "tsv"))
	kh("role", "assignment", "create", "--assignee", pid, "--role", "44f0a1a8-6fea-4b35-980a-8ff50c487c97", "--scope", vaultID, "-o", "none")

	var bmms []map[string]any
	for i := range machines {
		bmms = append(bmms, map[string]any{
			"bmcConnectionString": bmc.Endpoint,
			"bmcCredentials":      map[string]string{"username": bmcUser(i), "password": accounts[bmcUser(i)]},
			"bmcMacAddress":       fmt.Sprintf("AA:BB:CC:DD:EE:%02X", i), "bootMacAddress": fmt.Sprintf("AA:BB:CC:DD:EF:%02X", i),
			"machineName": fmt.Sprintf("m%02d", i), "rackSlot": i + 1, "serialNumber": fmt.Sprintf("SN%02d", i),
		})
	}
	rack, _ := json.Marshal(map[string]any{
		"networkRackId":                     "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.ManagedNetworkFabric/networkRacks/r1",
		"rackSkuId":                         "/subscriptions/" + sub + "/providers/Microsoft.NetworkCloud/rackSkus/sku",
		"rackSerialNumber":                  "r1",
		"bareMetalMachineConfigurationData": bmms,
	})
	rackFile := filepath.Join(t.TempDir(), "rack.json")
	if err := os.WriteFile(rackFile, rack, 0o600); err != nil {
		t.Fatal(err)
	}
	clusterID := "/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.NetworkCloud/clusters/wave"
	kh("networkcloud", "cluster", "create", "-n", "wave", "-g", "rg", "-l", "local",
		"--extended-location", "name="+cmID, "type=CustomLocation", "--cluster-type", "SingleRack", "--cluster-version", "3.10.0",
		"--network-fabric-id", "/subscriptions/"+sub+"/resourceGroups/rg/providers/Microsoft.ManagedNetworkFabric/networkFabrics/f",
		"--aggregator-or-single-rack-definition", "@"+rackFile, "-o", "none")
	kh("networkcloud", "cluster", "update", "--ids", clusterID, "--secret-archive", "{key-vault-id:"+vaultID+",use-key-vault:true}", "-o", "none")

	r := waveRun{want: machines*2 + 1} // BMC and console user per machine, one local path storage key
	vault := func(p string) (int, []byte) {
		return a.Do(t, "GET", a.VaultURL("wavevault")+p, a.AdminToken(t, a.VaultAudience()), nil)
	}
	// names lists the secrets in the customer vault (nil if it cannot).
	names := func() []string {
		code, body := vault("secrets?api-version=7.5&maxresults=25")
		var out []string
		for code == 200 {
			var page struct {
				Value []struct {
					ID string `json:"id"`
				} `json:"value"`
				NextLink string `json:"nextLink"`
			}
			if json.Unmarshal(body, &page) != nil {
				return nil
			}
			for _, v := range page.Value {
				out = append(out, path.Base(v.ID))
			}
			if page.NextLink == "" {
				return out
			}
			code, body = a.Do(t, "GET", page.NextLink, a.AdminToken(t, a.VaultAudience()), nil)
		}
		return nil
	}
	// The deploy runs to completion on B (an ARM operation interrupted by a
	// replica's death is not resumed elsewhere yet); B's engine, woken by
	// it, claims the wave.
	kh("networkcloud", "cluster", "deploy", "--ids", clusterID, "-o", "none")
	// Kill B as soon as the wave has started delivering.
	deadline := time.Now().Add(30 * time.Second)
	for len(names()) < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	b.Kill()
	r.atKill = len(names())
	kh = cliSession(t, a)

	deadline = time.Now().Add(90 * time.Second)
	for len(names()) < r.want && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	all := names()
	if len(all) != r.want {
		st, _ := a.CLI(t, "networkcloud", "cluster", "show", "--ids", clusterID, "--query", "{s:detailedStatus,m:detailedStatusMessage}")
		_, alerts := a.Do(t, "GET", a.BaseURL+"/rotation/alerts?clusterId="+clusterID+"&includeCleared=true", a.AdminToken(t, a.BaseURL), nil)
		t.Fatalf("%d of %d credentials archived after the kill\ncluster: %s\nalerts: %.3000s\nlogs A:\n%s", len(all), r.want, st, alerts, tailLines(a.Logs(), "rotation", 30))
	}
	// Exactly once: each secret holds one version; a BMC secret holds the
	// password the BMC accepts now, and the BMC was changed once.
	bmcSeen := map[string]bool{}
	for _, name := range all {
		code, body := vault("secrets/" + url.PathEscape(name) + "/versions?api-version=7.5")
		var versions struct {
			Value []json.RawMessage `json:"value"`
		}
		if code != 200 || json.Unmarshal(body, &versions) != nil {
			t.Fatalf("versions of %s: %d %.300s", name, code, body)
		}
		if len(versions.Value) != 1 {
			t.Fatalf("secret %s has %d versions: archived more than once", name, len(versions.Value))
		}
		code, body = vault("secrets/" + url.PathEscape(name) + "?api-version=7.5")
		var sec struct {
			Value string            `json:"value"`
			Tags  map[string]string `json:"tags"`
		}
		if code != 200 || json.Unmarshal(body, &sec) != nil {
			t.Fatalf("secret %s: %d", name, code)
		}
		if sec.Tags["credentialType"] != "BMCCredential" {
			continue
		}
		user := sec.Tags["username"]
		if sec.Value != bmc.Password(user) || sec.Value == accounts[user] {
			t.Fatalf("secret %s does not hold the password BMC account %q accepts", name, user)
		}
		if n := bmc.PatchesFor(user); n != 1 {
			t.Fatalf("BMC account %q changed %d times for one rotation", user, n)
		}
		bmcSeen[user] = true
	}
	if len(bmcSeen) != machines || bmc.Patches() != machines {
		t.Fatalf("%d BMC secrets, %d BMC password changes; want %d each", len(bmcSeen), bmc.Patches(), machines)
	}
	// The machine's secretRotationStatus names the version the vault holds.
	var status []struct {
		Ref struct {
			SecretName    string `json:"secretName"`
			SecretVersion string `json:"secretVersion"`
		} `json:"secretArchiveReference"`
	}
	bmm := strings.TrimSpace(kh("networkcloud", "baremetalmachine", "list", "-g", "rg", "--query", "[0].id", "-o", "tsv"))
	mustJSON(t, kh("networkcloud", "baremetalmachine", "show", "--ids", bmm, "--query", "secretRotationStatus"), &status)
	if len(status) == 0 {
		t.Fatal("no secretRotationStatus")
	}
	for _, st := range status {
		latest := strings.TrimSpace(kh("keyvault", "secret", "show", "--vault-name", "wavevault", "-n", st.Ref.SecretName, "--query", "id", "-o", "tsv"))
		if !strings.HasSuffix(latest, "/"+st.Ref.SecretVersion) {
			t.Fatalf("status names version %s, vault's latest is %s", st.Ref.SecretVersion, latest)
		}
	}
	// Only a killed replica leaves a Redfish session open: the others
	// always log out.
	r.orphans = bmc.Sessions()
	return r
}

func bmcUser(i int) string { return fmt.Sprintf("bmc%02d", i) }

// tailLines returns the last n lines of logs that contain substr.
func tailLines(logs, substr string, n int) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}
