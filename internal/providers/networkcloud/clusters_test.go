package networkcloud

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/rotation"
	"github.com/keyhaven/keyhaven/internal/store"
)

func rsaPEM(t *testing.T, bits int) string {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// TestClusterSecretArchiveConfiguration walks the guide's configuration
// steps on a cluster: legacy secretArchive, then secretArchiveSettings with
// the system- and the user-assigned identity.
func TestClusterSecretArchiveConfiguration(t *testing.T) {
	e := newEnv(t)
	e.manager("cm1", map[string]any{"type": "SystemAssigned"})
	e.vault("kv1")
	u := e.uai("uai1")
	e.Must("PUT", clPath("c1")+v, newClusterBody("cm1"), 201)

	steps := []struct {
		name  string
		body  any
		check func(t *testing.T, got map[string]any)
	}{
		{"ok/secret-archive", map[string]any{"properties": map[string]any{"secretArchive": map[string]any{"keyVaultId": vaultID("rg1", "kv1"), "useKeyVault": "True"}}},
			func(t *testing.T, got map[string]any) {
				jsonEqual(t, props(got)["secretArchive"], `{"keyVaultId":"`+vaultID("rg1", "kv1")+`","useKeyVault":"True"}`)
			}},
		{"ok/secret-archive-patch-merges", map[string]any{"properties": map[string]any{"secretArchive": map[string]any{"useKeyVault": "false"}}},
			func(t *testing.T, got map[string]any) {
				jsonEqual(t, props(got)["secretArchive"], `{"keyVaultId":"`+vaultID("rg1", "kv1")+`","useKeyVault":"False"}`)
			}},
		{"ok/system-identity-and-settings", map[string]any{"identity": map[string]any{"type": "SystemAssigned"},
			"properties": map[string]any{"secretArchiveSettings": map[string]any{"vaultUri": "https://kv1.vault.localhost:8443/",
				"associatedIdentity": map[string]any{"identityType": "SystemAssignedIdentity"}}}},
			func(t *testing.T, got map[string]any) {
				if id := got["identity"].(map[string]any); id["type"] != "SystemAssigned" || !isGUIDish(id["principalId"]) {
					t.Fatalf("identity %v", id)
				}
				jsonEqual(t, props(got)["secretArchiveSettings"], `{"vaultUri":"https://kv1.vault.localhost:8443/","associatedIdentity":{"identityType":"SystemAssignedIdentity"}}`)
			}},
		{"ok/user-identity-and-settings", map[string]any{"identity": map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}}},
			"properties": map[string]any{"secretArchiveSettings": map[string]any{"vaultUri": "https://kv1.vault.localhost:8443/",
				"associatedIdentity": map[string]any{"identityType": "userassignedidentity", "userAssignedIdentityResourceId": uaiID("uai1")}}}},
			func(t *testing.T, got map[string]any) {
				jsonEqual(t, got["identity"], `{"type":"UserAssigned","userAssignedIdentities":{"`+uaiID("uai1")+`":{"clientId":"`+u.ClientID+`","principalId":"`+u.PrincipalID+`"}}}`)
				ai := props(got)["secretArchiveSettings"].(map[string]any)["associatedIdentity"].(map[string]any)
				if ai["identityType"] != "UserAssignedIdentity" {
					t.Fatalf("identityType not canonical: %v", ai)
				}
			}},
		{"ok/clear-settings", `{"properties":{"secretArchiveSettings":null}}`,
			func(t *testing.T, got map[string]any) {
				if props(got)["secretArchiveSettings"] != nil {
					t.Fatalf("settings not cleared: %v", props(got))
				}
			}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			r := e.Must("PATCH", clPath("c1")+v, s.body, 200)
			if r.Header().Get("Azure-AsyncOperation") == "" {
				t.Fatal("PATCH is long-running in Azure: no Azure-AsyncOperation")
			}
			got := e.Must("GET", clPath("c1")+v, nil, 200).JSON(t)
			if props(got)["provisioningState"] != "Succeeded" {
				t.Fatalf("provisioningState %v", props(got)["provisioningState"])
			}
			s.check(t, got)
		})
	}
}

func TestClusterCreateRendersAndHidesPasswords(t *testing.T) {
	e := newEnv(t)
	e.manager("cm1", nil)
	r := e.Must("PUT", clPath("c1")+v, newClusterBody("cm1", func(_, p map[string]any) {
		p["encryptionPublicKey"] = rsaPEM(t, 3072)
	}), 201)
	if r.Header().Get("Azure-AsyncOperation") == "" {
		t.Fatal("PUT is long-running: no Azure-AsyncOperation")
	}
	got := e.Must("GET", clPath("c1")+v, nil, 200)
	if strings.Contains(got.Body.String(), bmcPW) || strings.Contains(got.Body.String(), saPW) || strings.Contains(r.Body.String(), bmcPW) {
		t.Fatal("a password was rendered")
	}
	m := got.JSON(t)
	p := props(m)
	if p["clusterManagerId"] != cmPath("cm1") || p["detailedStatus"] != "PendingDeployment" || p["clusterType"] != "SingleRack" {
		t.Fatalf("properties %v", p)
	}
	if el := m["extendedLocation"].(map[string]any); el["type"] != "CustomLocation" || !strings.Contains(el["name"].(string), "customLocations/cm1-cl") {
		t.Fatalf("extendedLocation %v", el)
	}
	jsonEqual(t, p["managedCredentials"], `["BMCCredential","ConsoleUser","LocalPathStorageKey","StorageApplianceAdministrator"]`)
	bm := p["aggregatorOrSingleRackDefinition"].(map[string]any)["bareMetalMachineConfigurationData"].([]any)[0].(map[string]any)
	jsonEqual(t, bm["bmcCredentials"], `{"username":"root"}`)
	if bm["bmcConnectionString"] != "redfish+https://127.0.0.1:9443" {
		t.Fatalf("bmcConnectionString %v", bm["bmcConnectionString"])
	}
	// Nothing the provider stored holds a password.
	recs, err := e.Store.List(e.Ctx, prefix, store.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if bytes.Contains(rec.Value, []byte(bmcPW)) || bytes.Contains(rec.Value, []byte(saPW)) {
			t.Fatalf("record %s holds a password", rec.Key)
		}
	}
	// The engine got them, as the BMC and storage targets' Initial.
	calls, targets, _ := e.eng.snapshot()
	jsonEqual(t, calls, `["RemoveCluster","UpsertTargets"]`)
	if len(targets) != 3 {
		t.Fatalf("targets %+v", targets)
	}
	want := map[string]struct {
		kind     rotation.Kind
		endpoint string
		user     string
		pw       string
	}{
		ncPath("rg1", "bareMetalMachines", "bmm1"): {rotation.KindBMC, "redfish+https://127.0.0.1:9443", "root", bmcPW},
		ncPath("rg1", "bareMetalMachines", "bmm2"): {rotation.KindBMC, "", "root", bmcPW},
		ncPath("rg1", "storageAppliances", "sa1"):  {rotation.KindStorageAdmin, "postgres://127.0.0.1:5432/test", "pureuser", saPW},
	}
	for _, tg := range targets {
		w, ok := want[tg.OwnerID]
		if !ok || tg.Kind != w.kind || tg.Endpoint != w.endpoint || tg.Username != w.user || string(tg.Initial) != w.pw || tg.ClusterID != clPath("c1") {
			t.Fatalf("target %+v", tg)
		}
	}
}

func TestClusterValidation(t *testing.T) {
	e := newEnv(t)
	e.manager("cm1", nil)
	e.vault("kv1")
	e.uai("uai1")
	e.uai("uai2")
	settings := func(typ, id, uri string) map[string]any {
		ai := map[string]any{"identityType": typ}
		if id != "" {
			ai["userAssignedIdentityResourceId"] = id
		}
		return map[string]any{"vaultUri": uri, "associatedIdentity": ai}
	}
	set := func(k string, val any) func(b, p map[string]any) { return func(_, p map[string]any) { p[k] = val } }
	withIdentity := func(ident any) func(b, p map[string]any) { return func(b, _ map[string]any) { b["identity"] = ident } }
	rackMod := func(f func(r map[string]any)) func(b, p map[string]any) {
		return func(_, p map[string]any) { f(p["aggregatorOrSingleRackDefinition"].(map[string]any)) }
	}
	machineMod := func(f func(m map[string]any)) func(b, p map[string]any) {
		return rackMod(func(r map[string]any) { f(r["bareMetalMachineConfigurationData"].([]map[string]any)[0]) })
	}
	kvURI := "https://kv1.vault.localhost:8443/"
	tests := []struct {
		name   string
		mods   []func(b, p map[string]any)
		code   string
		target string
	}{
		{"fail/uai-not-assigned", []func(b, p map[string]any){withIdentity(map[string]any{"type": "UserAssigned", "userAssignedIdentities": map[string]any{uaiID("uai1"): map[string]any{}}}),
			set("secretArchiveSettings", settings("UserAssignedIdentity", uaiID("uai2"), kvURI))},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.userAssignedIdentityResourceId"},
		{"fail/uai-missing-id", []func(b, p map[string]any){set("secretArchiveSettings", settings("UserAssignedIdentity", "", kvURI))},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.userAssignedIdentityResourceId"},
		{"fail/uai-id-wrong-type", []func(b, p map[string]any){set("secretArchiveSettings", settings("UserAssignedIdentity", vaultID("rg1", "kv1"), kvURI))},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.userAssignedIdentityResourceId"},
		{"fail/system-without-system-identity", []func(b, p map[string]any){set("secretArchiveSettings", settings("SystemAssignedIdentity", "", kvURI))},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.identityType"},
		{"fail/system-with-id", []func(b, p map[string]any){withIdentity(map[string]any{"type": "SystemAssigned"}),
			set("secretArchiveSettings", settings("SystemAssignedIdentity", uaiID("uai1"), kvURI))},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.userAssignedIdentityResourceId"},
		{"fail/identity-type-unknown", []func(b, p map[string]any){set("secretArchiveSettings", settings("Both", "", kvURI))},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.identityType"},
		{"fail/identity-type-missing", []func(b, p map[string]any){set("secretArchiveSettings", map[string]any{"vaultUri": kvURI})},
			"InvalidParameter", "properties.secretArchiveSettings.associatedIdentity.identityType"},
		{"fail/vault-uri-http", []func(b, p map[string]any){withIdentity(map[string]any{"type": "SystemAssigned"}),
			set("secretArchiveSettings", settings("SystemAssignedIdentity", "", "http://kv1.vault.localhost:8443/"))},
			"InvalidParameter", "properties.secretArchiveSettings.vaultUri"},
		{"fail/vault-uri-missing", []func(b, p map[string]any){set("secretArchiveSettings", map[string]any{"associatedIdentity": map[string]any{"identityType": "SystemAssignedIdentity"}})},
			"InvalidParameter", "properties.secretArchiveSettings.vaultUri"},
		{"fail/key-vault-missing", []func(b, p map[string]any){set("secretArchive", map[string]any{"keyVaultId": vaultID("rg1", "nokv"), "useKeyVault": "True"})},
			"KeyVaultNotFound", "properties.secretArchive.keyVaultId"},
		{"fail/key-vault-wrong-group", []func(b, p map[string]any){set("secretArchive", map[string]any{"keyVaultId": vaultID("rg2", "kv1"), "useKeyVault": "True"})},
			"KeyVaultNotFound", "properties.secretArchive.keyVaultId"},
		{"fail/key-vault-not-vault-id", []func(b, p map[string]any){set("secretArchive", map[string]any{"keyVaultId": uaiID("uai1"), "useKeyVault": "True"})},
			"InvalidParameter", "properties.secretArchive.keyVaultId"},
		{"fail/key-vault-id-missing", []func(b, p map[string]any){set("secretArchive", map[string]any{"useKeyVault": "True"})},
			"InvalidParameter", "properties.secretArchive.keyVaultId"},
		{"fail/use-key-vault-value", []func(b, p map[string]any){set("secretArchive", map[string]any{"keyVaultId": vaultID("rg1", "kv1"), "useKeyVault": "Yes"})},
			"InvalidParameter", "properties.secretArchive.useKeyVault"},
		{"fail/encryption-key-small", []func(b, p map[string]any){set("encryptionPublicKey", rsaPEM(t, 2048))}, "InvalidParameter", "properties.encryptionPublicKey"},
		{"fail/encryption-key-garbage", []func(b, p map[string]any){set("encryptionPublicKey", "not a pem")}, "InvalidParameter", "properties.encryptionPublicKey"},
		{"fail/no-extended-location", []func(b, p map[string]any){func(b, _ map[string]any) { delete(b, "extendedLocation") }}, "InvalidParameter", "extendedLocation"},
		{"fail/unknown-manager", []func(b, p map[string]any){func(b, _ map[string]any) {
			b["extendedLocation"] = map[string]any{"name": cmPath("nocm"), "type": "CustomLocation"}
		}}, "ClusterManagerNotFound", "extendedLocation.name"},
		{"fail/cluster-type", []func(b, p map[string]any){set("clusterType", "Huge")}, "InvalidParameter", "properties.clusterType"},
		{"fail/cluster-version", []func(b, p map[string]any){set("clusterVersion", "")}, "InvalidParameter", "properties.clusterVersion"},
		{"fail/network-fabric", []func(b, p map[string]any){set("networkFabricId", "nf1")}, "InvalidParameter", "properties.networkFabricId"},
		{"fail/no-rack", []func(b, p map[string]any){func(_, p map[string]any) { delete(p, "aggregatorOrSingleRackDefinition") }},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition"},
		{"fail/rack-serial", []func(b, p map[string]any){rackMod(func(r map[string]any) { r["rackSerialNumber"] = "" })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.rackSerialNumber"},
		{"fail/bmc-password-missing", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["bmcCredentials"] = map[string]any{"username": "root"} })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[0].bmcCredentials.password"},
		{"fail/bmc-mac", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["bmcMacAddress"] = "zz" })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[0].bmcMacAddress"},
		{"fail/bmc-endpoint-scheme", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["bmcConnectionString"] = "ipmi://10.0.0.1" })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[0].bmcConnectionString"},
		{"fail/bmc-endpoint-credentials", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["bmcConnectionString"] = "redfish+https://root:pw@10.0.0.1" })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[0].bmcConnectionString"},
		{"fail/machine-name", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["machineName"] = "bad_name" })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[0].machineName"},
		{"fail/machine-name-twice", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["machineName"] = "bmm2" })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[1].machineName"},
		{"fail/rack-slot", []func(b, p map[string]any){machineMod(func(m map[string]any) { m["rackSlot"] = 0 })},
			"InvalidParameter", "properties.aggregatorOrSingleRackDefinition.bareMetalMachineConfigurationData[0].rackSlot"},
		{"fail/appliance-endpoint", []func(b, p map[string]any){rackMod(func(r map[string]any) {
			r["storageApplianceConfigurationData"].([]map[string]any)[0]["adminEndpoint"] = "mysql://x"
		})}, "InvalidParameter", "properties.aggregatorOrSingleRackDefinition.storageApplianceConfigurationData[0].adminEndpoint"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Do("PUT", clPath("cv")+v, newClusterBody("cm1", tc.mods...))
			if r.Code != 400 || r.ErrField(t, "code") != tc.code || r.ErrField(t, "target") != tc.target {
				t.Fatalf("got %d %s", r.Code, r.Body.String())
			}
			if strings.Contains(r.Body.String(), bmcPW) || strings.Contains(r.Body.String(), "root:pw") {
				t.Fatal("the error echoes a secret")
			}
			e.Must("GET", clPath("cv")+v, nil, 404)
		})
	}
	t.Run("fail/name", func(t *testing.T) {
		r := e.Do("PUT", clPath("a")+v, newClusterBody("cm1"))
		if r.Code != 400 || r.ErrField(t, "code") != "InvalidResourceName" {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
	})
	t.Run("fail/patch-removes-identity-settings-use", func(t *testing.T) {
		e.Must("PUT", clPath("cp")+v, newClusterBody("cm1", withIdentity(map[string]any{"type": "SystemAssigned"}),
			set("secretArchiveSettings", settings("SystemAssignedIdentity", "", kvURI))), 201)
		r := e.Do("PATCH", clPath("cp")+v, map[string]any{"identity": map[string]any{"type": "None"}})
		if r.Code != 400 || r.ErrField(t, "target") != "properties.secretArchiveSettings.associatedIdentity.identityType" {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
		if id := e.Must("GET", clPath("cp")+v, nil, 200).JSON(t)["identity"].(map[string]any); id["type"] != "SystemAssigned" {
			t.Fatalf("identity changed by a refused PATCH: %v", id)
		}
	})
	t.Run("fail/patch-read-only", func(t *testing.T) {
		r := e.Do("PATCH", clPath("cp")+v, map[string]any{"properties": map[string]any{"networkFabricId": "/x"}})
		if r.Code != 400 || r.ErrField(t, "target") != "properties.networkFabricId" {
			t.Fatalf("got %d %s", r.Code, r.Body.String())
		}
	})
}

func TestClusterManagerLinkForms(t *testing.T) {
	e := newEnv(t)
	m := e.manager("cm1", nil)
	cl := props(m)["managerExtendedLocation"].(map[string]any)["name"].(string)
	tests := []struct {
		name string
		mod  func(b, p map[string]any)
	}{
		{"ok/custom-location", func(b, _ map[string]any) {
			b["extendedLocation"] = map[string]any{"name": cl, "type": "CustomLocation"}
		}},
		{"ok/manager-id", func(b, _ map[string]any) {
			b["extendedLocation"] = map[string]any{"name": cmPath("cm1"), "type": "CustomLocation"}
		}},
		{"ok/cluster-manager-id-property", func(b, p map[string]any) { delete(b, "extendedLocation"); p["clusterManagerId"] = cmPath("cm1") }},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := "cl" + string(rune('a'+i))
			got := e.Must("PUT", clPath(name)+v, newClusterBody("cm1", tc.mod), 201).JSON(t)
			if props(got)["clusterManagerId"] != cmPath("cm1") || got["extendedLocation"].(map[string]any)["name"] != cl {
				t.Fatalf("link %v %v", props(got)["clusterManagerId"], got["extendedLocation"])
			}
		})
	}
}
