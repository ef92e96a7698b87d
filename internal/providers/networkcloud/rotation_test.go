package networkcloud

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
)

func TestResolveArchive(t *testing.T) {
	e := newEnv(t)
	e.vault("kv1")
	u1, u2 := e.uai("uai1"), e.uai("uai2")
	cmSys := e.manager("cmsys", map[string]any{"type": "SystemAssigned"})
	e.manager("cmuai", map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}}})
	e.manager("cmtwo", map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}, uaiID("uai2"): map[string]any{}}})
	e.manager("cmnone", nil)
	legacy := map[string]any{"keyVaultId": vaultID("rg1", "kv1"), "useKeyVault": "True"}
	kvURI := "https://kv1.vault.localhost:8443/"
	settings := func(typ, id string) map[string]any {
		ai := map[string]any{"identityType": typ}
		if id != "" {
			ai["userAssignedIdentityResourceId"] = id
		}
		return map[string]any{"vaultUri": kvURI, "associatedIdentity": ai}
	}
	encKey := rsaPEM(t, 3072)
	tests := []struct {
		name     string
		cm       string
		mod      func(b, p map[string]any)
		after    func(t *testing.T, clusterID string)
		code     string
		path     rotation.ArchivePath
		objectID func(t *testing.T, clusterID string) string
		uaiID    string
		enc      string
	}{
		{name: "ok/manager-system", cm: "cmsys", mod: func(_, p map[string]any) { p["secretArchive"] = legacy },
			path: rotation.PathClusterManager, objectID: func(*testing.T, string) string { return cmSys["identity"].(map[string]any)["principalId"].(string) }},
		{name: "ok/manager-single-uai", cm: "cmuai", mod: func(_, p map[string]any) { p["secretArchive"] = legacy; p["encryptionPublicKey"] = encKey },
			path: rotation.PathClusterManager, objectID: func(*testing.T, string) string { return u1.PrincipalID }, uaiID: uaiID("uai1"), enc: encKey},
		{name: "ok/cluster-system-supersedes-legacy", cm: "cmsys", mod: func(b, p map[string]any) {
			p["secretArchive"] = legacy
			b["identity"] = map[string]any{"type": "SystemAssigned"}
			p["secretArchiveSettings"] = settings("SystemAssignedIdentity", "")
		}, path: rotation.PathCluster, objectID: func(t *testing.T, id string) string {
			blk, err := e.ids.GetResourceIdentity(e.Ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return blk.PrincipalID
		}},
		{name: "ok/cluster-uai-ignores-manager", cm: "cmnone", mod: func(b, p map[string]any) {
			b["identity"] = map[string]any{"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai2"): map[string]any{}}}
			s := settings("UserAssignedIdentity", uaiID("uai2"))
			s["encryptionPublicKey"] = encKey
			p["secretArchiveSettings"] = s
		}, path: rotation.PathCluster, objectID: func(*testing.T, string) string { return u2.PrincipalID }, uaiID: uaiID("uai2"), enc: encKey},
		{name: "fail/nothing-configured", cm: "cmsys", code: CodeSecretArchiveNotConfigured},
		{name: "fail/use-key-vault-false", cm: "cmsys", mod: func(_, p map[string]any) {
			p["secretArchive"] = map[string]any{"keyVaultId": vaultID("rg1", "kv1"), "useKeyVault": "False"}
		}, code: CodeSecretArchiveNotConfigured},
		{name: "fail/manager-without-identity", cm: "cmnone", mod: func(_, p map[string]any) { p["secretArchive"] = legacy }, code: CodeIdentityNotConfigured},
		{name: "fail/manager-ambiguous", cm: "cmtwo", mod: func(_, p map[string]any) { p["secretArchive"] = legacy }, code: CodeAmbiguousIdentity},
		{name: "fail/manager-deleted", cm: "cmsys", mod: func(_, p map[string]any) { p["secretArchive"] = legacy },
			after: func(t *testing.T, id string) {
				c, _, _ := store.GetJSON[clusterRecord](e.Ctx, e.Store, clPathKey(id))
				c.ClusterManagerID = cmPath("gone")
				putRecord(t, e, clPathKey(id), c)
			}, code: CodeClusterManagerNotFound},
		{name: "fail/uai-deleted-after-config", cm: "cmnone", mod: func(b, p map[string]any) {
			e.uai("uai3")
			b["identity"] = map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai3"): map[string]any{}}}
			p["secretArchiveSettings"] = settings("UserAssignedIdentity", uaiID("uai3"))
		}, after: func(t *testing.T, _ string) {
			if err := e.ids.DeleteUserAssigned(e.Ctx, uaiID("uai3")); err != nil {
				t.Fatal(err)
			}
		}, code: CodeIdentityNotConfigured},
		{name: "fail/system-identity-removed", cm: "cmnone", mod: func(b, p map[string]any) {
			b["identity"] = map[string]any{"type": "SystemAssigned"}
			p["secretArchiveSettings"] = settings("SystemAssignedIdentity", "")
		}, after: func(t *testing.T, id string) {
			if err := e.ids.DeleteSystemAssigned(e.Ctx, id); err != nil {
				t.Fatal(err)
			}
		}, code: CodeIdentityNotConfigured},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "r" + string(rune('a'+i))
			mods := []func(b, p map[string]any){}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			e.Must("PUT", clPath(name)+v, newClusterBody(tc.cm, mods...), 201)
			id := clPath(name)
			if tc.after != nil {
				tc.after(t, id)
			}
			a, err := e.p.ResolveArchive(e.Ctx, id)
			if tc.code != "" {
				var ae *azerr.Error
				if !errors.As(err, &ae) || ae.Code != tc.code {
					t.Fatalf("err %v, want code %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.objectID(t, id)
			if a.Path != tc.path || a.IdentityObjectID != want || want == "" || !strings.EqualFold(a.UserAssignedIdentityID, tc.uaiID) ||
				a.VaultURI != kvURI || !strings.EqualFold(a.VaultID, vaultID("rg1", "kv1")) || a.EncryptionPublicKey != tc.enc {
				t.Fatalf("archive %+v (want object %s)", a, want)
			}
		})
	}
	t.Run("fail/unknown-cluster", func(t *testing.T) {
		_, err := e.p.ResolveArchive(e.Ctx, clPath("nope"))
		var ae *azerr.Error
		if !errors.As(err, &ae) || ae.Code != CodeClusterNotFound {
			t.Fatalf("err %v", err)
		}
	})
}

func clPathKey(id string) string {
	parts := strings.Split(id, "/")
	return resKey(typeClusters, sub1, "rg1", parts[len(parts)-1])
}

func putRecord(t *testing.T, e *env, key string, v any) {
	t.Helper()
	if err := e.Store.Update(e.Ctx, func(tx store.Tx) error {
		_, err := store.PutJSON(e.Ctx, tx, key, v, store.Any)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDeployAndRotation(t *testing.T) {
	e := newEnv(t)
	e.vault("kv1")
	e.manager("cm1", map[string]any{"type": "SystemAssigned"})
	e.Must("PUT", clPath("c1")+v, newClusterBody("cm1", func(_, p map[string]any) {
		p["secretArchive"] = map[string]any{"keyVaultId": vaultID("rg1", "kv1"), "useKeyVault": "True"}
	}), 201)
	bmm1 := ncPath("rg1", "bareMetalMachines", "bmm1")

	// Before deployment nothing rotates and the machines are not resources.
	if st, err := e.p.OwnerState(e.Ctx, bmm1); err != nil || st != OwnerProvisioning {
		t.Fatalf("owner state %q %v", st, err)
	}
	e.Must("GET", bmm1+v, nil, 404)
	if r := e.Do("POST", clPath("c1")+"/rotateCredential"+v, map[string]any{"credentials": []string{"BMCCredential"}}); r.Code != 409 || r.ErrField(t, "code") != "ClusterNotDeployed" {
		t.Fatalf("rotate before deploy: %d %s", r.Code, r.Body.String())
	}

	r := e.Must("POST", clPath("c1")+"/deploy"+v, nil, 202)
	if r.Header().Get("Azure-AsyncOperation") == "" {
		t.Fatal("deploy is long-running")
	}
	calls, targets, reqs := e.eng.snapshot()
	jsonEqual(t, calls, `["RemoveCluster","UpsertTargets","UpsertTargets","RequestRotation"]`)
	kinds := map[rotation.Kind]int{}
	for _, tg := range targets {
		kinds[tg.Kind]++
	}
	if kinds[rotation.KindBMC] != 2 || kinds[rotation.KindConsoleUser] != 2 || kinds[rotation.KindStorageAdmin] != 1 || kinds[rotation.KindLocalPathStorage] != 1 {
		t.Fatalf("targets by kind %v", kinds)
	}
	if len(reqs) != 1 || reqs[0].ClusterID != clPath("c1") || reqs[0].Kinds != nil {
		t.Fatalf("rotation requests %+v", reqs)
	}
	got := e.Must("GET", clPath("c1")+v, nil, 200).JSON(t)
	p := props(got)
	if p["detailedStatus"] != "Running" {
		t.Fatalf("detailedStatus %v %v", p["detailedStatus"], p["detailedStatusMessage"])
	}
	as := p["actionStates"].([]any)[0].(map[string]any)
	if as["actionType"] != actionDeploy || as["status"] != "Completed" {
		t.Fatalf("actionStates %v", p["actionStates"])
	}
	if r := e.Do("POST", clPath("c1")+"/deploy"+v, nil); r.Code != 409 || r.ErrField(t, "code") != "ClusterAlreadyDeployed" {
		t.Fatalf("second deploy: %d %s", r.Code, r.Body.String())
	}

	// Machines and appliances are resources now, listed by group and subscription.
	m := e.Must("GET", bmm1+v, nil, 200).JSON(t)
	mp := props(m)
	if mp["clusterId"] != clPath("c1") || mp["cordonStatus"] != "Uncordoned" || mp["readyState"] != "True" ||
		mp["bmcConnectionString"] != "redfish+https://127.0.0.1:9443" || mp["provisioningState"] != "Succeeded" {
		t.Fatalf("machine %v", mp)
	}
	for _, path := range []string{rgPath("rg1"), "/subscriptions/" + sub1} {
		l := e.Must("GET", path+"/providers/Microsoft.NetworkCloud/bareMetalMachines"+v, nil, 200).JSON(t)
		if n := len(l["value"].([]any)); n != 2 {
			t.Fatalf("%s machines: %d", path, n)
		}
		l = e.Must("GET", path+"/providers/Microsoft.NetworkCloud/storageAppliances"+v, nil, 200).JSON(t)
		if n := len(l["value"].([]any)); n != 1 {
			t.Fatalf("%s appliances: %d", path, n)
		}
	}
	if st, _ := e.p.OwnerState(e.Ctx, bmm1); st != OwnerReady {
		t.Fatalf("owner state after deploy %q", st)
	}

	// secretRotationStatus comes from the engine.
	rot := time.Date(2026, 11, 25, 12, 1, 0, 0, time.UTC)
	e.eng.mu.Lock()
	e.eng.status[strings.ToLower(bmm1)] = []rotation.Status{{SecretType: "BMCCredential", LastRotationTime: &rot, RotationPeriodDays: 60, ExpirePeriodDays: 90,
		SecretArchiveReference: &rotation.ArchiveReference{KeyVaultID: vaultID("rg1", "kv1"), KeyVaultURI: "https://kv1.vault.localhost:8443/", SecretName: "s1", SecretVersion: "v1"}}}
	e.eng.mu.Unlock()
	mp = props(e.Must("GET", bmm1+v, nil, 200).JSON(t))
	jsonEqual(t, mp["secretRotationStatus"], `[{"secretType":"BMCCredential","lastRotationTime":"2026-11-25T12:01:00Z","rotationPeriodDays":60,"expirePeriodDays":90,
		"secretArchiveReference":{"keyVaultId":"`+vaultID("rg1", "kv1")+`","keyVaultUri":"https://kv1.vault.localhost:8443/","secretName":"s1","secretVersion":"v1"}}]`)
	sa := props(e.Must("GET", ncPath("rg1", "storageAppliances", "sa1")+v, nil, 200).JSON(t))
	jsonEqual(t, sa["secretRotationStatus"], `[]`)
	e.eng.mu.Lock()
	e.eng.statusErr = errors.New("engine store down")
	e.eng.mu.Unlock()
	e.Must("GET", bmm1+v, nil, 200) // a status failure does not fail the read
	e.eng.mu.Lock()
	e.eng.statusErr = nil
	e.eng.state = rotation.ClusterState{Code: "MissingRoleAssignment", Message: "the identity cannot set secrets in kv1"}
	e.eng.mu.Unlock()
	p = props(e.Must("GET", clPath("c1")+v, nil, 200).JSON(t))
	if p["detailedStatus"] != "Degraded" || !strings.Contains(p["detailedStatusMessage"].(string), "MissingRoleAssignment") {
		t.Fatalf("detailed status %v: %v", p["detailedStatus"], p["detailedStatusMessage"])
	}

	// Rack definitions are frozen once deployed.
	if r := e.Do("PATCH", clPath("c1")+v, map[string]any{"properties": map[string]any{"aggregatorOrSingleRackDefinition": rack(nil, nil)}}); r.Code != 409 {
		t.Fatalf("rack change after deploy: %d %s", r.Code, r.Body.String())
	}

	// On-demand rotation.
	rotTests := []struct {
		name  string
		body  any
		code  string
		kinds []rotation.Kind
	}{
		{"ok/bmc", map[string]any{"credentials": []string{"BMCCredential"}}, "", []rotation.Kind{rotation.KindBMC}},
		{"ok/case-insensitive-dedup", map[string]any{"credentials": []string{"consoleuser", "ConsoleUser", "StorageApplianceAdministrator"}}, "",
			[]rotation.Kind{rotation.KindConsoleUser, rotation.KindStorageAdmin}},
		{"fail/unknown", map[string]any{"credentials": []string{"Root"}}, "InvalidCredentialName", nil},
		{"fail/empty", map[string]any{"credentials": []string{}}, "InvalidParameter", nil},
		{"fail/no-body", nil, "InvalidRequestContent", nil},
	}
	for _, tc := range rotTests {
		t.Run("rotate/"+tc.name, func(t *testing.T) {
			_, _, before := e.eng.snapshot()
			r := e.Do("POST", clPath("c1")+"/rotateCredential"+v, tc.body)
			_, _, after := e.eng.snapshot()
			if tc.code != "" {
				if r.Code != 400 || r.ErrField(t, "code") != tc.code || len(after) != len(before) {
					t.Fatalf("got %d %s", r.Code, r.Body.String())
				}
				return
			}
			if r.Code != 202 || len(after) != len(before)+1 {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			jsonEqual(t, after[len(after)-1].Kinds, mustJSON(tc.kinds))
		})
	}
	// Without a usable archive the operation fails with the condition's code.
	e.Must("PATCH", clPath("c1")+v, map[string]any{"properties": map[string]any{"secretArchive": map[string]any{"useKeyVault": "False"}}}, 200)
	r = e.Must("POST", clPath("c1")+"/rotateCredential"+v, map[string]any{"credentials": []string{"BMCCredential"}}, 202)
	op := e.Must("GET", strings.TrimPrefix(r.Header().Get("Azure-AsyncOperation"), base), nil, 200).JSON(t)
	if op["status"] != "Failed" || op["error"].(map[string]any)["code"] != CodeSecretArchiveNotConfigured {
		t.Fatalf("operation %v", op)
	}
	var rotState map[string]any
	for _, s := range props(e.Must("GET", clPath("c1")+v, nil, 200).JSON(t))["actionStates"].([]any) {
		if s.(map[string]any)["actionType"] == actionRotate {
			rotState = s.(map[string]any)
		}
	}
	if rotState["status"] != "Failed" || !strings.Contains(rotState["message"].(string), "useKeyVault is False") {
		t.Fatalf("rotate action state %v", rotState)
	}

	// Cordon: the engine is told not to rotate the machine.
	e.Must("POST", bmm1+"/cordon"+v, map[string]any{"evacuate": "False"}, 202)
	if st, _ := e.p.OwnerState(e.Ctx, bmm1); st != OwnerCordoned {
		t.Fatalf("owner state after cordon %q", st)
	}
	mp = props(e.Must("GET", bmm1+v, nil, 200).JSON(t))
	if mp["cordonStatus"] != "Cordoned" || mp["readyState"] != "False" {
		t.Fatalf("cordoned machine %v", mp)
	}
	if r := e.Do("POST", bmm1+"/cordon"+v, map[string]any{"evacuate": "maybe"}); r.Code != 400 {
		t.Fatalf("bad evacuate: %d", r.Code)
	}
	e.Must("POST", bmm1+"/uncordon"+v, nil, 202)
	if st, _ := e.p.OwnerState(e.Ctx, bmm1); st != OwnerReady {
		t.Fatalf("owner state after uncordon %q", st)
	}
	if st, _ := e.p.OwnerState(e.Ctx, clPath("c1")); st != OwnerReady {
		t.Fatalf("cluster owner state %q", st)
	}
	if _, err := e.p.OwnerState(e.Ctx, vaultID("rg1", "kv1")); err == nil {
		t.Fatal("owner state of a vault")
	}
	if r := e.Do("DELETE", bmm1+v, nil); r.Code != 405 {
		t.Fatalf("machine delete: %d", r.Code)
	}

	// Generic lists see everything; delete removes machines, targets and identities.
	gen, err := e.p.ListResources(e.Ctx, sub1, "rg1")
	if err != nil || len(gen) != 5 { // manager, cluster, 2 machines, 1 appliance
		t.Fatalf("generic list %d %v", len(gen), err)
	}
	e.Must("DELETE", clPath("c1")+v, nil, 202)
	e.Must("GET", bmm1+v, nil, 404)
	e.Must("GET", ncPath("rg1", "storageAppliances", "sa1")+v, nil, 404)
	if _, targets, _ := e.eng.snapshot(); len(targets) != 0 {
		t.Fatalf("targets left after delete: %d", len(targets))
	}
}

func TestDeployNameConflictAndGroupDelete(t *testing.T) {
	e := newEnv(t)
	e.manager("cm1", nil)
	e.Must("PUT", clPath("c1")+v, newClusterBody("cm1"), 201)
	e.Must("PUT", clPath("c2")+v, newClusterBody("cm1"), 201) // same machine names
	e.Must("POST", clPath("c1")+"/deploy"+v, nil, 202)
	r := e.Must("POST", clPath("c2")+"/deploy"+v, nil, 202)
	op := e.Must("GET", strings.TrimPrefix(r.Header().Get("Azure-AsyncOperation"), base), nil, 200).JSON(t)
	if op["status"] != "Failed" || op["error"].(map[string]any)["code"] != "ResourceNameConflict" {
		t.Fatalf("operation %v", op)
	}
	if p := props(e.Must("GET", clPath("c2")+v, nil, 200).JSON(t)); p["detailedStatus"] != "Failed" {
		t.Fatalf("c2 status %v", p["detailedStatus"])
	}
	// Generated names: machines without machineName get stable names.
	e.Must("PUT", clPath("c3")+v, newClusterBody("cm1", func(_, p map[string]any) {
		p["aggregatorOrSingleRackDefinition"] = rack([]map[string]any{machine("", 7, "")}, nil)
	}), 201)
	got := props(e.Must("GET", clPath("c3")+v, nil, 200).JSON(t))
	mn := got["aggregatorOrSingleRackDefinition"].(map[string]any)["bareMetalMachineConfigurationData"].([]any)[0].(map[string]any)["machineName"]
	if mn != "c3r0s7" {
		t.Fatalf("generated machine name %v", mn)
	}
	if err := e.p.DeleteGroupResources(e.Ctx, sub1, "rg1"); err != nil {
		t.Fatal(err)
	}
	gen, err := e.p.ListResources(e.Ctx, sub1, "rg1")
	if err != nil || len(gen) != 0 {
		t.Fatalf("left after group delete: %v %v", gen, err)
	}
}

func TestNoEngine(t *testing.T) {
	e := newEnv(t)
	e.p.SetEngine(nil)
	e.manager("cm1", nil)
	if r := e.Do("PUT", clPath("c1")+v, newClusterBody("cm1")); r.Code != 503 || r.ErrField(t, "code") != "RotationEngineUnavailable" {
		t.Fatalf("create without engine: %d %s", r.Code, r.Body.String())
	}
	// A cluster without machines needs no engine to be defined.
	e.Must("PUT", clPath("c2")+v, newClusterBody("cm1", func(_, p map[string]any) { p["aggregatorOrSingleRackDefinition"] = rack(nil, nil) }), 201)
	if r := e.Do("POST", clPath("c2")+"/deploy"+v, nil); r.Code != 503 {
		t.Fatalf("deploy without engine: %d", r.Code)
	}
}
