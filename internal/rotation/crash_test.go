package rotation

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"testing"
	"time"

	"crypto/aes"
	"crypto/cipher"

	"github.com/keyhaven/keyhaven/internal/authz"
)

// TestCrashResume: a replica dies at each named point; another resumes after
// the lease expires. The target is changed exactly once, and the value
// archived last is the one the target accepts. A crash after the vault
// accepted a version but before it was recorded re-delivers the same value
// (the writer role cannot read the vault to check): the vault recognises the
// repeated deliveryId and keeps exactly one version.
func TestCrashResume(t *testing.T) {
	cases := []struct {
		point      string
		deliveries int
	}{
		{fpAfterIntent, 1},
		{fpAfterTargetSet, 1},
		{fpAfterVerified, 1},
		{fpAfterArchive, 2},
	}
	for _, tc := range cases {
		t.Run("ok/"+tc.point, func(t *testing.T) {
			e := newEnv(t)
			cid := e.healthyCluster()
			s1 := e.engine("r1")
			s1.failpoint = func(point, _ string) error {
				if point == tc.point {
					return errInjected
				}
				return nil
			}
			tg := e.bmcTargets(cid, 1)
			if err := e.deploy(s1, tg); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s1)
			s2 := e.engine("r2")
			if n := e.runOnce(s2); n != 0 {
				t.Fatal("a live lease was taken over")
			}
			e.clk.Advance(3 * time.Minute) // past LeaseTTL
			if n := e.runOnce(s2); n != 1 {
				t.Fatalf("claimed %d after lease expiry", n)
			}
			c := e.cred(s2, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, c, phaseIdle, "")
			if e.bmc.Patches() != 1 {
				t.Fatalf("target changed %d times", e.bmc.Patches())
			}
			if n := e.vc.count(c.SecretName); n != tc.deliveries {
				t.Fatalf("%d deliveries, want %d", n, tc.deliveries)
			}
			if n := e.versionCount(e.vaultName, c.SecretName); n != 1 {
				t.Fatalf("the vault holds %d versions, want exactly 1", n)
			}
			val, _, tags := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion)
			if val != e.bmc.Password(tg[0].Username) || val == string(tg[0].Initial) {
				t.Fatal("archived value is not the one the target accepts")
			}
			if tags["deliveryId"] == "" {
				t.Fatal("no deliveryId tag")
			}
			if recs, _ := e.st.List(e.ctx, kLease, storeAll); len(recs) != 0 {
				t.Fatal("lease not released")
			}
		})
	}
}

// TestManualChangeDetected: the target accepts neither the archived nor the
// pending credential → halt with an alert, never retried blindly; the
// operator supplying the credential in force resumes rotation.
func TestManualChangeDetected(t *testing.T) {
	e := newEnv(t)
	cid := e.healthyCluster()
	s := e.engine("r1")
	s.failpoint = func(point, _ string) error {
		if point == fpAfterIntent {
			return errInjected
		}
		return nil
	}
	tg := e.bmcTargets(cid, 1)
	if err := e.deploy(s, tg); err != nil {
		t.Fatal(err)
	}
	e.runOnce(s)
	e.bmc.SetPassword(tg[0].Username, "Changed-By-Operator-7")
	s.failpoint = nil
	e.clk.Advance(3 * time.Minute)
	e.runOnce(s)
	c := e.cred(s, cid, tg[0].OwnerID, KindBMC)
	wantCode(t, c, phaseHalted, CodeManualChangeDetected)
	if st, _ := s.ClusterState(e.ctx, cid); st.Code != CodeManualChangeDetected {
		t.Fatalf("cluster state %+v", st)
	}
	if a, _ := s.Alerts(e.ctx, cid, false); len(a) != 1 || a[0].Code != CodeManualChangeDetected {
		t.Fatalf("alerts %+v", a)
	}
	for range 3 {
		e.clk.Advance(24 * time.Hour)
		if n := e.runOnce(s); n != 0 {
			t.Fatal("a halted credential was retried")
		}
	}
	if e.bmc.Patches() != 0 || e.bmc.Password(tg[0].Username) != "Changed-By-Operator-7" {
		t.Fatal("the target was touched after the halt")
	}
	// The operator supplies the credential now in force.
	tg[0].Initial = []byte("Changed-By-Operator-7")
	if err := e.deploy(s, tg); err != nil {
		t.Fatal(err)
	}
	e.runOnce(s)
	c = e.cred(s, cid, tg[0].OwnerID, KindBMC)
	wantCode(t, c, phaseIdle, "")
	if val, _, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion); val != e.bmc.Password(tg[0].Username) {
		t.Fatal("archive and target disagree after recovery")
	}
	if a, _ := s.Alerts(e.ctx, cid, false); len(a) != 0 {
		t.Fatal("alert not cleared")
	}
}

// TestEncryptionPublicKey: archived values are encrypted to the customer's
// RSA key; the test decrypts them with the private key.
func TestEncryptionPublicKey(t *testing.T) {
	e := newEnv(t)
	cid := e.clusterID("c1")
	e.newBMC([]string{cid}, 1)
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	weak, _ := rsa.GenerateKey(rand.Reader, 2048)
	arch := e.cmArchive()
	arch.EncryptionPublicKey = pemPublic(t, &weak.PublicKey)
	e.res.set(cid, arch)
	s := e.engine("r1")
	tg := e.bmcTargets(cid, 1)
	if err := e.deploy(s, tg); err != nil {
		t.Fatal(err)
	}
	e.runOnce(s)
	wantCode(t, e.cred(s, cid, tg[0].OwnerID, KindBMC), phaseIdle, CodeEncryptionKeyInvalid)

	priv, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	arch.EncryptionPublicKey = pemPublic(t, &priv.PublicKey)
	e.res.set(cid, arch)
	e.clk.Advance(2 * time.Minute)
	e.runOnce(s)
	c := e.cred(s, cid, tg[0].OwnerID, KindBMC)
	wantCode(t, c, phaseIdle, "")
	val, ct, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion)
	if ct != EnvelopeContentType || val == e.bmc.Password(tg[0].Username) {
		t.Fatalf("value not encrypted (content type %q)", ct)
	}
	var env EncryptedValue
	if err := json.Unmarshal([]byte(val), &env); err != nil || env.Alg != "RSA-OAEP-256+A256GCM" || env.ContentType != "text/plain" {
		t.Fatalf("envelope %+v %v", env, err)
	}
	spki, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	kid := sha256.Sum256(spki)
	if env.KeyID != base64.RawURLEncoding.EncodeToString(kid[:]) {
		t.Fatal("kid does not name the key")
	}
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	key, err := rsa.DecryptOAEP(sha256.New(), nil, priv, dec(env.EncryptedKey), nil)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	pt, err := gcm.Open(nil, dec(env.IV), dec(env.Ciphertext), nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(pt) != e.bmc.Password(tg[0].Username) {
		t.Fatal("decrypted value is not the BMC password")
	}
}

func pemPublic(t *testing.T, pub *rsa.PublicKey) string {
	b, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: b}))
}
