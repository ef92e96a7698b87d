package rotation

import (
	"net/http"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/identity"
	"github.com/keyhaven/keyhaven/internal/vault"
)

// failureCase breaks one condition the guide requires and then fixes it.
type failureCase struct {
	name  string
	code  string
	setup func(e *env, cid string) // configure archive and grants, broken
	fix   func(e *env, cid string)
}

func failureCases() []failureCase {
	writer := func(e *env, oid string) { e.assign(oid, authz.RoleOperatorNexusKeyVaultWriter, e.vaultID) }
	clusterIdentity := func(e *env, cid string) *identity.ManagedIdentity {
		mi, err := e.ids.EnsureSystemAssigned(e.ctx, "", cid)
		if err != nil {
			e.t.Fatal(err)
		}
		return mi
	}
	clusterArchive := func(e *env, oid string) *Archive {
		return &Archive{Path: PathCluster, VaultURI: e.vaultURI(e.vaultName), IdentityObjectID: oid}
	}
	uaiID := func(e *env) string {
		return "/subscriptions/" + e.sub + "/resourceGroups/rg-id/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
	}
	return []failureCase{
		{name: "no-vault", code: CodeSecretArchiveNotConfigured,
			setup: func(e *env, cid string) {
				writer(e, e.cm.PrincipalID)
				e.res.setErr(cid, azerr.New(http.StatusBadRequest, CodeSecretArchiveNotConfigured, "The cluster has no secret archive."))
			},
			fix: func(e *env, cid string) { e.res.set(cid, e.cmArchive()) }},
		{name: "no-role", code: CodeMissingRoleAssignment,
			setup: func(e *env, cid string) { e.res.set(cid, e.cmArchive()) },
			fix:   func(e *env, cid string) { writer(e, e.cm.PrincipalID) }},
		{name: "wrong-role", code: CodeWrongRole,
			setup: func(e *env, cid string) {
				e.res.set(cid, e.cmArchive())
				e.assign(e.cm.PrincipalID, authz.RoleKeyVaultReader, e.vaultID)
			},
			fix: func(e *env, cid string) { writer(e, e.cm.PrincipalID) }},
		{name: "access-policy-mode", code: CodeVaultNotRbacMode,
			setup: func(e *env, cid string) {
				e.res.set(cid, e.cmArchive())
				writer(e, e.cm.PrincipalID)
				e.dir.update(e.vaultName, func(v *vault.VaultInfo) {
					v.EnableRBACAuthorization = false
					v.AccessPolicies = []authz.AccessPolicy{{TenantID: e.boot.TenantID, ObjectID: e.cm.PrincipalID,
						Permissions: authz.Permissions{Secrets: []string{"set"}}}}
				})
			},
			fix: func(e *env, cid string) {
				e.dir.update(e.vaultName, func(v *vault.VaultInfo) { v.EnableRBACAuthorization = true })
			}},
		{name: "firewall-with-cluster-identity", code: CodeVaultFirewallEnabled,
			setup: func(e *env, cid string) {
				mi := clusterIdentity(e, cid)
				writer(e, mi.PrincipalID)
				e.res.set(cid, clusterArchive(e, mi.PrincipalID))
				e.dir.update(e.vaultName, func(v *vault.VaultInfo) {
					v.NetworkACLs = &vault.NetworkACLs{DefaultAction: "Deny", Bypass: "AzureServices"}
				})
			},
			fix: func(e *env, cid string) {
				e.dir.update(e.vaultName, func(v *vault.VaultInfo) { v.NetworkACLs = nil })
			}},
		{name: "firewall-without-bypass-cluster-manager", code: CodeVaultFirewallEnabled,
			setup: func(e *env, cid string) {
				writer(e, e.cm.PrincipalID)
				e.res.set(cid, e.cmArchive())
				e.dir.update(e.vaultName, func(v *vault.VaultInfo) {
					v.NetworkACLs = &vault.NetworkACLs{DefaultAction: "Deny", Bypass: "None"}
				})
			},
			// The fix keeps the firewall on: the cluster manager's trusted
			// token passes it through the real data plane.
			fix: func(e *env, cid string) {
				e.dir.update(e.vaultName, func(v *vault.VaultInfo) { v.NetworkACLs.Bypass = "AzureServices" })
			}},
		{name: "missing-managed-identity-operator", code: CodeMissingManagedIdentityOperator,
			setup: func(e *env, cid string) {
				uai, err := e.ids.CreateUserAssigned(e.ctx, "", uaiID(e))
				if err != nil {
					e.t.Fatal(err)
				}
				writer(e, uai.PrincipalID)
				e.res.set(cid, &Archive{Path: PathCluster, VaultURI: e.vaultURI(e.vaultName), IdentityObjectID: uai.PrincipalID,
					UserAssignedIdentityID: uaiID(e)})
			},
			fix: func(e *env, cid string) {
				e.assign(e.boot.PlatformObjectID, authz.RoleManagedIdentityOperator, uaiID(e))
			}},
		{name: "identity-removed", code: CodeIdentityNotFound,
			setup: func(e *env, cid string) {
				mi := clusterIdentity(e, cid)
				writer(e, mi.PrincipalID)
				e.res.set(cid, clusterArchive(e, mi.PrincipalID))
				if err := e.ids.DeleteSystemAssigned(e.ctx, cid); err != nil {
					e.t.Fatal(err)
				}
			},
			fix: func(e *env, cid string) {
				mi := clusterIdentity(e, cid) // a new identity, granted again
				writer(e, mi.PrincipalID)
				e.res.set(cid, clusterArchive(e, mi.PrincipalID))
			}},
		{name: "vault-deleted-then-recovered", code: CodeVaultNotFound,
			setup: func(e *env, cid string) {
				writer(e, e.cm.PrincipalID)
				e.res.set(cid, e.cmArchive())
				v := e.dir.remove(e.vaultName)
				e.dir.mu.Lock()
				e.dir.vaults["~deleted"] = v
				e.dir.mu.Unlock()
			},
			fix: func(e *env, cid string) {
				v := e.dir.remove("~deleted")
				e.dir.put(v) // recovered: same internal id and resource ID
			}},
	}
}

// TestPreflightFailures: each missing condition keeps the rotation from
// starting (the target is untouched, nothing delivered), is named in the
// credential state, the cluster state and an alert; once fixed, rotation
// runs and the alert clears.
func TestPreflightFailures(t *testing.T) {
	for _, tc := range failureCases() {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.clusterID("c1")
			e.newBMC([]string{cid}, 1)
			tc.setup(e, cid)
			s := e.engine("r1")
			tg := e.bmcTargets(cid, 1)
			if err := e.deploy(s, tg); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s)
			c := e.cred(s, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, c, phaseIdle, tc.code)
			if e.bmc.Patches() != 0 || e.bmc.Password(tg[0].Username) != string(tg[0].Initial) {
				t.Fatal("the target was changed although preflight failed")
			}
			if st, _ := s.ClusterState(e.ctx, cid); st.Healthy || st.Code != tc.code || st.Message == "" {
				t.Fatalf("cluster state %+v", st)
			}
			alerts, err := s.Alerts(e.ctx, cid, false)
			if err != nil || len(alerts) != 1 || alerts[0].Code != tc.code || alerts[0].OwnerID != tg[0].OwnerID ||
				alerts[0].Kind != KindBMC || alerts[0].ClearedAt != nil {
				t.Fatalf("alerts %+v %v", alerts, err)
			}
			// Still broken on retry: the same alert, no new one.
			e.clk.Advance(2 * time.Minute)
			e.runOnce(s)
			if all, _ := s.Alerts(e.ctx, cid, true); len(all) != 1 {
				t.Fatalf("%d alerts after a retry, want 1", len(all))
			}

			tc.fix(e, cid)
			e.clk.Advance(11 * time.Minute)
			e.runOnce(s)
			c = e.cred(s, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, c, phaseIdle, "")
			val, _, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion)
			if val != e.bmc.Password(tg[0].Username) || e.bmc.Patches() != 1 {
				t.Fatal("after the fix: archive and target disagree")
			}
			if act, _ := s.Alerts(e.ctx, cid, false); len(act) != 0 {
				t.Fatalf("alerts still active: %+v", act)
			}
			if all, _ := s.Alerts(e.ctx, cid, true); len(all) != 1 || all[0].ClearedAt == nil {
				t.Fatalf("alert history %+v", all)
			}
			if st, _ := s.ClusterState(e.ctx, cid); !st.Healthy {
				t.Fatalf("cluster state %+v", st)
			}
		})
	}
}

// TestArchivePendingResumes: the same causes appearing after the target
// changed leave the new value sealed in keyhaven (ArchivePending, named
// reason, alert), retried with backoff; once fixed the value delivered is
// exactly the one the target accepts.
func TestArchivePendingResumes(t *testing.T) {
	for _, tc := range failureCases() {
		t.Run("fail/"+tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.clusterID("c1")
			e.newBMC([]string{cid}, 1)
			// Start healthy: the fix is the working configuration.
			s := e.engine("r1")
			tc.setup(e, cid)
			tc.fix(e, cid)
			tg := e.bmcTargets(cid, 1)
			if err := e.deploy(s, tg); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s)
			first := e.cred(s, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, first, phaseIdle, "")

			// Next rotation: break the condition right after the target
			// accepted the new value.
			fresh := newEnvBreaker(e, tc, cid)
			s.failpoint = func(point, _ string) error {
				if point == fpAfterVerified {
					fresh()
				}
				return nil
			}
			if err := s.RequestRotation(e.ctx, cid, nil); err != nil {
				t.Fatal(err)
			}
			e.runOnce(s)
			c := e.cred(s, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, c, phaseArchivePending, tc.code)
			onTarget := e.bmc.Password(tg[0].Username)
			if e.bmc.Patches() != 2 || onTarget == "" {
				t.Fatal("the target was not rotated")
			}
			if st, _ := s.ClusterState(e.ctx, cid); st.Code != CodeArchivePending {
				t.Fatalf("cluster state %+v", st)
			}
			if a, _ := s.Alerts(e.ctx, cid, false); len(a) != 1 || a[0].Code != tc.code {
				t.Fatalf("alerts %+v", a)
			}
			// Status still points at the previous, delivered version.
			if c.Reference.SecretVersion != first.Reference.SecretVersion {
				t.Fatal("reference moved before delivery")
			}
			// Retries back off: 1m, 2m, 4m, ... capped at 10m.
			for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute, 10 * time.Minute} {
				c = e.cred(s, cid, tg[0].OwnerID, KindBMC)
				if got := c.NextAttempt.Sub(e.clk.Now()); got != want {
					t.Fatalf("retry %d after %v, want %v", i+1, got, want)
				}
				e.clk.Advance(want)
				e.runOnce(s)
			}
			s.failpoint = nil
			tc.fix(e, cid)
			e.clk.Advance(11 * time.Minute)
			e.runOnce(s)
			c = e.cred(s, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, c, phaseIdle, "")
			val, _, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion)
			if val != onTarget || e.bmc.Password(tg[0].Username) != onTarget || e.bmc.Patches() != 2 {
				t.Fatal("the value delivered later is not the value set on the target")
			}
			if a, _ := s.Alerts(e.ctx, cid, false); len(a) != 0 {
				t.Fatalf("alerts still active: %+v", a)
			}
		})
	}
}

// newEnvBreaker returns a function that breaks tc's condition once, on the
// live env (the same mutations setup makes, applied to a working config).
func newEnvBreaker(e *env, tc failureCase, cid string) func() {
	done := false
	return func() {
		if done {
			return
		}
		done = true
		switch tc.name {
		case "no-vault":
			e.res.setErr(cid, azerr.New(http.StatusBadRequest, CodeSecretArchiveNotConfigured, "The cluster has no secret archive."))
		case "no-role", "wrong-role":
			as, _ := e.az.ListAssignments(e.ctx, authz.AssignmentFilter{Scope: e.vaultID, AtScope: true})
			for _, a := range as {
				if a.RoleDefinitionID == authz.RoleOperatorNexusKeyVaultWriter {
					e.unassign(a.Scope, a.Name)
				}
			}
		case "access-policy-mode":
			e.dir.update(e.vaultName, func(v *vault.VaultInfo) { v.EnableRBACAuthorization = false })
		case "firewall-with-cluster-identity":
			e.dir.update(e.vaultName, func(v *vault.VaultInfo) {
				v.NetworkACLs = &vault.NetworkACLs{DefaultAction: "Deny", Bypass: "AzureServices"}
			})
		case "firewall-without-bypass-cluster-manager":
			e.dir.update(e.vaultName, func(v *vault.VaultInfo) { v.NetworkACLs.Bypass = "None" })
		case "missing-managed-identity-operator":
			as, _ := e.az.ListAssignments(e.ctx, authz.AssignmentFilter{PrincipalID: e.boot.PlatformObjectID})
			for _, a := range as {
				if a.RoleDefinitionID == authz.RoleManagedIdentityOperator {
					e.unassign(a.Scope, a.Name)
				}
			}
		case "identity-removed":
			if err := e.ids.DeleteSystemAssigned(e.ctx, cid); err != nil {
				e.t.Fatal(err)
			}
		case "vault-deleted-then-recovered":
			v := e.dir.remove(e.vaultName)
			e.dir.mu.Lock()
			e.dir.vaults["~deleted"] = v
			e.dir.mu.Unlock()
		}
	}
}

// TestDeliveryErrorsFromDataPlane: refusals only the data plane sees map to
// named reasons, and the value waits sealed until delivery succeeds.
func TestDeliveryErrorsFromDataPlane(t *testing.T) {
	cases := []struct {
		name string
		err  error
		code string
	}{
		{"fail/firewall", &VaultError{Status: 403, Code: "Forbidden", Inner: "ForbiddenByFirewall"}, CodeForbiddenByFirewall},
		{"fail/rbac", &VaultError{Status: 403, Code: "Forbidden", Inner: "ForbiddenByRbac"}, CodeMissingRoleAssignment},
		{"fail/access-policy", &VaultError{Status: 403, Code: "Forbidden", Inner: "AccessDenied"}, CodeVaultNotRbacMode},
		{"fail/vault-not-found", &VaultError{Status: 404, Code: "VaultNotFound"}, CodeVaultNotFound},
		{"fail/unauthorized", &VaultError{Status: 401, Code: "Unauthorized"}, CodeVaultUnauthorized},
		{"fail/secret-deleted", &VaultError{Status: 409, Code: "Conflict", Inner: "ObjectIsDeletedButRecoverable"}, CodeSecretDeletedInVault},
		{"fail/throttled", &VaultError{Status: 429, Code: "Throttled"}, CodeVaultUnavailable},
		{"fail/network", errInjected, CodeVaultUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			cid := e.healthyCluster()
			s := e.engine("r1")
			tg := e.bmcTargets(cid, 1)
			if err := e.deploy(s, tg); err != nil {
				t.Fatal(err)
			}
			e.vc.setFail(tc.err)
			e.runOnce(s)
			wantCode(t, e.cred(s, cid, tg[0].OwnerID, KindBMC), phaseArchivePending, tc.code)
			e.vc.setFail(nil)
			e.clk.Advance(2 * time.Minute)
			e.runOnce(s)
			c := e.cred(s, cid, tg[0].OwnerID, KindBMC)
			wantCode(t, c, phaseIdle, "")
			if val, _, _ := e.readSecret(e.vaultName, c.Reference.SecretName, c.Reference.SecretVersion); val != e.bmc.Password(tg[0].Username) {
				t.Fatal("delivered value differs from the target's")
			}
		})
	}
}
