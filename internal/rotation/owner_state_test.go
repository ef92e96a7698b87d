package rotation

import (
	"testing"
	"time"
)

// TestOwnerStateGatesRotation: machine states gate rotation. Ready is
// rotated; Cordoned never, not even at deployment; Provisioning (or a state
// the engine does not know) is rotated by its deployment's request but not
// periodically. A blocked credential keeps its request, raises no
// condition, and is rotated once its owner is Ready and CordonRecheck has
// passed.
func TestOwnerStateGatesRotation(t *testing.T) {
	const recheck = 15 * time.Minute
	cases := []struct {
		name string
		// state is the owner's state for the rotation under test: the one at
		// deployment (periodic false), or the first periodic one after a
		// deployment rotation while Ready (periodic true).
		state    string
		periodic bool
		rotated  bool // the rotation under test changed the target
	}{
		{name: "ok/ready-at-deployment", state: "Ready", rotated: true},
		{name: "ok/ready-periodic", state: "Ready", periodic: true, rotated: true},
		{name: "ok/provisioning-at-deployment", state: "Provisioning", rotated: true},
		{name: "fail/provisioning-periodic", state: "Provisioning", periodic: true},
		{name: "fail/unknown-state-periodic", state: "Deprovisioning", periodic: true},
		{name: "fail/cordoned-at-deployment", state: "Cordoned"},
		{name: "fail/cordoned-periodic", state: "Cordoned", periodic: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.healthyCluster()
			s := e.engine("r1", func(c *Config) { c.CordonRecheck = recheck })
			tg := e.bmcTargets(cid, 1)
			owner, user := tg[0].OwnerID, tg[0].Username
			patches := 0
			if tc.periodic {
				if err := e.deploy(s, tg); err != nil {
					t.Fatal(err)
				}
				e.runOnce(s)
				if patches = e.bmc.PatchesFor(user); patches != 1 {
					t.Fatalf("deployment rotation changed the BMC %d times", patches)
				}
				e.clk.Advance(61 * day) // past rotationPeriodDays (60)
			}
			e.res.setState(owner, tc.state)
			if !tc.periodic {
				if err := e.deploy(s, tg); err != nil {
					t.Fatal(err)
				}
			}
			e.runOnce(s)
			c := e.cred(s, cid, owner, KindBMC)
			if tc.rotated {
				if got := e.bmc.PatchesFor(user); got != patches+1 {
					t.Fatalf("BMC changed %d times, want %d", got, patches+1)
				}
				wantCode(t, c, phaseIdle, "")
				return
			}
			if got := e.bmc.PatchesFor(user); got != patches {
				t.Fatalf("a %s owner was rotated", tc.state)
			}
			// Blocked quietly: no condition, looked at again after the recheck.
			wantCode(t, c, phaseIdle, "")
			if c.NextAttempt == nil || !c.NextAttempt.Equal(e.clk.Now().Add(recheck)) {
				t.Fatalf("next attempt at %v, want now+%v", c.NextAttempt, recheck)
			}
			e.clk.Advance(recheck)
			e.runOnce(s)
			if got := e.bmc.PatchesFor(user); got != patches {
				t.Fatalf("a %s owner was rotated at the recheck", tc.state)
			}
			e.res.setState(owner, "Ready")
			e.clk.Advance(recheck)
			e.runOnce(s)
			if got := e.bmc.PatchesFor(user); got != patches+1 {
				t.Fatalf("once Ready: BMC changed %d times, want %d", got, patches+1)
			}
			wantCode(t, e.cred(s, cid, owner, KindBMC), phaseIdle, "")
		})
	}
}

// TestProvisioningOwnerFinishesStartedRotation: a rotation whose intent is
// persisted (SetIntent) is finished by another replica even if the owner
// went back to Provisioning meanwhile; a cordon still stops it.
func TestProvisioningOwnerFinishesStartedRotation(t *testing.T) {
	cases := []struct {
		name, state string
		finished    bool
	}{
		{"ok/provisioning", "Provisioning", true},
		{"fail/cordoned", "Cordoned", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.healthyCluster()
			s1 := e.engine("r1")
			s1.failpoint = func(point, _ string) error {
				if point == fpAfterIntent {
					return errInjected
				}
				return nil
			}
			tg := e.bmcTargets(cid, 1)
			if err := e.deploy(s1, tg); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s1) // dies with the intent persisted
			wantCode(t, e.cred(s1, cid, tg[0].OwnerID, KindBMC), phaseSetIntent, "")
			e.res.setState(tg[0].OwnerID, tc.state)
			e.clk.Advance(3 * time.Minute) // past LeaseTTL
			s2 := e.engine("r2")
			e.runOnce(s2)
			c := e.cred(s2, cid, tg[0].OwnerID, KindBMC)
			if !tc.finished {
				wantCode(t, c, phaseSetIntent, "")
				if e.bmc.Patches() != 0 {
					t.Fatal("a cordoned owner's BMC was changed")
				}
				return
			}
			wantCode(t, c, phaseIdle, "")
			if e.bmc.Patches() != 1 || c.Reference == nil {
				t.Fatalf("BMC changed %d times; reference %v", e.bmc.Patches(), c.Reference)
			}
		})
	}
}
