package rotation

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/authz"
)

// TestStorageAdminOnPostgres rotates a storage appliance administrator
// whose target is a real PostgreSQL role (postgres:// endpoint) through the
// engine: at deployment, then on demand. The local server trusts every
// connection, so each archived value is checked against the role's stored
// SCRAM verifier (pg_authid, as the superuser) instead of by logging in.
func TestStorageAdminOnPostgres(t *testing.T) {
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is unset: skipping the PostgreSQL target test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Skipf("PostgreSQL at KEYHAVEN_TEST_POSTGRES_DSN is unreachable (%v): skipping the PostgreSQL target test", err)
	}
	defer admin.Close(context.Background())
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	role := "kh_sa_" + hex.EncodeToString(b)
	const initial = "Initial-Admin-1"
	if _, err := admin.Exec(ctx, "SET password_encryption = 'scram-sha-256'"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD '"+initial+"'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	verifier := func() string {
		var v string
		if err := admin.QueryRow(context.Background(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", role).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	pc := admin.Config()
	endpoint := "postgres://" + net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))) + "/" + pc.Database + "?sslmode=disable"

	e := newEnv(t)
	cid := e.clusterID("c1")
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	e.res.set(cid, e.cmArchive())
	s := e.engine("r1")
	owner := strings.Replace(cid, "/clusters/c1", "/storageAppliances/c1-sa1", 1)
	tg := Target{ClusterID: cid, OwnerID: owner, OwnerName: "c1-sa1", Kind: KindStorageAdmin,
		Endpoint: endpoint, Username: role, Initial: []byte(initial)}

	cases := []struct {
		name    string
		trigger func() error
	}{
		{"ok/at-deployment", func() error { return e.deploy(s, []Target{tg}) }},
		{"ok/on-demand", func() error { return s.RequestRotation(e.ctx, cid, []Kind{KindStorageAdmin}) }},
	}
	prev := initial
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.trigger(); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s)
			c := e.cred(s, cid, owner, KindStorageAdmin)
			wantCode(t, c, phaseIdle, "")
			if c.Reference == nil {
				t.Fatal("no archive reference")
			}
			val, ct, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion)
			if ct != "text/plain" || val == "" || val == prev {
				t.Fatalf("archived %q value is empty or unchanged", ct)
			}
			v := verifier()
			if !pgVerifierMatches(t, v, val) {
				t.Fatal("the role's verifier does not match the archived value")
			}
			if pgVerifierMatches(t, v, prev) {
				t.Fatal("the role's verifier still matches the previous value")
			}
			if n := e.versionCount(e.vaultName, c.Reference.SecretName); n != i+1 {
				t.Fatalf("%d versions after %d rotations", n, i+1)
			}
			prev = val
		})
	}
}

// pgVerifierMatches reports whether a PostgreSQL SCRAM-SHA-256 verifier
// ("SCRAM-SHA-256$iter:salt$StoredKey:ServerKey") was made from password
// (RFC 5802 §3, from the verifier's own salt and iteration count). The
// drivers tests have the same helper, validated against verifiers the server
// computed; test helpers cannot be shared across packages.
func pgVerifierMatches(t *testing.T, verifier, password string) bool {
	t.Helper()
	rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$")
	params, keys, ok2 := strings.Cut(rest, "$")
	iterS, saltB64, ok3 := strings.Cut(params, ":")
	storedB64, serverB64, ok4 := strings.Cut(keys, ":")
	iter, err := strconv.Atoi(iterS)
	if !ok || !ok2 || !ok3 || !ok4 || err != nil || iter < 1 {
		t.Fatal("stored password is not a SCRAM-SHA-256 verifier")
	}
	dec := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal("malformed verifier")
		}
		return b
	}
	salted, err := pbkdf2.Key(sha256.New, password, dec(saltB64), iter, sha256.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(msg string) []byte {
		m := hmac.New(sha256.New, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := sha256.Sum256(mac("Client Key"))
	return hmac.Equal(clientKey[:], dec(storedB64)) && hmac.Equal(mac("Server Key"), dec(serverB64))
}
