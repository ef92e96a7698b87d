package rotation

import (
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/testutil/pgtest"
)

// TestStorageAdminOnPostgres rotates a storage appliance administrator
// whose target is a real PostgreSQL role (postgres:// endpoint) through the
// engine: at deployment, then on demand. The local server trusts every
// connection, so each archived value is checked against the role's stored
// SCRAM verifier (pg_authid, as the superuser) instead of by logging in.
func TestStorageAdminOnPostgres(t *testing.T) {
	admin, endpoint := pgtest.Admin(t, "the PostgreSQL target test")
	const initial = "Initial-Admin-1"
	role := pgtest.Role(t, admin, "kh_sa_", "", initial)

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
			v := pgtest.StoredPassword(t, admin, role)
			if ok, err := pgtest.ScramMatches(v, val); err != nil || !ok {
				t.Fatalf("the role's verifier does not match the archived value (%v)", err)
			}
			if ok, _ := pgtest.ScramMatches(v, prev); ok {
				t.Fatal("the role's verifier still matches the previous value")
			}
			if n := e.versionCount(e.vaultName, c.Reference.SecretName); n != i+1 {
				t.Fatalf("%d versions after %d rotations", n, i+1)
			}
			prev = val
		})
	}
}
