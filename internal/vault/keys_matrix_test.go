package vault

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// keyMatrixOps are the key operations as a client sends them, with the data
// action and access-policy permission written from Key Vault's references
// (the built-in Crypto roles name keys/read, keys/wrap/action and
// keys/unwrap/action; access policies name wrapKey and unwrapKey).
// {n}: key name, {v}: its first version, {ct}: a ciphertext of it, {jwk}: a
// private JWK to import, {blob}: a backup of it.
var keyMatrixOps = []matrixOp{
	{"create", opKeyCreate, "create/action", "create", false, stateLive, stateLive, 200, "POST", "/keys/{n}/create", `{"kty":"RSA"}`},
	{"import", opKeyImport, "import/action", "import", false, stateLive, stateLive, 200, "PUT", "/keys/{n}", `{"key":{jwk}}`},
	{"get", opKeyGet, "read", "get", false, stateLive, stateAny, 200, "GET", "/keys/{n}", ""},
	{"getVersion", opKeyGet, "read", "get", false, stateLive, stateAny, 200, "GET", "/keys/{n}/{v}", ""},
	{"list", opKeyList, "read", "list", true, stateAny, stateAny, 200, "GET", "/keys", ""},
	{"listVersions", opKeyListVersions, "read", "list", false, stateLive, stateAny, 200, "GET", "/keys/{n}/versions", ""},
	{"update", opKeyUpdate, "update/action", "update", false, stateLive, stateLive, 200, "PATCH", "/keys/{n}", `{"tags":{"m":"x"}}`},
	{"delete", opKeyDelete, "delete", "delete", false, stateLive, stateDeleted, 200, "DELETE", "/keys/{n}", ""},
	{"getDeleted", opKeyGetDeleted, "read", "get", false, stateDeleted, stateAny, 200, "GET", "/deletedkeys/{n}", ""},
	{"listDeleted", opKeyListDeleted, "read", "list", true, stateAny, stateAny, 200, "GET", "/deletedkeys", ""},
	{"recover", opKeyRecover, "recover/action", "recover", false, stateDeleted, stateLive, 200, "POST", "/deletedkeys/{n}/recover", ""},
	{"purge", opKeyPurge, "purge/action", "purge", false, stateDeleted, stateAbsent, 204, "DELETE", "/deletedkeys/{n}", ""},
	{"backup", opKeyBackup, "backup/action", "backup", false, stateLive, stateAny, 200, "POST", "/keys/{n}/backup", ""},
	{"restore", opKeyRestore, "restore/action", "restore", true, stateAbsent, stateLive, 200, "POST", "/keys/restore", `{"value":"{blob}"}`},
	{"encrypt", opKeyEncrypt, "encrypt/action", "encrypt", false, stateLive, stateAny, 200, "POST", "/keys/{n}/{v}/encrypt", `{"alg":"RSA-OAEP","value":"AQID"}`},
	{"decrypt", opKeyDecrypt, "decrypt/action", "decrypt", false, stateLive, stateAny, 200, "POST", "/keys/{n}/{v}/decrypt", `{"alg":"RSA-OAEP-256","value":"{ct}"}`},
	{"wrapKey", opKeyWrap, "wrap/action", "wrapKey", false, stateLive, stateAny, 200, "POST", "/keys/{n}/{v}/wrapkey", `{"alg":"RSA-OAEP-256","value":"AQID"}`},
	{"unwrapKey", opKeyUnwrap, "unwrap/action", "unwrapKey", false, stateLive, stateAny, 200, "POST", "/keys/{n}/{v}/unwrapkey", `{"alg":"RSA-OAEP-256","value":"{ct}"}`},
	{"sign", opKeySign, "sign/action", "sign", false, stateLive, stateAny, 200, "POST", "/keys/{n}/{v}/sign", `{"alg":"PS256","value":"{digest}"}`},
	{"rotate", opKeyRotate, "rotate/action", "rotate", false, stateLive, stateLive, 200, "POST", "/keys/{n}/rotate", ""},
	{"verify", opKeyVerify, "verify/action", "verify", false, stateLive, stateAny, 200, "POST", "/keys/{n}/{v}/verify", `{"alg":"PS256","digest":"{digest}","value":"AQID"}`},
	{"getRotationPolicy", opKeyRotationPolicyGet, "/keyrotationpolicies/read", "getrotationpolicy", false, stateLive, stateAny, 200, "GET", "/keys/{n}/rotationpolicy", ""},
	{"setRotationPolicy", opKeyRotationPolicyUpdate, "/keyrotationpolicies/write", "setrotationpolicy", false, stateLive, stateAny, 200, "PUT", "/keys/{n}/rotationpolicy",
		`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P1Y"}}`},
}

// keyMatrix drives keyMatrixOps with an administrator that keeps each key in
// the state a call needs.
type keyMatrix struct {
	*matrixEnv
	ct  map[string]string // key name → a RSA-OAEP-256 ciphertext of its first version
	jwk string            // a private JWK to import
}

func newKeyMatrix(t *testing.T) *keyMatrix {
	t.Helper()
	for kind, spec := range keyOpSpecs {
		if !slices.ContainsFunc(keyMatrixOps, func(op matrixOp) bool { return op.kind == kind }) {
			t.Fatalf("server operation %s has no row in keyMatrixOps", spec.Name)
		}
	}
	m := newMatrixEnv(t)
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	jwk := rsaJWK(k)
	parts := []string{}
	for _, f := range []string{"kty", "n", "e", "d", "p", "q"} {
		parts = append(parts, fmt.Sprintf("%q:%q", f, jwk[f]))
	}
	return &keyMatrix{matrixEnv: m, ct: map[string]string{}, jwk: "{" + strings.Join(parts, ",") + "}"}
}

func (m *keyMatrix) prepare(t *testing.T, vault, name string) {
	t.Helper()
	w := m.mustAdmin(t, vault, "POST", "/keys/"+name+"/create", `{"kty":"RSA"}`, 200)
	b := decodeMap(t, w)
	m.ver[name] = kidVersion(t, jwkOf(t, b)["kid"])
	ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, publicOf(t, b).(*rsa.PublicKey), []byte{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.ct[name] = b64(ct)
	w = m.mustAdmin(t, vault, "POST", "/keys/"+name+"/backup", "", 200)
	m.blob[name], _ = decodeMap(t, w)["value"].(string)
}

func (m *keyMatrix) state(t *testing.T, vault, name string) string {
	t.Helper()
	w := m.serve(call{vault: vault, method: "GET", target: "/keys/" + name, p: m.admin})
	if w.Code == 200 {
		b := decodeMap(t, w)
		return fmt.Sprintf("live/%s/%v", kidVersion(t, jwkOf(t, b)["kid"]), b["tags"])
	}
	switch w = m.serve(call{vault: vault, method: "GET", target: "/deletedkeys/" + name, p: m.admin}); w.Code {
	case 200:
		return "deleted"
	case 404:
		return "absent"
	}
	t.Fatalf("admin cannot read key %s on %s: %d %s", name, vault, w.Code, w.Body)
	return ""
}

func (m *keyMatrix) keys() matrixKind { return matrixKind{"keys", "key", m.state} }

func (m *keyMatrix) ensure(t *testing.T, vault, name string, want secretState) {
	t.Helper()
	m.ensureKind(t, m.keys(), vault, name, want)
}

func (m *keyMatrix) send(t *testing.T, vault string, p *principal.Principal, name string, op matrixOp) (*httptest.ResponseRecorder, *principal.Info, string) {
	t.Helper()
	m.ensure(t, vault, name, op.needs)
	before := m.state(t, vault, name)
	digest := sha256.Sum256([]byte(name))
	r := strings.NewReplacer("{n}", name, "{v}", m.ver[name], "{ct}", m.ct[name], "{blob}", m.blob[name], "{jwk}", m.jwk, "{digest}", b64(digest[:]))
	info := &principal.Info{}
	w := m.serve(call{vault: vault, method: op.method, target: r.Replace(op.path), body: r.Replace(op.body), p: p, info: info})
	return w, info, before
}

func (m *keyMatrix) checkAllowed(t *testing.T, vault, name string, op matrixOp, w *httptest.ResponseRecorder) {
	t.Helper()
	checkAllowedKind(t, m.keys(), vault, name, op, w)
}

// TestKeyRBACMatrix sends every key operation for a principal holding one
// built-in role at one scope, with the real RBAC engine deciding.
func TestKeyRBACMatrix(t *testing.T) {
	m := newKeyMatrix(t)
	vaultID := vaultRG + "v1"
	all := opNames(keyMatrixOps)
	read := []string{"get", "getVersion", "list", "listVersions", "getDeleted", "listDeleted"}
	reader := append(slices.Clone(read), "getRotationPolicy") // vaults/*/read covers keyrotationpolicies/read
	cryptoUser := append(slices.Clone(read), "update", "backup", "encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify")
	serviceEnc := append(slices.Clone(read), "wrapKey", "unwrapKey")
	roles := []struct {
		id, name string
		grants   []string
	}{
		{authz.RoleKeyVaultAdministrator, "Key Vault Administrator", all},
		{authz.RoleKeyVaultCryptoOfficer, "Key Vault Crypto Officer", all},
		{authz.RoleKeyVaultCryptoUser, "Key Vault Crypto User", cryptoUser},
		{authz.RoleKeyVaultCryptoServiceEncUser, "Key Vault Crypto Service Encryption User", serviceEnc},
		{authz.RoleKeyVaultCryptoReleaseUser, "Key Vault Crypto Service Release User", nil},
		{authz.RoleKeyVaultReader, "Key Vault Reader", reader},
		{authz.RoleKeyVaultCertificateUser, "Key Vault Certificate User", read}, // keys/read
		{authz.RoleKeyVaultSecretsOfficer, "Key Vault Secrets Officer", nil},
		{authz.RoleKeyVaultSecretsUser, "Key Vault Secrets User", nil},
		{authz.RoleKeyVaultCertificatesOfficer, "Key Vault Certificates Officer", nil},
		{authz.RoleKeyVaultContributor, "Key Vault Contributor", nil},
		{authz.RoleOperatorNexusKeyVaultWriter, "Operator Nexus Key Vault Writer Service Role (Preview)", nil},
		{authz.RoleOwner, "Owner", nil},
	}
	scopes := []struct {
		name                   string
		scope                  string
		coversVault, coversKey bool
	}{
		{"resourceGroup", "/subscriptions/sub1/resourceGroups/RG1", true, true},
		{"vault", vaultID, true, true},
		{"key", vaultID + "/keys/{n}", false, true},
		{"siblingKey", vaultID + "/keys/{n}-other", false, false},
		// A secret of the same name is another object.
		{"secretSameName", vaultID + "/secrets/{n}", false, false},
	}
	for ri, r := range roles {
		for si, sc := range scopes {
			name := fmt.Sprintf("km%d-%d", ri, si)
			p := matrixPrincipal()
			m.assign(t, p, r.id, strings.ReplaceAll(sc.scope, "{n}", name))
			m.prepare(t, "v1", name)
			for _, op := range keyMatrixOps {
				covers, resource := sc.coversKey, vaultID+"/keys/"+name
				if op.vaultScope {
					covers, resource = sc.coversVault, vaultID
				}
				want := covers && slices.Contains(r.grants, op.name)
				t.Run(fmt.Sprintf("%s/%s/%s/%s", verdict(want), strings.ReplaceAll(r.name, " ", ""), sc.name, op.name), func(t *testing.T) {
					w, info, before := m.send(t, "v1", p, name, op)
					if want {
						m.checkAllowed(t, "v1", name, op, w)
						if !info.IsRBACAuthorized || info.OperationName != keyOpSpecs[op.kind].Name {
							t.Fatalf("audit info %+v", info)
						}
						return
					}
					checkRBACRefusal(t, w, "keys", op, resource)
					checkUnchangedKind(t, m.keys(), "v1", name, before)
				})
			}
		}
	}
}

// TestKeyAccessPolicyMatrix: a vault using access policies grants key
// operations by key permissions only.
func TestKeyAccessPolicyMatrix(t *testing.T) {
	m := newKeyMatrix(t)
	v := newVault("ap", tenant1)
	v.EnableRBACAuthorization = false
	v.AccessPolicies = []authz.AccessPolicy{{TenantID: tenant1, ObjectID: m.admin.ObjectID, Permissions: authz.Permissions{Keys: []string{"all"}}}}
	every := []string{"get", "list", "create", "import", "update", "delete", "recover", "backup", "restore", "purge",
		"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "rotate", "getrotationpolicy", "setrotationpolicy"}
	sets := []struct {
		name   string
		perms  authz.Permissions
		grants []string
	}{
		{"get-list", authz.Permissions{Keys: []string{"get", "list"}}, []string{"get", "list"}},
		// A service's customer-managed key: get, wrapKey, unwrapKey.
		{"cmk", authz.Permissions{Keys: []string{"get", "wrapkey", "UnwrapKey"}}, []string{"get", "wrapKey", "unwrapKey"}},
		{"crypto", authz.Permissions{Keys: []string{"encrypt", "decrypt", "sign", "verify"}}, []string{"encrypt", "decrypt", "sign", "verify"}},
		{"lifecycle", authz.Permissions{Keys: []string{"create", "import", "update", "delete", "recover", "purge", "backup", "restore", "rotate"}},
			[]string{"create", "import", "update", "delete", "recover", "purge", "backup", "restore", "rotate"}},
		{"rotation-policy", authz.Permissions{Keys: []string{"GetRotationPolicy", "setrotationpolicy"}}, []string{"getrotationpolicy", "setrotationpolicy"}},
		{"all", authz.Permissions{Keys: []string{"all"}}, every},
		{"secrets-and-certificates-only", authz.Permissions{Secrets: []string{"all"}, Certificates: []string{"all"}}, nil},
	}
	callers := make([]*principal.Principal, len(sets))
	for i, s := range sets {
		callers[i] = matrixPrincipal()
		v.AccessPolicies = append(v.AccessPolicies, authz.AccessPolicy{TenantID: tenant1, ObjectID: callers[i].ObjectID, Permissions: s.perms})
	}
	m.dir.put(v)
	for i, s := range sets {
		name := fmt.Sprintf("kap%d", i)
		m.prepare(t, "ap", name)
		for _, op := range keyMatrixOps {
			want := slices.Contains(s.grants, op.perm)
			t.Run(fmt.Sprintf("%s/%s/%s", verdict(want), s.name, op.name), func(t *testing.T) {
				w, info, before := m.send(t, "ap", callers[i], name, op)
				if !info.IsAccessPolicy || info.IsRBACAuthorized {
					t.Fatalf("audit info %+v", info)
				}
				if want {
					m.checkAllowed(t, "ap", name, op, w)
					return
				}
				checkPolicyRefusal(t, w, "keys", op)
				checkUnchangedKind(t, m.keys(), "ap", name, before)
			})
		}
	}
}
