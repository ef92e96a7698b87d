package vault

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// secretState is where a secret name stands in a vault.
type secretState int

const (
	stateAny secretState = iota
	stateLive
	stateDeleted
	stateAbsent
)

// matrixOp is one secret operation as a client sends it, with what the
// matrices expect of it. The columns are written from Key Vault's REST and
// RBAC references, not copied from opSpecs, so a server change that moves
// an operation's data action, permission or scope fails here.
type matrixOp struct {
	name       string
	kind       opKind      // the server's operation: every one must have a row
	action     string      // RBAC data action, after "Microsoft.KeyVault/vaults/secrets/" (or, from a leading "/", after ".../vaults")
	perm       string      // access-policy permission
	vaultScope bool        // names no single secret, so it is authorized at the vault
	needs      secretState // state the secret must be in for the call to succeed
	after      secretState // state after a successful call (stateAny: as before)
	status     int         // success status
	method     string
	path       string // {n}: the secret's name, {v}: its first version
	body       string // {blob}: a backup of the secret
}

var matrixOps = []matrixOp{
	{"set", opSet, "setSecret/action", "set", false, stateLive, stateLive, 200, "PUT", "/secrets/{n}", `{"value":"matrix"}`},
	{"get", opGet, "getSecret/action", "get", false, stateLive, stateAny, 200, "GET", "/secrets/{n}", ""},
	{"getVersion", opGet, "getSecret/action", "get", false, stateLive, stateAny, 200, "GET", "/secrets/{n}/{v}", ""},
	{"list", opList, "readMetadata/action", "list", true, stateAny, stateAny, 200, "GET", "/secrets", ""},
	{"listVersions", opListVersions, "readMetadata/action", "list", false, stateLive, stateAny, 200, "GET", "/secrets/{n}/versions", ""},
	{"update", opUpdate, "update/action", "set", false, stateLive, stateLive, 200, "PATCH", "/secrets/{n}", `{"contentType":"matrix"}`},
	{"delete", opDelete, "delete", "delete", false, stateLive, stateDeleted, 200, "DELETE", "/secrets/{n}", ""},
	{"getDeleted", opGetDeleted, "readMetadata/action", "list", false, stateDeleted, stateAny, 200, "GET", "/deletedsecrets/{n}", ""},
	{"listDeleted", opListDeleted, "readMetadata/action", "list", true, stateAny, stateAny, 200, "GET", "/deletedsecrets", ""},
	{"recover", opRecover, "recover/action", "recover", false, stateDeleted, stateLive, 200, "POST", "/deletedsecrets/{n}/recover", ""},
	{"purge", opPurge, "purge/action", "purge", false, stateDeleted, stateAbsent, 204, "DELETE", "/deletedsecrets/{n}", ""},
	{"backup", opBackup, "backup/action", "backup", false, stateLive, stateAny, 200, "POST", "/secrets/{n}/backup", ""},
	// The blob, not the path, names the secret.
	{"restore", opRestore, "restore/action", "restore", true, stateAbsent, stateLive, 200, "POST", "/secrets/restore", `{"value":"{blob}"}`},
}

// matrixEnv is one data plane with the real RBAC engine as its decider and
// an administrator that puts secrets into the state each call needs.
type matrixEnv struct {
	*env
	eng   *authz.Engine
	admin *principal.Principal
	ver   map[string]string // secret name → the admin's first version
	blob  map[string]string // secret name → the admin's backup of it
}

func newMatrixEnv(t *testing.T) *matrixEnv {
	t.Helper()
	checkMatrixCoversServer(t)
	var eng *authz.Engine
	e := newEnv(t, func(c *Config) {
		eng = authz.New(c.Store, c.Clock)
		c.Decider = eng
		// The fake clock never refills the buckets and the matrix sends
		// thousands of requests.
		c.Throttle = Throttle{Transactions: -1, Creates: -1}
	})
	m := &matrixEnv{env: e, eng: eng, admin: matrixPrincipal(), ver: map[string]string{}, blob: map[string]string{}}
	m.assign(t, m.admin, authz.RoleKeyVaultAdministrator, vaultRG+"v1")
	return m
}

// checkMatrixCoversServer fails when the server has an operation without a
// matrix row.
func checkMatrixCoversServer(t *testing.T) {
	t.Helper()
	for kind, spec := range opSpecs {
		if !slices.ContainsFunc(matrixOps, func(op matrixOp) bool { return op.kind == kind }) {
			t.Fatalf("server operation %s has no row in matrixOps", spec.Name)
		}
	}
}

// matrixPrincipal is a new caller; assignments need a GUID object id.
func matrixPrincipal() *principal.Principal {
	p := newPrincipal(tenant1, uuid.NewString())
	p.Kind = principal.ServicePrincipal
	return p
}

func (m *matrixEnv) assign(t *testing.T, p *principal.Principal, roleID, scope string) {
	t.Helper()
	_, _, err := m.eng.CreateAssignment(t.Context(), authz.Assignment{
		Name: uuid.NewString(), Scope: scope, RoleDefinitionID: roleID,
		PrincipalID: p.ObjectID, PrincipalType: authz.PrincipalTypeFor(p.Kind),
	})
	if err != nil {
		t.Fatalf("assign %s at %s: %v", roleID, scope, err)
	}
}

// mustAdmin sends a call as the administrator and requires status.
func (m *matrixEnv) mustAdmin(t *testing.T, vault, method, target, body string, status int) *httptest.ResponseRecorder {
	t.Helper()
	w := m.serve(call{vault: vault, method: method, target: target, body: body, p: m.admin})
	if w.Code != status {
		t.Fatalf("admin %s %s on %s: %d, want %d: %s", method, target, vault, w.Code, status, w.Body)
	}
	return w
}

// prepare creates the secret and keeps its first version and a backup, from
// which ensure can always bring it back.
func (m *matrixEnv) prepare(t *testing.T, vault, name string) {
	t.Helper()
	w := m.mustAdmin(t, vault, "PUT", "/secrets/"+name, `{"value":"first"}`, 200)
	m.ver[name] = versionOf(t, decodeMap(t, w))
	w = m.mustAdmin(t, vault, "POST", "/secrets/"+name+"/backup", "", 200)
	m.blob[name], _ = decodeMap(t, w)["value"].(string)
}

// state fingerprints the secret as the administrator sees it: a refused call
// must leave it exactly as it was (same latest version and content type).
func (m *matrixEnv) state(t *testing.T, vault, name string) string {
	t.Helper()
	w := m.serve(call{vault: vault, method: "GET", target: "/secrets/" + name, p: m.admin})
	if w.Code == 200 {
		b := decodeMap(t, w)
		return fmt.Sprintf("live/%s/%v", versionOf(t, b), b["contentType"])
	}
	switch w = m.serve(call{vault: vault, method: "GET", target: "/deletedsecrets/" + name, p: m.admin}); w.Code {
	case 200:
		return "deleted"
	case 404:
		return "absent"
	}
	t.Fatalf("admin cannot read %s on %s: %d %s", name, vault, w.Code, w.Body)
	return ""
}

func stateOf(fingerprint string) secretState {
	switch {
	case strings.HasPrefix(fingerprint, "live/"):
		return stateLive
	case fingerprint == "deleted":
		return stateDeleted
	}
	return stateAbsent
}

// matrixKind is what the matrices need to drive one kind of object
// through its states.
type matrixKind struct {
	coll  string                                        // its collection: "secrets", "keys"
	noun  string                                        // in messages: "secret", "key"
	state func(t *testing.T, vault, name string) string // its fingerprint
}

func (m *matrixEnv) secrets() matrixKind { return matrixKind{"secrets", "secret", m.state} }

// ensureKind moves the object to want with the administrator's help.
func (m *matrixEnv) ensureKind(t *testing.T, k matrixKind, vault, name string, want secretState) {
	t.Helper()
	for range 3 {
		cur := stateOf(k.state(t, vault, name))
		if want == stateAny || cur == want {
			return
		}
		switch {
		case cur == stateLive:
			m.mustAdmin(t, vault, "DELETE", "/"+k.coll+"/"+name, "", 200)
		case cur == stateDeleted && want == stateAbsent:
			m.mustAdmin(t, vault, "DELETE", "/deleted"+k.coll+"/"+name, "", 204)
		case cur == stateDeleted:
			m.mustAdmin(t, vault, "POST", "/deleted"+k.coll+"/"+name+"/recover", "", 200)
		default:
			m.mustAdmin(t, vault, "POST", "/"+k.coll+"/restore", `{"value":"`+m.blob[name]+`"}`, 200)
		}
	}
	t.Fatalf("%s %s on %s did not reach state %d", k.noun, name, vault, want)
}

// ensure moves the secret to want with the administrator's help.
func (m *matrixEnv) ensure(t *testing.T, vault, name string, want secretState) {
	t.Helper()
	m.ensureKind(t, m.secrets(), vault, name, want)
}

// send puts the secret into the state op needs, then sends op as p. It
// returns the fingerprint from before the call.
func (m *matrixEnv) send(t *testing.T, vault string, p *principal.Principal, name string, op matrixOp) (*httptest.ResponseRecorder, *principal.Info, string) {
	t.Helper()
	m.ensure(t, vault, name, op.needs)
	before := m.state(t, vault, name)
	target := strings.NewReplacer("{n}", name, "{v}", m.ver[name]).Replace(op.path)
	info := &principal.Info{}
	w := m.serve(call{vault: vault, method: op.method, target: target, body: strings.ReplaceAll(op.body, "{blob}", m.blob[name]), p: p, info: info})
	return w, info, before
}

// checkAllowedKind asserts that op ran and left the object where it should.
func checkAllowedKind(t *testing.T, k matrixKind, vault, name string, op matrixOp, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != op.status {
		t.Fatalf("status %d, want %d: %s", w.Code, op.status, w.Body)
	}
	if op.after != stateAny {
		if got := k.state(t, vault, name); stateOf(got) != op.after {
			t.Fatalf("after %s the %s is %s, want state %d", op.name, k.noun, got, op.after)
		}
	}
}

// checkUnchangedKind asserts that a refused call left the object as it was.
func checkUnchangedKind(t *testing.T, k matrixKind, vault, name, before string) {
	t.Helper()
	if got := k.state(t, vault, name); got != before {
		t.Fatalf("refused call changed the %s: %s → %s", k.noun, before, got)
	}
}

// checkAllowed asserts that op ran and left the secret where it should.
func (m *matrixEnv) checkAllowed(t *testing.T, vault, name string, op matrixOp, w *httptest.ResponseRecorder) {
	t.Helper()
	checkAllowedKind(t, m.secrets(), vault, name, op, w)
}

// checkUnchanged asserts that a refused call left the secret as it was.
func (m *matrixEnv) checkUnchanged(t *testing.T, vault, name, before string) {
	t.Helper()
	checkUnchangedKind(t, m.secrets(), vault, name, before)
}

// checkRBACRefusal asserts that RBAC refused op, naming its data action in
// the collection coll and the resource; it returns the message.
func checkRBACRefusal(t *testing.T, w *httptest.ResponseRecorder, coll string, op matrixOp, resource string) string {
	t.Helper()
	if w.Code != 403 {
		t.Fatalf("status %d, want 403: %s", w.Code, w.Body)
	}
	code, inner, msg := errCode(t, w)
	action := "Microsoft.KeyVault/vaults/" + coll + "/" + op.action
	if strings.HasPrefix(op.action, "/") {
		action = "Microsoft.KeyVault/vaults" + op.action
	}
	if code != "Forbidden" || inner != innerRBAC ||
		!strings.Contains(msg, "Action: '"+action+"'") ||
		!strings.Contains(msg, "Resource: '"+strings.ToLower(resource)+"'") {
		t.Fatalf("refusal %s %s %q", code, inner, msg)
	}
	return msg
}

// checkPolicyRefusal asserts that the access policies of vault "ap"
// refused op for want of its permission on kind; it returns the message.
func checkPolicyRefusal(t *testing.T, w *httptest.ResponseRecorder, kind string, op matrixOp) string {
	t.Helper()
	if w.Code != 403 {
		t.Fatalf("status %d, want 403: %s", w.Code, w.Body)
	}
	code, inner, msg := errCode(t, w)
	if code != "Forbidden" || inner != innerAccessPolicy ||
		!strings.Contains(msg, "' does not have "+kind+" "+op.perm+" permission on key vault 'ap;location=westeurope'.") {
		t.Fatalf("refusal %s %s %q", code, inner, msg)
	}
	return msg
}

func opNames(ops []matrixOp) []string {
	var out []string
	for _, op := range ops {
		out = append(out, op.name)
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "fail"
}

// TestRBACMatrix sends every secret operation through the data plane for a
// principal holding one built-in role at one scope, with the real RBAC
// engine deciding. What each role grants is written below from its Azure
// data actions (see builtin.go); a scope grants an operation when it is the
// vault or above, or the secret itself for operations on that secret.
func TestRBACMatrix(t *testing.T) {
	m := newMatrixEnv(t)
	vaultID := vaultRG + "v1"

	all := opNames(matrixOps)
	// getSecret/action and readMetadata/action (deleted secrets' metadata
	// is read with readMetadata, as in an access policy's "list").
	readValues := []string{"get", "getVersion", "list", "listVersions", "getDeleted", "listDeleted"}
	readMetadata := []string{"list", "listVersions", "getDeleted", "listDeleted"}
	type roleRow struct {
		id, name string
		grants   []string // operations the role's data actions allow
	}
	roles := []roleRow{
		{authz.RoleKeyVaultAdministrator, "Key Vault Administrator", all},     // vaults/*
		{authz.RoleKeyVaultSecretsOfficer, "Key Vault Secrets Officer", all},  // vaults/secrets/*
		{authz.RoleKeyVaultSecretsUser, "Key Vault Secrets User", readValues}, // getSecret, readMetadata
		// The secret half of a certificate is read with the secret actions.
		{authz.RoleKeyVaultCertificateUser, "Key Vault Certificate User", readValues},
		{authz.RoleKeyVaultReader, "Key Vault Reader", readMetadata}, // readMetadata, vaults/*/read
		// Key and certificate roles carry no secret data action.
		{authz.RoleKeyVaultCryptoOfficer, "Key Vault Crypto Officer", nil},
		{authz.RoleKeyVaultCryptoUser, "Key Vault Crypto User", nil},
		{authz.RoleKeyVaultCryptoServiceEncUser, "Key Vault Crypto Service Encryption User", nil},
		{authz.RoleKeyVaultCryptoReleaseUser, "Key Vault Crypto Service Release User", nil},
		{authz.RoleKeyVaultCertificatesOfficer, "Key Vault Certificates Officer", nil},
		// Manages vaults (Microsoft.KeyVault/* actions), never their data.
		{authz.RoleKeyVaultContributor, "Key Vault Contributor", nil},
		// setSecret only: the platform writes credentials it may not read back.
		{authz.RoleOperatorNexusKeyVaultWriter, "Operator Nexus Key Vault Writer Service Role (Preview)", []string{"set"}},
		// "*" in actions grants no data action.
		{authz.RoleOwner, "Owner", nil},
		{authz.RoleContributor, "Contributor", nil},
		{authz.RoleReader, "Reader", nil},
	}
	for _, def := range authz.BuiltinRoles() {
		if strings.HasPrefix(def.RoleName, "Key Vault") &&
			!slices.ContainsFunc(roles, func(r roleRow) bool { return r.id == def.ID }) {
			t.Fatalf("built-in role %q has no row in the matrix", def.RoleName)
		}
	}

	scopes := []struct {
		name                      string
		scope                     string // {n}: the secret's name
		coversVault, coversSecret bool
	}{
		{"subscription", "/subscriptions/sub1", true, true},
		{"resourceGroup", "/subscriptions/sub1/resourceGroups/RG1", true, true},
		{"vault", vaultID, true, true},
		{"secret", vaultID + "/secrets/{n}", false, true},
		// Controls: a neighbour's assignment must grant nothing here.
		{"siblingSecret", vaultID + "/secrets/{n}-other", false, false},
		{"otherVault", vaultRG + "v2", false, false},
	}

	for ri, r := range roles {
		if def, ok := authz.BuiltinRole(r.id); !ok || def.RoleName != r.name {
			t.Fatalf("built-in %s is %q (%v), want %q", r.id, def.RoleName, ok, r.name)
		}
		for si, sc := range scopes {
			name := fmt.Sprintf("m%d-%d", ri, si)
			p := matrixPrincipal()
			m.assign(t, p, r.id, strings.ReplaceAll(sc.scope, "{n}", name))
			m.prepare(t, "v1", name)
			for _, op := range matrixOps {
				covers := sc.coversSecret
				resource := vaultID + "/secrets/" + name
				if op.vaultScope {
					covers, resource = sc.coversVault, vaultID
				}
				want := covers && slices.Contains(r.grants, op.name)
				t.Run(fmt.Sprintf("%s/%s/%s/%s", verdict(want), strings.ReplaceAll(r.name, " ", ""), sc.name, op.name), func(t *testing.T) {
					w, info, before := m.send(t, "v1", p, name, op)
					if want {
						m.checkAllowed(t, "v1", name, op, w)
						if !info.IsRBACAuthorized {
							t.Fatalf("audit info %+v", info)
						}
						return
					}
					if msg := checkRBACRefusal(t, w, "secrets", op, resource); !strings.Contains(msg, ";oid="+p.ObjectID+";") {
						t.Fatalf("refusal %q", msg)
					}
					if info.IsRBACAuthorized {
						t.Fatalf("audit info %+v", info)
					}
					m.checkUnchanged(t, "v1", name, before)
				})
			}
		}
	}

	// An RBAC vault ignores access policies, even one granting everything.
	v := newVault("v1", tenant1)
	policyOnly := matrixPrincipal()
	v.AccessPolicies = []authz.AccessPolicy{{TenantID: tenant1, ObjectID: policyOnly.ObjectID, Permissions: authz.Permissions{Secrets: []string{"all"}}}}
	m.dir.put(v)
	m.prepare(t, "v1", "m-policy-only")
	for _, op := range matrixOps {
		t.Run("fail/accessPolicyOnly/"+op.name, func(t *testing.T) {
			w, _, before := m.send(t, "v1", policyOnly, "m-policy-only", op)
			if w.Code != 403 {
				t.Fatalf("status %d, want 403: %s", w.Code, w.Body)
			}
			if code, inner, _ := errCode(t, w); code != "Forbidden" || inner != innerRBAC {
				t.Fatalf("refusal %s %s", code, inner)
			}
			m.checkUnchanged(t, "v1", "m-policy-only", before)
		})
	}
}

// TestAccessPolicyMatrix sends every secret operation to a vault using
// access policies (enableRbacAuthorization false), for principals holding
// one permission set each.
func TestAccessPolicyMatrix(t *testing.T) {
	m := newMatrixEnv(t)
	v := newVault("ap", tenant1)
	v.EnableRBACAuthorization = false
	v.AccessPolicies = []authz.AccessPolicy{{TenantID: tenant1, ObjectID: m.admin.ObjectID, Permissions: authz.Permissions{Secrets: []string{"all"}}}}

	allPerms := authz.PolicyPermissionNames(authz.KindSecrets)
	sets := []struct {
		name   string
		perms  authz.Permissions
		rbac   string   // a role assigned at the subscription as well
		grants []string // permissions expected to apply
	}{
		// The Stack Edge device identity: it stores and reads its own secrets.
		{"get-set", authz.Permissions{Secrets: []string{"get", "set"}}, "", []string{"get", "set"}},
		{"get-set-any-case", authz.Permissions{Secrets: []string{"Get", "SET"}}, "", []string{"get", "set"}},
		{"get-list", authz.Permissions{Secrets: []string{"get", "list"}}, "", []string{"get", "list"}},
		{"list", authz.Permissions{Secrets: []string{"list"}}, "", []string{"list"}},
		{"set", authz.Permissions{Secrets: []string{"set"}}, "", []string{"set"}},
		{"delete-recover-purge", authz.Permissions{Secrets: []string{"delete", "recover", "purge"}}, "", []string{"delete", "recover", "purge"}},
		{"backup-restore", authz.Permissions{Secrets: []string{"backup", "restore"}}, "", []string{"backup", "restore"}},
		{"all", authz.Permissions{Secrets: []string{"all"}}, "", allPerms},
		{"every-name", authz.Permissions{Secrets: allPerms}, "", allPerms},
		{"none", authz.Permissions{}, "", nil},
		// Other kinds' permissions never reach secrets.
		{"keys-and-certificates-only", authz.Permissions{Keys: []string{"all"}, Certificates: []string{"all"}}, "", nil},
		// An access-policy vault ignores RBAC, even Key Vault Administrator.
		{"rbac-admin-no-policy", authz.Permissions{}, authz.RoleKeyVaultAdministrator, nil},
	}
	callers := make([]*principal.Principal, len(sets))
	for i, s := range sets {
		callers[i] = matrixPrincipal()
		v.AccessPolicies = append(v.AccessPolicies, authz.AccessPolicy{TenantID: tenant1, ObjectID: callers[i].ObjectID, Permissions: s.perms})
		if s.rbac != "" {
			m.assign(t, callers[i], s.rbac, "/subscriptions/sub1")
		}
	}
	m.dir.put(v)

	for i, s := range sets {
		name := fmt.Sprintf("ap%d", i)
		m.prepare(t, "ap", name)
		p := callers[i]
		for _, op := range matrixOps {
			want := slices.Contains(s.grants, op.perm)
			t.Run(fmt.Sprintf("%s/%s/%s", verdict(want), s.name, op.name), func(t *testing.T) {
				w, info, before := m.send(t, "ap", p, name, op)
				if !info.IsAccessPolicy || info.IsRBACAuthorized {
					t.Fatalf("audit info %+v", info)
				}
				if want {
					m.checkAllowed(t, "ap", name, op, w)
					return
				}
				if msg := checkPolicyRefusal(t, w, "secrets", op); !strings.Contains(msg, ";oid="+p.ObjectID+";") {
					t.Fatalf("refusal %q", msg)
				}
				m.checkUnchanged(t, "ap", name, before)
			})
		}
	}
}
