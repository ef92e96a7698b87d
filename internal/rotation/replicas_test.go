package rotation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/seal"
	"github.com/keyhaven/keyhaven/internal/store"
	"github.com/keyhaven/keyhaven/internal/store/postgres"
)

// replicaOn returns an engine on its own store handle, sealer, identity
// service and authz engine, as another `keyhaven serve` process would have.
func (e *env) replicaOn(st store.Store, owner string) *Service {
	e.t.Helper()
	sealer := seal.NewEnvelope(st, e.root)
	ids, err := identity.New(st, sealer, e.clk, identity.Options{BaseURL: "https://localhost:8443"})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.engine(owner, func(c *Config) {
		c.Store, c.Sealer, c.Tokens, c.Principals, c.Decider = st, sealer, ids, ids, authz.New(st, e.clk)
	})
}

// runWave rotates 30 BMC credentials with two replicas; replica A dies after
// its fifth target change and B takes over A's leases once they expire.
// Every credential is changed on its BMC once and delivered once.
func runWave(t *testing.T, e *env, stB store.Store) {
	const n = 30
	cid := e.clusterID("wave")
	e.newBMC([]string{cid}, n)
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	e.res.set(cid, e.cmArchive())
	a := e.engine("replica-a")
	b := e.replicaOn(stB, "replica-b")

	var mu sync.Mutex
	sets, dead := 0, false
	// Once dead, A's in-flight workers stop at their next step boundary.
	// The one window no replica can close, between the vault accepting a
	// version and the engine recording it, is left out here: the writer
	// role cannot read the vault to learn whether a delivery landed, so a
	// crash exactly there re-delivers the same value (TestCrashResume
	// covers it; see doc.go).
	a.failpoint = func(point, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if dead && point != fpAfterArchive {
			return errInjected
		}
		if point == fpAfterTargetSet {
			if sets++; sets == 5 {
				dead = true
				return errInjected
			}
		}
		return nil
	}
	if err := e.deploy(a, e.bmcTargets(cid, n)); err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 30; round++ {
		var wg sync.WaitGroup
		for _, s := range []*Service{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.RunOnce(e.ctx); err != nil && !errors.Is(err, errInjected) {
					t.Errorf("RunOnce: %v", err)
				}
			}()
		}
		wg.Wait()
		done := 0
		for _, c := range e.creds(b, cid) {
			if c.Phase == phaseIdle && c.LastRotationTime != nil {
				done++
			}
		}
		if done == n {
			break
		}
		e.clk.Advance(time.Minute)
	}
	mu.Lock()
	if !dead {
		t.Log("replica A finished before its planned death")
	}
	mu.Unlock()
	cs := e.creds(b, cid)
	if len(cs) != n {
		t.Fatalf("%d credentials", len(cs))
	}
	for _, c := range cs {
		wantCode(t, c, phaseIdle, "")
		if c.LastRotationTime == nil {
			t.Fatalf("%s not rotated", c.OwnerName)
		}
		if got := e.vc.count(c.SecretName); got != 1 {
			t.Fatalf("%s delivered %d times", c.SecretName, got)
		}
	}
	if e.bmc.Patches() != n {
		t.Fatalf("%d BMC password changes for %d credentials", e.bmc.Patches(), n)
	}
	for i, tg := range e.bmcTargets(cid, n) {
		if i%5 != 0 {
			continue // spot-check values through the data plane
		}
		c := e.cred(b, cid, tg.OwnerID, KindBMC)
		if val, _, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion); val != e.bmc.Password(tg.Username) {
			t.Fatalf("%s: archive and BMC disagree", c.OwnerName)
		}
	}
}

func TestReplicasSQLite(t *testing.T) {
	e := newEnv(t)
	stB := openSQLite(t, e.dbPath) // a second process's handle on the same file
	runWave(t, e, stB)
}

func TestReplicasPostgres(t *testing.T) {
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is not set; skipping the PostgreSQL replica test")
	}
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "kh_rotation_" + hex.EncodeToString(b)
	open := func() store.Store {
		st, err := postgres.Open(ctx, dsn, postgres.WithSchema(schema))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	stA := open()
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), dsn)
		if err == nil {
			_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
			conn.Close(context.Background())
		}
	})
	stB := open()
	e := newEnvOn(t, stA, newRoot(t), "")
	runWave(t, e, stB)
}
