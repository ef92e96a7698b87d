package rotation

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
)

// TestRunLoop: Run picks up work when woken by UpsertTargets and returns
// when its context ends.
func TestRunLoop(t *testing.T) {
	e := newEnv(t)
	cid := e.clusterID("c1")
	e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
	e.res.set(cid, e.cmArchive())
	s := e.engine("r1", func(c *Config) { c.PollInterval = time.Hour })
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if err := e.deploy(s, []Target{{ClusterID: cid, OwnerID: cid, Kind: KindLocalPathStorage}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.cred(s, cid, cid, KindLocalPathStorage).LastRotationTime == nil {
		if time.Now().After(deadline) {
			t.Fatal("Run did not rotate the woken credential")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}
