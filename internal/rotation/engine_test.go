package rotation

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhaven/keyhaven/internal/authz"
)

// TestRotationHappyPath: rotated at deployment, delivered as a secret
// version through the real data plane with the cluster manager's identity;
// periodically after rotationPeriodDays; every rotation adds a version and
// the archived value is the one the BMC accepts.
func TestRotationHappyPath(t *testing.T) {
	e := newEnv(t)
	cid := e.clusterID("c1")
	e.newBMC([]string{cid}, 2)
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	e.res.set(cid, e.cmArchive())
	s := e.engine("r1")

	targets := e.bmcTargets(cid, 2)
	targets = append(targets,
		Target{ClusterID: cid, OwnerID: machineID(cid, 0), Kind: KindConsoleUser, RotationPeriodDays: 30},
		Target{ClusterID: cid, OwnerID: cid, OwnerName: "c1", Kind: KindLocalPathStorage})
	if err := e.deploy(s, targets); err != nil {
		t.Fatal(err)
	}
	if n := e.runOnce(s); n != 4 {
		t.Fatalf("claimed %d, want 4", n)
	}
	for _, c := range e.creds(s, cid) {
		wantCode(t, c, phaseIdle, "")
		if c.Reference == nil || c.LastRotationTime == nil {
			t.Fatalf("%s %s: no archive reference", c.OwnerID, c.Kind)
		}
		if e.vc.count(c.SecretName) != 1 {
			t.Fatalf("%s delivered %d times", c.SecretName, e.vc.count(c.SecretName))
		}
	}
	// BMC: archived value is what the BMC accepts now.
	for i := range 2 {
		st, err := s.Status(e.ctx, machineID(cid, i))
		if err != nil {
			t.Fatal(err)
		}
		var ref *ArchiveReference
		for _, x := range st {
			if x.SecretType == string(KindBMC) {
				ref = x.SecretArchiveReference
				if x.RotationPeriodDays != 60 || x.ExpirePeriodDays != 90 {
					t.Fatalf("defaults not applied: %+v", x)
				}
			}
		}
		if ref == nil || !strings.EqualFold(ref.KeyVaultID, e.vaultID) || ref.KeyVaultURI != e.vaultURI("kv1") {
			t.Fatalf("bad reference %+v", ref)
		}
		val, ct, tags := e.readSecret("kv1", ref.SecretName, ref.SecretVersion)
		user := targets[i].Username
		if val != e.bmc.Password(user) || val == "Initial-"+user {
			t.Fatal("archived BMC value is not the password the BMC accepts")
		}
		if ct != "text/plain" || tags["credentialType"] != string(KindBMC) || tags["clusterId"] != cid ||
			tags["ownerId"] != machineID(cid, i) || tags["ownerName"] != lastSegment(machineID(cid, i)) {
			t.Fatalf("content type %q / tags %v", ct, tags)
		}
		if n := len(val); n < 16 || n > 20 {
			t.Fatalf("password length %d", n)
		}
	}
	// Console user: password plus a fresh ed25519 key pair.
	cu := e.cred(s, cid, machineID(cid, 0), KindConsoleUser)
	val, ct, _ := e.readSecret("kv1", cu.Reference.SecretName, cu.Reference.SecretVersion)
	var m material
	if err := json.Unmarshal([]byte(val), &m); err != nil || ct != "application/json" {
		t.Fatalf("console user value: %v %q", err, ct)
	}
	key, err := ssh.ParsePrivateKey([]byte(m.SSHPrivateKey))
	if err != nil || key.PublicKey().Type() != ssh.KeyAlgoED25519 || m.Password == "" {
		t.Fatalf("console user key: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(m.SSHPublicKey))
	if err != nil || string(pub.Marshal()) != string(key.PublicKey().Marshal()) {
		t.Fatal("public key does not match the private key")
	}
	// Local path storage key: 32 random bytes, base64.
	lp := e.cred(s, cid, cid, KindLocalPathStorage)
	val, _, _ = e.readSecret("kv1", lp.Reference.SecretName, lp.Reference.SecretVersion)
	if len(val) != 44 {
		t.Fatalf("local path key %q", val)
	}
	if st, _ := s.ClusterState(e.ctx, cid); !st.Healthy {
		t.Fatalf("cluster state %+v", st)
	}

	// Not due yet: nothing happens.
	e.clk.Advance(29 * 24 * time.Hour)
	if n := e.runOnce(s); n != 0 {
		t.Fatalf("claimed %d before any period elapsed", n)
	}
	// The console user (30 days) is due; BMC and storage key (60) are not.
	e.clk.Advance(2 * 24 * time.Hour)
	if n := e.runOnce(s); n != 1 {
		t.Fatalf("claimed %d at day 31, want 1", n)
	}
	if e.vc.count(cu.SecretName) != 2 {
		t.Fatal("console user not rotated periodically")
	}
	e.clk.Advance(30 * 24 * time.Hour)
	e.runOnce(s)
	for _, c := range e.creds(s, cid) {
		if c.Kind == KindConsoleUser {
			continue
		}
		if e.vc.count(c.SecretName) != 2 {
			t.Fatalf("%s rotated %d times after 61 days", c.SecretName, e.vc.count(c.SecretName))
		}
	}
	b0 := e.cred(s, cid, machineID(cid, 0), KindBMC)
	val, _, _ = e.readSecret("kv1", b0.Reference.SecretName, b0.Reference.SecretVersion)
	if val != e.bmc.Password(targets[0].Username) {
		t.Fatal("second BMC rotation: archive and BMC disagree")
	}
	if e.bmc.Patches() != 4 {
		t.Fatalf("BMC patched %d times, want 4", e.bmc.Patches())
	}

	// On demand.
	if err := s.RequestRotation(e.ctx, cid, []Kind{KindLocalPathStorage}); err != nil {
		t.Fatal(err)
	}
	if n := e.runOnce(s); n != 1 || e.vc.count(lp.SecretName) != 3 {
		t.Fatalf("on-demand rotation: claimed %d, delivered %d", n, e.vc.count(lp.SecretName))
	}
	if err := s.RequestRotation(e.ctx, e.clusterID("nope"), nil); err == nil {
		t.Fatal("RequestRotation of an unknown cluster succeeded")
	}

	// Removal.
	if err := s.RemoveCluster(e.ctx, cid); err != nil {
		t.Fatal(err)
	}
	if cs := e.creds(s, cid); len(cs) != 0 {
		t.Fatalf("%d credentials left", len(cs))
	}
	if recs, _ := e.st.List(e.ctx, kDue, storeAll); len(recs) != 0 {
		t.Fatalf("%d due entries left", len(recs))
	}
}

func TestCordonedOwnerSkipped(t *testing.T) {
	e := newEnv(t)
	cid := e.clusterID("c1")
	e.newBMC([]string{cid}, 2)
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	e.res.set(cid, e.cmArchive())
	s := e.engine("r1")
	if err := e.deploy(s, e.bmcTargets(cid, 2)); err != nil {
		t.Fatal(err)
	}
	e.res.setState(machineID(cid, 1), "Cordoned")
	e.runOnce(s)
	if e.bmc.Password(lastSegment(cid)+"-u01") != "Initial-"+lastSegment(cid)+"-u01" {
		t.Fatal("a cordoned machine was rotated")
	}
	if c := e.cred(s, cid, machineID(cid, 1), KindBMC); c.LastRotationTime != nil || c.Code != "" {
		t.Fatalf("cordoned: %+v", c)
	}
	if c := e.cred(s, cid, machineID(cid, 0), KindBMC); c.LastRotationTime == nil {
		t.Fatal("the ready machine was not rotated")
	}
	e.res.setState(machineID(cid, 1), "Ready")
	e.clk.Advance(16 * time.Minute)
	e.runOnce(s)
	if c := e.cred(s, cid, machineID(cid, 1), KindBMC); c.LastRotationTime == nil {
		t.Fatal("uncordoned machine not rotated")
	}
}

func TestUpsertTargetsValidation(t *testing.T) {
	e := newEnv(t)
	s := e.engine("r1")
	cid := e.clusterID("c1")
	cases := []struct {
		name string
		t    Target
	}{
		{"fail/no-cluster", Target{OwnerID: "x", Kind: KindBMC}},
		{"fail/no-owner", Target{ClusterID: cid, Kind: KindBMC}},
		{"fail/kind", Target{ClusterID: cid, OwnerID: cid, Kind: "Nope"}},
		{"fail/endpoint", Target{ClusterID: cid, OwnerID: cid, Kind: KindBMC, Endpoint: "nohost", Username: "u"}},
		{"fail/endpoint-without-user", Target{ClusterID: cid, OwnerID: cid, Kind: KindBMC, Endpoint: "redfish+https://h"}},
		{"fail/period", Target{ClusterID: cid, OwnerID: cid, Kind: KindBMC, RotationPeriodDays: 5000}},
		{"fail/initial-too-long", Target{ClusterID: cid, OwnerID: cid, Kind: KindBMC, Initial: make([]byte, maxInitialLen+1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.UpsertTargets(e.ctx, []Target{tc.t}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	t.Run("ok/idempotent", func(t *testing.T) {
		tg := Target{ClusterID: cid, OwnerID: cid, Kind: KindLocalPathStorage}
		for range 3 {
			if err := s.UpsertTargets(e.ctx, []Target{tg}); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(e.creds(s, cid)); n != 1 {
			t.Fatalf("%d credentials", n)
		}
	})
}
