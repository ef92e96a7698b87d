package rotation

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
	"github.com/keyhaven/keyhaven/internal/store"
)

const day = 24 * time.Hour

// longRetries makes blocked rotations retry every 40 days, so an expiry
// check that retried them early would show.
func longRetries(c *Config) {
	c.Backoff = Backoff{Initial: 40 * day, Max: 40 * day, Jitter: 0.1}
	c.CordonRecheck = 40 * day
}

// expiryAlerts splits a cluster's alerts into expiry alerts and the rest.
func expiryAlerts(t testing.TB, s *Service, cid string, includeCleared bool) (exp, other []Alert) {
	t.Helper()
	all, err := s.Alerts(context.Background(), cid, includeCleared)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Code == CodeCredentialNearExpiry || a.Code == CodeCredentialExpired {
			exp = append(exp, a)
		} else {
			other = append(other, a)
		}
	}
	return exp, other
}

// TestExpiryWhileBlocked: a credential that cannot be rotated ages out.
// With the default periods (rotation 60, expire 90 days) and its value in
// force since t0, CredentialNearExpiry appears at t0+83d (7 days before;
// 10% would be 9), CredentialExpired at t0+90d, next to the alert of the
// blocking condition; the checks never retry the blocked rotation early;
// ClusterState and the alerts handler report CredentialExpired; after the
// fix a successful rotation clears both alerts.
func TestExpiryWhileBlocked(t *testing.T) {
	writer := func(e *env) { e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID) }
	unassignWriter := func(e *env) {
		as, _ := e.az.ListAssignments(e.ctx, authz.AssignmentFilter{Scope: e.vaultID, AtScope: true})
		for _, a := range as {
			if a.RoleDefinitionID == authz.RoleOperatorNexusKeyVaultWriter {
				e.unassign(a.Scope, a.Name)
			}
		}
	}
	const changed = "Changed-By-Operator-7"
	cases := []struct {
		name string
		// rotatedFirst: the rotation at deployment (t0) succeeds; the
		// condition breaks afterwards, so the periodic one at t0+60d fails.
		rotatedFirst bool
		brk          func(e *env, tg []Target)
		fix          func(e *env, s *Service, tg []Target)
		phase, code  string
		// nearState is ClusterState's code while near expiry.
		nearState string
	}{
		{name: "fail/never-rotated-missing-role", phase: phaseIdle, code: CodeMissingRoleAssignment, nearState: CodeMissingRoleAssignment,
			brk: func(e *env, _ []Target) {}, fix: func(e *env, _ *Service, _ []Target) { writer(e) }},
		{name: "fail/missing-role-after-rotation", rotatedFirst: true, phase: phaseIdle, code: CodeMissingRoleAssignment,
			nearState: CodeMissingRoleAssignment,
			brk:       func(e *env, _ []Target) { unassignWriter(e) }, fix: func(e *env, _ *Service, _ []Target) { writer(e) }},
		{name: "fail/archive-pending", phase: phaseArchivePending, code: CodeMissingRoleAssignment, nearState: CodeArchivePending,
			brk: func(e *env, _ []Target) {
				e.vc.setFail(&VaultError{Status: 403, Code: "Forbidden", Inner: "ForbiddenByRbac"})
			},
			fix: func(e *env, _ *Service, _ []Target) { e.vc.setFail(nil) }},
		{name: "fail/target-down", rotatedFirst: true, phase: phaseSetIntent, code: CodeTargetUnreachable, nearState: CodeTargetUnreachable,
			brk: func(e *env, _ []Target) { e.bmc.SetDown(true) }, fix: func(e *env, _ *Service, _ []Target) { e.bmc.SetDown(false) }},
		{name: "fail/manual-change", phase: phaseHalted, code: CodeManualChangeDetected, nearState: CodeManualChangeDetected,
			brk: func(e *env, tg []Target) { e.bmc.SetPassword(tg[0].Username, changed) },
			fix: func(e *env, s *Service, tg []Target) {
				tg[0].Initial = []byte(changed) // the operator supplies the credential in force
				if err := s.UpsertTargets(e.ctx, tg); err != nil {
					e.t.Fatal(err)
				}
			}},
		// Cordoned: no condition at all, yet the value ages.
		{name: "fail/cordoned", rotatedFirst: true, phase: phaseIdle, code: "", nearState: "",
			brk: func(e *env, tg []Target) { e.res.setState(tg[0].OwnerID, "Cordoned") },
			fix: func(e *env, _ *Service, tg []Target) { e.res.setState(tg[0].OwnerID, "Ready") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.clusterID("c1")
			e.newBMC([]string{cid}, 1)
			e.res.set(cid, e.cmArchive())
			s := e.engine("r1", longRetries)
			tg := e.bmcTargets(cid, 1)
			owner := tg[0].OwnerID
			t0 := e.clk.Now()
			if tc.name != "fail/never-rotated-missing-role" {
				writer(e)
			}
			if !tc.rotatedFirst {
				tc.brk(e, tg)
			}
			if err := e.deploy(s, tg); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s)
			if tc.rotatedFirst {
				wantCode(t, e.cred(s, cid, owner, KindBMC), phaseIdle, "")
				tc.brk(e, tg)
			}
			if c := e.cred(s, cid, owner, KindBMC); c.ExpiresAt == nil || !c.ExpiresAt.Equal(t0.Add(90*day)) {
				t.Fatalf("expiresAt %v, want %v", c.ExpiresAt, t0.Add(90*day))
			}

			steps := []struct {
				at   time.Duration
				want string
			}{
				{30 * day, ""},
				{61 * day, ""}, // the periodic rotation (rotatedFirst) has failed by now
				{83*day - time.Minute, ""},
				{83 * day, CodeCredentialNearExpiry},
				{90*day - time.Minute, CodeCredentialNearExpiry},
				{90 * day, CodeCredentialExpired},
				{100*day + time.Hour, CodeCredentialExpired},
			}
			for _, st := range steps {
				before := e.cred(s, cid, owner, KindBMC)
				patches := e.bmc.Patches()
				e.clk.Set(t0.Add(st.at))
				now := e.clk.Now()
				e.runOnce(s)
				c := e.cred(s, cid, owner, KindBMC)
				at := st.at / day
				if st.at > 61*day {
					wantCode(t, c, tc.phase, tc.code)
				}
				if c.Expiry != st.want {
					t.Fatalf("day %d: expiry %q, want %q", at, c.Expiry, st.want)
				}
				// The expiry check rotates nothing and retries nothing early.
				if before.NextAttempt == nil || before.NextAttempt.After(now) {
					if c.Attempts != before.Attempts || !sameTime(c.NextAttempt, before.NextAttempt) || c.Phase != before.Phase ||
						e.bmc.Patches() != patches {
						t.Fatalf("day %d: rotation retried early: attempts %d→%d next %v→%v", at, before.Attempts, c.Attempts,
							before.NextAttempt, c.NextAttempt)
					}
				}
				exp, other := expiryAlerts(t, s, cid, false)
				if st.want == "" && len(exp) != 0 || st.want != "" && (len(exp) != 1 || exp[0].Code != st.want || exp[0].OwnerID != owner ||
					exp[0].Kind != KindBMC || exp[0].Message == "") {
					t.Fatalf("day %d: expiry alerts %+v, want %q", at, exp, st.want)
				}
				// The condition's own alert is kept alongside.
				if st.at > 61*day {
					if tc.code == "" && len(other) != 0 || tc.code != "" && (len(other) != 1 || other[0].Code != tc.code) {
						t.Fatalf("day %d: condition alerts %+v, want %q", at, other, tc.code)
					}
				}
				cs, err := s.ClusterState(e.ctx, cid)
				if err != nil {
					t.Fatal(err)
				}
				switch st.want {
				case CodeCredentialExpired:
					if cs.Healthy || cs.Code != CodeCredentialExpired || !strings.Contains(cs.Message, "maximum age of 90 days") ||
						!strings.Contains(cs.Message, tc.code) {
						t.Fatalf("day %d: cluster state %+v", at, cs)
					}
				case CodeCredentialNearExpiry:
					if tc.nearState == "" && !cs.Healthy || tc.nearState != "" && (cs.Code != tc.nearState ||
						!strings.Contains(cs.Message, CodeCredentialNearExpiry)) {
						t.Fatalf("day %d: cluster state %+v", at, cs)
					}
				}
			}
			if tc.code != "" {
				if _, other := expiryAlerts(t, s, cid, true); len(other) != 1 {
					t.Fatalf("condition alert replaced %d times", len(other)-1)
				}
			}
			expiredAlert, _ := expiryAlerts(t, s, cid, false)
			if !strings.Contains(expiredAlert[0].Message, "maximum age of 90 days") || tc.code != "" && !strings.Contains(expiredAlert[0].Message, tc.code) {
				t.Fatalf("alert message %q", expiredAlert[0].Message)
			}
			if tc.name == "fail/manual-change" && strings.Contains(expiredAlert[0].Message, changed) {
				t.Fatal("a credential value leaked into an alert")
			}
			listedByHandler(t, e, s, cid, CodeCredentialExpired)

			// Fix, then the operator asks for a rotation; the overdue periodic
			// rotation follows a delivery of the old (expired) value at once.
			tc.fix(e, s, tg)
			if err := s.RequestRotation(e.ctx, cid, nil); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				e.runOnce(s)
			}
			now := e.clk.Now()
			c := e.cred(s, cid, owner, KindBMC)
			wantCode(t, c, phaseIdle, "")
			if c.LastRotationTime == nil || !c.LastRotationTime.Equal(now) || c.Expiry != "" || !sameTime(c.ExpiresAt, ptr(now.Add(90*day))) {
				t.Fatalf("after the fix: %+v", c)
			}
			if val, _, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion); val != e.bmc.Password(tg[0].Username) {
				t.Fatal("archive and target disagree after the fix")
			}
			if act, _ := s.Alerts(e.ctx, cid, false); len(act) != 0 {
				t.Fatalf("alerts still active: %+v", act)
			}
			hist, _ := expiryAlerts(t, s, cid, true)
			if len(hist) != 2 || hist[0].Code != CodeCredentialExpired || hist[1].Code != CodeCredentialNearExpiry ||
				hist[0].ClearedAt == nil || !hist[0].ClearedAt.Equal(now) || !hist[1].ClearedAt.Equal(t0.Add(90*day)) {
				t.Fatalf("expiry alert history %+v", hist)
			}
			if cs, _ := s.ClusterState(e.ctx, cid); !cs.Healthy {
				t.Fatalf("cluster state %+v", cs)
			}
			// The next check is at the new value's near-expiry time.
			e.clk.Set(now.Add(83*day - time.Minute))
			e.bmc.SetDown(true) // keep the periodic rotation at 60d from succeeding
			e.runOnce(s)
			if exp, _ := expiryAlerts(t, s, cid, false); len(exp) != 0 {
				t.Fatalf("expiry alert before the new value's window: %+v", exp)
			}
			e.clk.Set(now.Add(83 * day))
			e.runOnce(s)
			if exp, _ := expiryAlerts(t, s, cid, false); len(exp) != 1 || exp[0].Code != CodeCredentialNearExpiry {
				t.Fatalf("expiry alerts for the new value: %+v", exp)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}

// listedByHandler asserts the alerts handler lists an active alert with code.
func listedByHandler(t *testing.T, e *env, s *Service, cid, code string) {
	t.Helper()
	_, sp, err := e.ids.CreateApplication(e.ctx, "", "expiry-reader")
	if err != nil {
		t.Fatal(err)
	}
	e.assign(sp.ObjectID, authz.RoleReader, cid)
	r := httptest.NewRequest("GET", "/rotation/alerts?clusterId="+cid, nil)
	r = r.WithContext(principal.WithInfo(r.Context(), &principal.Info{Principal: &principal.Principal{ObjectID: sp.ObjectID}}))
	w := httptest.NewRecorder()
	s.AlertsHandler(e.az).ServeHTTP(w, r)
	var out struct{ Value []Alert }
	if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil {
		t.Fatalf("alerts handler: %d %s", w.Code, w.Body)
	}
	for _, a := range out.Value {
		if a.Code == code && a.ClearedAt == nil {
			return
		}
	}
	t.Fatalf("alerts handler does not list %s: %s", code, w.Body)
}

// TestExpiryHealthy: a credential rotated on schedule never raises an
// expiry alert when its rotation period ends before the warning window;
// one whose period reaches into the window warns until it rotates; one
// whose period exceeds the expire period expires until it rotates.
func TestExpiryHealthy(t *testing.T) {
	cases := []struct {
		name          string
		rotate, exp   int
		wantHistory   []string // expiry alerts raised over 400 days, newest first
		wantDegraded  bool
		degradedAtDay int
	}{
		{name: "ok/rotation-60-expire-90", rotate: 60, exp: 90},
		{name: "ok/rotation-83-expire-90", rotate: 83, exp: 90}, // rotates at the window's start
		{name: "ok/rotation-27-expire-31", rotate: 27, exp: 31}, // window 3.1 days
		{name: "ok/rotation-88-expire-90-warns", rotate: 88, exp: 90,
			wantHistory: []string{CodeCredentialNearExpiry, CodeCredentialNearExpiry, CodeCredentialNearExpiry, CodeCredentialNearExpiry}},
		{name: "ok/rotation-100-expire-90-expires", rotate: 100, exp: 90, wantDegraded: true, degradedAtDay: 95,
			wantHistory: []string{CodeCredentialExpired, CodeCredentialNearExpiry, CodeCredentialExpired, CodeCredentialNearExpiry,
				CodeCredentialExpired, CodeCredentialNearExpiry, CodeCredentialExpired, CodeCredentialNearExpiry}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.clusterID("c1")
			e.assign(e.cm.PrincipalID, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID)
			e.res.set(cid, e.cmArchive())
			s := e.engine("r1")
			t0 := e.clk.Now()
			if err := e.deploy(s, []Target{{ClusterID: cid, OwnerID: cid, Kind: KindLocalPathStorage,
				RotationPeriodDays: tc.rotate, ExpirePeriodDays: tc.exp}}); err != nil {
				t.Fatal(err)
			}
			for d := 0; d <= 400; d++ {
				e.clk.Set(t0.Add(time.Duration(d) * day))
				e.runOnce(s)
				cs, err := s.ClusterState(e.ctx, cid)
				if err != nil {
					t.Fatal(err)
				}
				if tc.wantDegraded && d == tc.degradedAtDay {
					if cs.Code != CodeCredentialExpired {
						t.Fatalf("day %d: cluster state %+v", d, cs)
					}
				} else if !tc.wantDegraded && !cs.Healthy {
					t.Fatalf("day %d: cluster state %+v", d, cs)
				}
			}
			c := e.cred(s, cid, cid, KindLocalPathStorage)
			wantCode(t, c, phaseIdle, "")
			var got []string
			hist, other := expiryAlerts(t, s, cid, true)
			for _, a := range hist {
				got = append(got, a.Code)
			}
			if len(other) != 0 || strings.Join(got, ",") != strings.Join(tc.wantHistory, ",") {
				t.Fatalf("alerts %v (other %+v), want %v", got, other, tc.wantHistory)
			}
		})
	}
}

// TestExpiryThresholds: the warning window is 10% of the expire period or
// 7 days, whichever is smaller; the age counts from the value the target
// accepts.
func TestExpiryThresholds(t *testing.T) {
	t0 := testStart
	last := t0.Add(-10 * day)
	cases := []struct {
		name    string
		rec     credRecord
		at      time.Duration // after t0
		want    string
		expires time.Time // zero: not tracked
	}{
		{"ok/untracked-before-deployment", credRecord{Phase: phaseIdle, ExpirePeriodDays: 90}, 400 * day, "", time.Time{}},
		{"ok/tracked-from-deployment", credRecord{Phase: phaseIdle, ExpirePeriodDays: 90, TrackedSince: t0}, 83*day - time.Second, "", t0.Add(90 * day)},
		{"fail/near-90-window-7-days", credRecord{Phase: phaseIdle, ExpirePeriodDays: 90, TrackedSince: t0}, 83 * day, CodeCredentialNearExpiry, t0.Add(90 * day)},
		{"fail/expired-90", credRecord{Phase: phaseIdle, ExpirePeriodDays: 90, TrackedSince: t0}, 90 * day, CodeCredentialExpired, t0.Add(90 * day)},
		{"ok/30-window-3-days", credRecord{Phase: phaseIdle, ExpirePeriodDays: 30, TrackedSince: t0}, 27*day - time.Second, "", t0.Add(30 * day)},
		{"fail/near-30-window-3-days", credRecord{Phase: phaseIdle, ExpirePeriodDays: 30, TrackedSince: t0}, 27 * day, CodeCredentialNearExpiry, t0.Add(30 * day)},
		{"fail/near-1-window-2.4h", credRecord{Phase: phaseIdle, ExpirePeriodDays: 1, TrackedSince: t0}, 24*time.Hour - 144*time.Minute, CodeCredentialNearExpiry, t0.Add(day)},
		{"ok/last-rotation-wins", credRecord{Phase: phaseIdle, ExpirePeriodDays: 90, TrackedSince: t0.Add(-400 * day), LastRotation: &t0}, 89 * day / 10, "", t0.Add(90 * day)},
		{"ok/archive-pending-counts-from-target-change", credRecord{Phase: phaseArchivePending, ExpirePeriodDays: 90, LastRotation: &last, RotatedAt: t0},
			82 * day, "", t0.Add(90 * day)},
		{"fail/set-intent-counts-from-last-archived", credRecord{Phase: phaseSetIntent, ExpirePeriodDays: 90, LastRotation: &last, RotatedAt: t0},
			75 * day, CodeCredentialNearExpiry, last.Add(90 * day)},
		{"fail/halted-counts-from-last-archived", credRecord{Phase: phaseHalted, ExpirePeriodDays: 90, LastRotation: &last}, 80 * day,
			CodeCredentialExpired, last.Add(90 * day)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, expires, next := tc.rec.expiry(t0.Add(tc.at))
			if code != tc.want || !expires.Equal(tc.expires) {
				t.Fatalf("expiry %q at %v, want %q at %v", code, expires, tc.want, tc.expires)
			}
			switch {
			case tc.expires.IsZero() || code == CodeCredentialExpired:
				if !next.IsZero() {
					t.Fatalf("next check %v, want none", next)
				}
			case code == CodeCredentialNearExpiry:
				if !next.Equal(tc.expires) {
					t.Fatalf("next check %v, want %v", next, tc.expires)
				}
			default:
				if !next.After(t0.Add(tc.at)) || !next.Before(tc.expires) {
					t.Fatalf("next check %v", next)
				}
			}
		})
	}
}

// TestExpiryCheckLeasedAndRemoved: a credential leased by a live worker is
// not written under it (checked once the lease lapses); RemoveCluster
// clears the expiry alert and its check entry.
func TestExpiryCheckLeasedAndRemoved(t *testing.T) {
	e := newEnv(t)
	cid := e.clusterID("c1")
	e.res.set(cid, e.cmArchive()) // no role: blocked
	s := e.engine("r1", longRetries)
	t0 := e.clk.Now()
	if err := e.deploy(s, []Target{{ClusterID: cid, OwnerID: cid, Kind: KindLocalPathStorage}}); err != nil {
		t.Fatal(err)
	}
	e.runOnce(s)
	credID := credIDOf(cid, cid, KindLocalPathStorage)
	e.clk.Set(t0.Add(83 * day))
	err := e.st.Update(e.ctx, func(tx store.Tx) error {
		_, err := putJSON(e.ctx, tx, kLease+credID, leaseRecord{Owner: "other", Expires: e.clk.Now().Add(time.Minute)}, store.Any)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.runOnce(s)
	if exp, _ := expiryAlerts(t, s, cid, true); len(exp) != 0 {
		t.Fatalf("checked under a live lease: %+v", exp)
	}
	e.clk.Advance(2 * time.Minute)
	e.runOnce(s)
	if exp, _ := expiryAlerts(t, s, cid, false); len(exp) != 1 || exp[0].Code != CodeCredentialNearExpiry {
		t.Fatalf("after the lease lapsed: %+v", exp)
	}
	if err := s.RemoveCluster(e.ctx, cid); err != nil {
		t.Fatal(err)
	}
	if act, _ := s.Alerts(e.ctx, cid, false); len(act) != 0 {
		t.Fatalf("alerts active after RemoveCluster: %+v", act)
	}
	if left, _ := e.st.List(e.ctx, kExpiry, storeAll); len(left) != 0 {
		t.Fatalf("expiry checks left: %d", len(left))
	}
}
