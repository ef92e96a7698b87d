package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/audit"
	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

type auditEvent struct {
	ResourceID       string      `json:"resourceId"`
	OperationName    string      `json:"operationName"`
	OperationVersion string      `json:"operationVersion"`
	ResultType       string      `json:"resultType"`
	ResultSignature  string      `json:"resultSignature"`
	DurationMs       *int64      `json:"durationMs"`
	CallerIPAddress  string      `json:"callerIpAddress"`
	CorrelationID    string      `json:"correlationId"`
	Identity         *auditIdent `json:"identity"`
	Properties       struct {
		ID               string `json:"id"`
		RequestURI       string `json:"requestUri"`
		HTTPStatusCode   int    `json:"httpStatusCode"`
		TLSVersion       string `json:"tlsVersion"`
		IsRBACAuthorized bool   `json:"isRbacAuthorized"`
		ValueHMAC        string `json:"valueHmac"`
	} `json:"properties"`
}

type auditIdent struct {
	Claim auditClaim `json:"claim"`
}

type auditClaim struct {
	OID      string `json:"oid"`
	AppID    string `json:"appid"`
	UPN      string `json:"upn"`
	TID      string `json:"tid"`
	XMSMIRID string `json:"xms_mirid"`
}

// tokenClaims reads the claims an event's identity must repeat from the
// access token the request carried.
func tokenClaims(t *testing.T, token string) *auditClaim {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatal("not a JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c auditClaim
	if err := json.Unmarshal(b, &c); err != nil || c.OID == "" || c.TID == "" || c.AppID == "" {
		t.Fatalf("token claims %+v: %v", c, err)
	}
	return &c
}

// auditEvents pages through the audit query API for a resource ("" for
// every resource).
func auditEvents(t *testing.T, w *world, resourceID string) []auditEvent {
	t.Helper()
	var all []auditEvent
	next := w.srv.BaseURL + "/audit/events?resourceId=" + url.QueryEscape(resourceID) + "&top=500"
	for next != "" {
		code, body := w.srv.Do(t, "GET", next, w.armToken, nil)
		mustStatus(t, 200, code, body)
		var page struct {
			Value    []auditEvent `json:"value"`
			NextLink string       `json:"nextLink"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Value...)
		next = page.NextLink
		if next != "" && strings.HasPrefix(next, "/") {
			next = w.srv.BaseURL + next
		}
	}
	return all
}

// auditCase is one request of TestAuditEveryOperation and the event it must
// leave.
type auditCase struct {
	name          string
	method, url   string
	token         string
	body          any        // JSON body
	form          url.Values // form body (token endpoint)
	header        http.Header
	wantStatus    int
	wantOp        string
	wantSignature string
	wantResource  string // resourceId, case-insensitive; "" for none
	wantID        string // properties.id, case-insensitive; "" for none; a trailing "*" matches a prefix
	wantRBAC      bool
	wantClaims    *auditClaim // nil: an anonymous request, no identity
	wantHMAC      string      // properties.valueHmac; "" for none

	corr string // filled in when sent
}

// send makes the request of c with a fresh client request id and returns
// the response body. The managed-identity endpoint is plain HTTP on its own
// port, which the server's client (it dials the main port) cannot reach.
func (c *auditCase) send(t *testing.T, s *khtest.Server) []byte {
	t.Helper()
	var rd io.Reader
	ctype := ""
	switch {
	case c.form != nil:
		rd, ctype = strings.NewReader(c.form.Encode()), "application/x-www-form-urlencoded"
	case c.body != nil:
		b, _ := json.Marshal(c.body)
		rd, ctype = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequest(c.method, c.url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range c.header {
		req.Header[k] = v
	}
	c.corr = "e2e-" + randHex(8)
	req.Header.Set("x-ms-client-request-id", c.corr)
	client := s.Client()
	if strings.HasPrefix(c.url, "http://") {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != c.wantStatus {
		t.Fatalf("%s: status %d, want %d: %.300s", c.name, resp.StatusCode, c.wantStatus, body)
	}
	return body
}

// wantRequestURI is what the event's requestUri must be: the URL without any
// query parameter but api-version.
func wantRequestURI(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := u.Scheme + "://" + u.Host + u.EscapedPath()
	if v := u.Query().Get("api-version"); v != "" {
		out += "?api-version=" + v
	}
	return out
}

// Every data-plane (secrets, keys, certificates) and control-plane operation
// kind, refused ones included, and the sign-in endpoints leave exactly one
// audit event with the right fields and caller (a user, a service
// principal, a managed identity); a SecretSet event identifies its value by
// the HMAC `keyhaven audit hash` computes and no event holds the value; the
// storage sink receives the events of the vault with a diagnostic setting
// and none of a vault without.
func TestAuditEveryOperation(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	s := w.srv
	kh := cliSession(t, s)
	sub := s.Admin.SubscriptionID
	rg := "/subscriptions/" + sub + "/resourceGroups/rg1"
	// A diagnostic setting ships the main vault's events to a storage account.
	acct := "auditlogs" + randHex(3)
	acctID := rg + "/providers/Microsoft.Storage/storageAccounts/" + acct
	kh("storage", "account", "create", "-n", acct, "-g", "rg1", "--sku", "Standard_ZRS", "-o", "none")
	kh("monitor", "diagnostic-settings", "create", "-n", "toStorage", "--resource", w.vaultID, "--storage-account", acct,
		"--logs", `[{"category":"AuditEvent","enabled":true}]`, "-o", "none")
	// A service principal with no role anywhere: refused on both planes.
	var sp struct{ AppID, Password string }
	mustJSON(t, kh("ad", "sp", "create-for-rbac", "-n", "nobody", "--query", "{AppID:appId,Password:password}"), &sp)
	spKV := s.ClientSecretToken(t, sp.AppID, sp.Password, s.VaultAudience())
	spARM := s.ClientSecretToken(t, sp.AppID, sp.Password, s.BaseURL)

	secretValue := "AUDIT-SECRET-" + randHex(8)
	otherValue := "AUDIT-OTHER-" + randHex(8)
	hashOf := func(v string) string {
		h := strings.TrimSpace(kh("audit", "hash", "--value", v, "--query", "hash", "-o", "tsv"))
		if !strings.HasPrefix(h, "hmac-sha256:") {
			t.Fatalf("audit hash: %q", h)
		}
		return h
	}
	secretHMAC, otherHMAC := hashOf(secretValue), hashOf(otherValue)

	admin := tokenClaims(t, w.armToken)
	if admin.UPN == "" {
		t.Fatal("the administrator's token has no upn")
	}
	kvAdmin := tokenClaims(t, w.kvToken)
	spClaims := tokenClaims(t, spKV)
	vu := s.VaultURL(w.vault)
	vaultURI := strings.TrimSuffix(vu, "/")
	vaultID := w.vaultID
	other := "v" + randHex(4)
	otherID := rg + "/providers/Microsoft.KeyVault/vaults/" + other
	doomed := "v" + randHex(4)
	doomedID := rg + "/providers/Microsoft.KeyVault/vaults/" + doomed
	vaultBody := map[string]any{"location": "local", "properties": map[string]any{"tenantId": s.Admin.TenantID,
		"sku": map[string]string{"family": "A", "name": "standard"}, "enableRbacAuthorization": true}}
	code, body := s.Do(t, "PUT", s.BaseURL+doomedID+"?api-version=2023-07-01", w.armToken, vaultBody)
	mustStatus(t, 201, code, body)
	uaiID := rg + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai1"
	raID := vaultID + "/providers/Microsoft.Authorization/roleAssignments/" + newUUID()
	kvOp := func(name, method, path string, body any, status int, op, sig string, id string) auditCase {
		return auditCase{name: name, method: method, url: vu + path + "?api-version=7.5", token: w.kvToken, body: body,
			wantStatus: status, wantOp: op, wantSignature: sig, wantResource: vaultID, wantID: id, wantRBAC: true, wantClaims: kvAdmin}
	}
	armOp := func(name, method, id string, api string, body any, status int, op, sig string) auditCase {
		return auditCase{name: name, method: method, url: s.BaseURL + id + "?api-version=" + api, token: w.armToken, body: body,
			wantStatus: status, wantOp: op, wantSignature: sig, wantResource: id, wantID: id, wantRBAC: true, wantClaims: admin}
	}

	var sent []auditCase
	run := func(c auditCase) []byte {
		t.Helper()
		b := c.send(t, s)
		sent = append(sent, c)
		return b
	}
	// The data plane, as a user.
	setCase := kvOp("ok/secret-set", "PUT", "secrets/a", map[string]any{"value": secretValue}, 200, "SecretSet", "OK", vaultURI+"/secrets/a/*")
	setCase.wantHMAC = secretHMAC
	for _, c := range []auditCase{
		setCase,
		kvOp("ok/secret-get", "GET", "secrets/a", nil, 200, "SecretGet", "OK", vaultURI+"/secrets/a/*"),
		kvOp("ok/secret-list", "GET", "secrets", nil, 200, "SecretList", "OK", vaultURI+"/secrets"),
		kvOp("ok/secret-list-versions", "GET", "secrets/a/versions", nil, 200, "SecretListVersions", "OK", vaultURI+"/secrets/a"),
		kvOp("ok/secret-update", "PATCH", "secrets/a/", map[string]any{"contentType": "x"}, 200, "SecretUpdate", "OK", vaultURI+"/secrets/a/*"),
		kvOp("ok/secret-backup", "POST", "secrets/a/backup", nil, 200, "SecretBackup", "OK", vaultURI+"/secrets/a"),
		// A deleted secret's id is its secret id, as in Azure (recoveryId
		// names the deleted object).
		kvOp("ok/secret-delete", "DELETE", "secrets/a", nil, 200, "SecretDelete", "OK", vaultURI+"/secrets/a/*"),
		kvOp("ok/secret-get-deleted", "GET", "deletedsecrets/a", nil, 200, "SecretGetDeleted", "OK", vaultURI+"/secrets/a/*"),
		kvOp("ok/secret-list-deleted", "GET", "deletedsecrets", nil, 200, "SecretListDeleted", "OK", vaultURI+"/deletedsecrets"),
		kvOp("ok/secret-recover", "POST", "deletedsecrets/a/recover", nil, 200, "SecretRecover", "OK", vaultURI+"/secrets/a*"),
	} {
		run(c)
	}
	// Purge and restore, on a second secret.
	code, body = w.setSecret(t, "b", secretValue)
	mustStatus(t, 200, code, body)
	code, backup := s.Do(t, "POST", vu+"secrets/b/backup?api-version=7.5", w.kvToken, nil)
	mustStatus(t, 200, code, backup)
	var blob struct{ Value string }
	mustJSON(t, string(backup), &blob)
	code, body = s.Do(t, "DELETE", vu+"secrets/b?api-version=7.5", w.kvToken, nil)
	mustStatus(t, 200, code, body)
	run(kvOp("ok/secret-purge", "DELETE", "deletedsecrets/b", nil, 204, "SecretPurge", "NoContent", vaultURI+"/secrets/b*"))
	run(kvOp("ok/secret-restore", "POST", "secrets/restore", map[string]string{"value": blob.Value}, 200, "SecretRestore", "OK", vaultURI+"/secrets/b/*"))
	// Keys: every operation kind, the crypto ones with real inputs.
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kid := vaultURI + "/keys/k"
	b64u := base64.RawURLEncoding.EncodeToString
	digest := sha256.Sum256([]byte("audit"))
	valueOf := func(b []byte) string {
		var r struct {
			Value string `json:"value"`
		}
		mustJSON(t, string(b), &r)
		return r.Value
	}
	run(kvOp("ok/key-create", "POST", "keys/k/create", map[string]any{"kty": "RSA", "key_size": 2048}, 200, "KeyCreate", "OK", kid+"/*"))
	for _, c := range []auditCase{
		kvOp("ok/key-get", "GET", "keys/k", nil, 200, "KeyGet", "OK", kid+"/*"),
		kvOp("ok/key-list", "GET", "keys", nil, 200, "KeyList", "OK", vaultURI+"/keys"),
		kvOp("ok/key-list-versions", "GET", "keys/k/versions", nil, 200, "KeyListVersions", "OK", kid),
		kvOp("ok/key-update", "PATCH", "keys/k/", map[string]any{"tags": map[string]string{"t": "1"}}, 200, "KeyUpdate", "OK", kid+"/*"),
		kvOp("ok/key-rotation-policy-update", "PUT", "keys/k/rotationpolicy", json.RawMessage(`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}]}`),
			200, "KeyRotationPolicyUpdate", "OK", kid),
		kvOp("ok/key-rotation-policy-get", "GET", "keys/k/rotationpolicy", nil, 200, "KeyRotationPolicyGet", "OK", kid),
		kvOp("ok/key-rotate", "POST", "keys/k/rotate", nil, 200, "KeyRotate", "OK", kid+"/*"),
	} {
		run(c)
	}
	sig := valueOf(run(kvOp("ok/key-sign", "POST", "keys/k/sign", map[string]string{"alg": "RS256", "value": b64u(digest[:])}, 200, "KeySign", "OK", kid+"/*")))
	run(kvOp("ok/key-verify", "POST", "keys/k/verify", map[string]string{"alg": "RS256", "digest": b64u(digest[:]), "value": sig}, 200, "KeyVerify", "OK", kid+"/*"))
	ct := valueOf(run(kvOp("ok/key-encrypt", "POST", "keys/k/encrypt", map[string]string{"alg": "RSA-OAEP-256", "value": b64u([]byte("audit"))}, 200, "KeyEncrypt", "OK", kid+"/*")))
	run(kvOp("ok/key-decrypt", "POST", "keys/k/decrypt", map[string]string{"alg": "RSA-OAEP-256", "value": ct}, 200, "KeyDecrypt", "OK", kid+"/*"))
	wrapped := valueOf(run(kvOp("ok/key-wrap", "POST", "keys/k/wrapkey", map[string]string{"alg": "RSA-OAEP-256", "value": b64u(digest[:])}, 200, "KeyWrap", "OK", kid+"/*")))
	run(kvOp("ok/key-unwrap", "POST", "keys/k/unwrapkey", map[string]string{"alg": "RSA-OAEP-256", "value": wrapped}, 200, "KeyUnwrap", "OK", kid+"/*"))
	var keyBlob struct{ Value string }
	mustJSON(t, string(run(kvOp("ok/key-backup", "POST", "keys/k/backup", nil, 200, "KeyBackup", "OK", kid))), &keyBlob)
	for _, c := range []auditCase{
		kvOp("ok/key-delete", "DELETE", "keys/k", nil, 200, "KeyDelete", "OK", kid+"/*"),
		kvOp("ok/key-get-deleted", "GET", "deletedkeys/k", nil, 200, "KeyGetDeleted", "OK", kid+"/*"),
		kvOp("ok/key-list-deleted", "GET", "deletedkeys", nil, 200, "KeyListDeleted", "OK", vaultURI+"/deletedkeys"),
		kvOp("ok/key-purge", "DELETE", "deletedkeys/k", nil, 204, "KeyPurge", "NoContent", kid+"*"),
		kvOp("ok/key-restore", "POST", "keys/restore", map[string]string{"value": keyBlob.Value}, 200, "KeyRestore", "OK", kid+"/*"),
		kvOp("ok/key-import", "PUT", "keys/imported", map[string]any{"key": ecJWK(t, ecKey)}, 200, "KeyImport", "OK", vaultURI+"/keys/imported/*"),
		kvOp("fail/key-import-bad-kty", "PUT", "keys/refused", map[string]any{"key": map[string]string{"kty": "oct-HSM"}}, 400, "KeyImport", "BadRequest", vaultURI+"/keys/refused"),
		kvOp("fail/key-get-not-found", "GET", "keys/missing", nil, 404, "KeyGet", "NotFound", vaultURI+"/keys/missing"),
	} {
		run(c)
	}
	// Certificates.
	cid := vaultURI + "/certificates/c"
	run(kvOp("ok/certificate-create", "POST", "certificates/c/create", json.RawMessage(`{"policy":{"issuer":{"name":"Self"},"x509_props":{"subject":"CN=audit.example.com"}}}`),
		202, "CertificateCreate", "Accepted", cid+"*"))
	var certBlob struct{ Value string }
	for _, c := range []auditCase{
		kvOp("ok/certificate-get", "GET", "certificates/c", nil, 200, "CertificateGet", "OK", cid+"/*"),
		kvOp("ok/certificate-list", "GET", "certificates", nil, 200, "CertificateList", "OK", vaultURI+"/certificates"),
		kvOp("ok/certificate-list-versions", "GET", "certificates/c/versions", nil, 200, "CertificateListVersions", "OK", cid),
		kvOp("ok/certificate-update", "PATCH", "certificates/c/", map[string]any{"tags": map[string]string{"t": "1"}}, 200, "CertificateUpdate", "OK", cid+"/*"),
		kvOp("ok/certificate-pending-get", "GET", "certificates/c/pending", nil, 200, "CertificatePendingGet", "OK", cid+"*"),
		kvOp("ok/certificate-policy-get", "GET", "certificates/c/policy", nil, 200, "CertificatePolicyGet", "OK", cid+"*"),
		kvOp("ok/certificate-policy-update", "PATCH", "certificates/c/policy", map[string]any{"x509_props": map[string]any{"validity_months": 6}}, 200, "CertificatePolicyUpdate", "OK", cid+"*"),
	} {
		run(c)
	}
	mustJSON(t, string(run(kvOp("ok/certificate-backup", "POST", "certificates/c/backup", nil, 200, "CertificateBackup", "OK", cid))), &certBlob)
	for _, c := range []auditCase{
		kvOp("ok/certificate-delete", "DELETE", "certificates/c", nil, 200, "CertificateDelete", "OK", cid+"*"),
		kvOp("ok/certificate-get-deleted", "GET", "deletedcertificates/c", nil, 200, "CertificateGetDeleted", "OK", cid+"*"),
		kvOp("ok/certificate-list-deleted", "GET", "deletedcertificates", nil, 200, "CertificateListDeleted", "OK", vaultURI+"/deletedcertificates"),
		kvOp("ok/certificate-recover", "POST", "deletedcertificates/c/recover", nil, 200, "CertificateRecover", "OK", cid+"*"),
		kvOp("ok/certificate-import", "POST", "certificates/i/import", map[string]string{"value": keyAndCertPEM(t, ecKey, selfSigned(t, ecKey, "import.example.com", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)))}, 200, "CertificateImport", "OK", vaultURI+"/certificates/i/*"),
		kvOp("fail/certificate-import-not-a-certificate", "POST", "certificates/j/import", map[string]string{"value": "bm90IGEgY2VydA=="}, 400, "CertificateImport", "BadRequest", vaultURI+"/certificates/j"),
	} {
		run(c)
	}

	// Refusals on the data plane.
	// An anonymous request is challenged, and still audited under its
	// operation and object.
	anon := kvOp("fail/secret-get-no-token", "GET", "secrets/a", nil, 401, "SecretGet", "Unauthorized", vaultURI+"/secrets/a")
	anon.token, anon.wantClaims, anon.wantRBAC = "", nil, false
	run(anon)
	noRole := kvOp("fail/secret-get-no-role", "GET", "secrets/a", nil, 403, "SecretGet", "Forbidden", vaultURI+"/secrets/a")
	noRole.token, noRole.wantClaims, noRole.wantRBAC = spKV, spClaims, false
	run(noRole)
	run(kvOp("fail/secret-get-not-found", "GET", "secrets/missing", nil, 404, "SecretGet", "NotFound", vaultURI+"/secrets/missing"))

	// The control plane: vaults, then one operation of every other provider.
	run(armOp("ok/vault-get", "GET", vaultID, "2023-07-01", nil, 200, "VaultGet", "OK"))
	run(armOp("ok/vault-patch", "PATCH", vaultID, "2023-07-01", map[string]any{"tags": map[string]string{"a": "b"}}, 200, "VaultPatch", "OK"))
	run(armOp("ok/vault-put", "PUT", otherID, "2024-11-01", vaultBody, 201, "VaultPut", "Created"))
	run(armOp("ok/vault-list", "GET", rg+"/providers/Microsoft.KeyVault/vaults", "2023-07-01", nil, 200, "VaultList", "OK"))
	run(armOp("ok/vault-delete", "DELETE", doomedID, "2023-07-01", nil, 200, "VaultDelete", "OK"))
	// The vault without a diagnostic setting has data-plane events too.
	otherSet := kvOp("ok/secret-set-other-vault", "PUT", "secrets/c", map[string]any{"value": otherValue}, 200, "SecretSet", "OK", strings.TrimSuffix(s.VaultURL(other), "/")+"/secrets/c/*")
	otherSet.url, otherSet.wantResource, otherSet.wantHMAC = s.VaultURL(other)+"secrets/c?api-version=7.5", otherID, otherHMAC
	run(otherSet)
	run(armOp("ok/storage-account-get", "GET", acctID, "2023-01-01", nil, 200, "Microsoft.Storage/storageAccounts/read", "OK"))
	run(armOp("ok/diagnostic-setting-get", "GET", vaultID+"/providers/Microsoft.Insights/diagnosticSettings/toStorage", "2021-05-01-preview", nil, 200,
		"Microsoft.Insights/diagnosticSettings/read", "OK"))
	run(armOp("ok/networkcloud-cluster-manager-list", "GET", rg+"/providers/Microsoft.NetworkCloud/clusterManagers", "2025-02-01", nil, 200,
		"Microsoft.NetworkCloud/clusterManagers/read", "OK"))
	var uai struct {
		Properties struct{ ClientID, PrincipalID string }
	}
	mustJSON(t, string(run(armOp("ok/identity-put", "PUT", uaiID, "2023-01-31", map[string]any{"location": "local"}, 201,
		"Microsoft.ManagedIdentity/userAssignedIdentities/write", "Created"))), &uai)
	issue := armOp("ok/identity-issue-workload-secret", "POST", uaiID+"/issueWorkloadSecret", "2023-01-31", map[string]any{}, 200,
		"Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", "OK")
	issue.wantResource, issue.wantID = uaiID, uaiID
	var ws struct{ IdentityEndpoint, IdentityHeader string }
	mustJSON(t, string(run(issue)), &ws)
	run(armOp("ok/role-assignment-put", "PUT", raID, "2022-04-01", map[string]any{"properties": map[string]string{
		"roleDefinitionId": "/subscriptions/" + sub + "/providers/Microsoft.Authorization/roleDefinitions/4633458b-17de-408a-b874-0445c86b69e6",
		"principalId":      uai.Properties.PrincipalID, "principalType": "ServicePrincipal"}}, 201,
		"Microsoft.Authorization/roleAssignments/write", "Created"))
	refused := armOp("fail/storage-account-get-no-role", "GET", acctID, "2023-01-01", nil, 403, "Microsoft.Storage/storageAccounts/read", "Forbidden")
	refused.token, refused.wantClaims, refused.wantRBAC = spARM, tokenClaims(t, spARM), false
	if b := run(refused); errCode(b) != "AuthorizationFailed" {
		t.Fatalf("refused control-plane call: %s", b)
	}
	// A refused vault call keeps Key Vault's operation name.
	refusedVault := armOp("fail/vault-get-no-role", "GET", vaultID, "2023-07-01", nil, 403, "VaultGet", "Forbidden")
	refusedVault.token, refusedVault.wantClaims, refusedVault.wantRBAC = spARM, tokenClaims(t, spARM), false
	if b := run(refusedVault); errCode(b) != "AuthorizationFailed" {
		t.Fatalf("refused vault call: %s", b)
	}

	// Sign-ins: the token endpoint and the managed-identity endpoint (no
	// caller token, so no identity), then a call with the identity's token.
	run(auditCase{name: "ok/token-issue", method: "POST", url: s.BaseURL + "/" + s.Admin.TenantID + "/oauth2/v2.0/token",
		form:       url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {sp.Password}, "scope": {s.VaultAudience() + "/.default"}},
		wantStatus: 200, wantOp: "TokenIssue", wantSignature: "OK"})
	run(auditCase{name: "fail/token-issue-bad-secret", method: "POST", url: s.BaseURL + "/" + s.Admin.TenantID + "/oauth2/v2.0/token",
		form:       url.Values{"grant_type": {"client_credentials"}, "client_id": {sp.AppID}, "client_secret": {"wrong-" + randHex(8)}, "scope": {s.VaultAudience() + "/.default"}},
		wantStatus: 401, wantOp: "TokenIssue", wantSignature: "Unauthorized"})
	miURL := ws.IdentityEndpoint + "?" + url.Values{"api-version": {"2019-08-01"}, "resource": {s.VaultAudience()}, "client_id": {uai.Properties.ClientID}}.Encode()
	var miTok struct {
		AccessToken string `json:"access_token"`
	}
	mustJSON(t, string(run(auditCase{name: "ok/managed-identity-token-issue", method: "GET", url: miURL,
		header: http.Header{"X-Identity-Header": {ws.IdentityHeader}}, wantStatus: 200, wantOp: "ManagedIdentityTokenIssue", wantSignature: "OK"})), &miTok)
	miClaims := tokenClaims(t, miTok.AccessToken)
	if !strings.EqualFold(miClaims.XMSMIRID, uaiID) {
		t.Fatalf("managed identity token xms_mirid %q, want %q", miClaims.XMSMIRID, uaiID)
	}
	miGet := kvOp("ok/secret-get-managed-identity", "GET", "secrets/a", nil, 200, "SecretGet", "OK", vaultURI+"/secrets/a/*")
	miGet.token, miGet.wantClaims = miTok.AccessToken, miClaims
	run(miGet)

	events := auditEvents(t, w, "")
	byCorr := map[string][]auditEvent{}
	for _, e := range events {
		byCorr[e.CorrelationID] = append(byCorr[e.CorrelationID], e)
	}
	for _, c := range sent {
		t.Run(c.name, func(t *testing.T) {
			got := byCorr[c.corr]
			if len(got) != 1 {
				t.Fatalf("%d events for correlation %s, want exactly 1", len(got), c.corr)
			}
			e := got[0]
			api := ""
			if u, err := url.Parse(c.url); err == nil {
				api = u.Query().Get("api-version")
			}
			wantResult := "Success"
			if c.wantStatus >= 400 {
				wantResult = "Failure"
			}
			checks := []struct {
				field     string
				got, want any
			}{
				{"operationName", e.OperationName, c.wantOp},
				{"operationVersion", e.OperationVersion, api},
				{"resultType", e.ResultType, wantResult},
				{"resultSignature", e.ResultSignature, c.wantSignature},
				{"properties.httpStatusCode", e.Properties.HTTPStatusCode, c.wantStatus},
				{"callerIpAddress", e.CallerIPAddress, "127.0.0.1"},
				{"durationMs present", e.DurationMs != nil && *e.DurationMs >= 0, true},
				{"resourceId", strings.ToLower(e.ResourceID), strings.ToLower(c.wantResource)},
				{"properties.requestUri", e.Properties.RequestURI, wantRequestURI(t, c.url)},
				{"properties.isRbacAuthorized", e.Properties.IsRBACAuthorized, c.wantRBAC},
				{"properties.tlsVersion set", e.Properties.TLSVersion != "", strings.HasPrefix(c.url, "https://")},
				{"properties.valueHmac", e.Properties.ValueHMAC, c.wantHMAC},
			}
			for _, ck := range checks {
				if ck.got != ck.want {
					t.Errorf("%s = %v, want %v", ck.field, ck.got, ck.want)
				}
			}
			if prefix, ok := strings.CutSuffix(c.wantID, "*"); ok {
				if !strings.HasPrefix(strings.ToLower(e.Properties.ID), strings.ToLower(prefix)) {
					t.Errorf("properties.id = %q, want a prefix %q", e.Properties.ID, prefix)
				}
			} else if !strings.EqualFold(e.Properties.ID, c.wantID) {
				t.Errorf("properties.id = %q, want %q", e.Properties.ID, c.wantID)
			}
			switch {
			case c.wantClaims == nil && e.Identity != nil:
				t.Errorf("identity %+v for a request without a token", e.Identity.Claim)
			case c.wantClaims != nil && e.Identity == nil:
				t.Errorf("no identity, want %+v", *c.wantClaims)
			case c.wantClaims != nil && !strings.EqualFold(e.Identity.Claim.XMSMIRID, c.wantClaims.XMSMIRID):
				t.Errorf("identity.claim.xms_mirid %q, want %q", e.Identity.Claim.XMSMIRID, c.wantClaims.XMSMIRID)
			case c.wantClaims != nil:
				got, want := e.Identity.Claim, *c.wantClaims
				got.XMSMIRID, want.XMSMIRID = "", ""
				if got != want {
					t.Errorf("identity.claim %+v, want %+v", got, want)
				}
			}
		})
	}

	// No secret value and no workload secret anywhere: audit records (via
	// the API) and server logs.
	raw, _ := json.Marshal(events)
	for _, v := range []string{secretValue, otherValue, ws.IdentityHeader, sp.Password} {
		if strings.Contains(string(raw), v) || strings.Contains(s.Logs(), v) {
			t.Fatalf("a secret (%d chars) found in audit events or logs", len(v))
		}
	}

	// The sink: the main vault's events arrive (up to the last request made
	// after the other vault's); the other vault, with no diagnostic
	// setting, has no blob at all.
	list := func() []string {
		out, err := s.CLI(t, "storage", "blob", "list", "--account-name", acct, "--container-name", "insights-logs-auditevent", "--query", "[].name", "-o", "tsv")
		if err != nil {
			return nil
		}
		return strings.Fields(out)
	}
	mainPrefix := "resourceId=" + strings.ToUpper(vaultID) + "/"
	shipped := ""
	waitFor(t, func() bool {
		shipped = ""
		for _, n := range list() {
			if strings.HasPrefix(n, mainPrefix) && strings.HasSuffix(n, "/PT1H.json") {
				shipped += kh("storage", "blob", "download", "--account-name", acct, "--container-name", "insights-logs-auditevent", "--name", n)
			}
		}
		return strings.Contains(shipped, miGet.corr)
	})
	if !strings.Contains(shipped, `"operationName":"SecretSet"`) || !strings.Contains(shipped, secretHMAC) {
		t.Fatalf("shipped blobs lack the SecretSet event or its HMAC:\n%.500s", shipped)
	}
	if strings.Contains(shipped, secretValue) {
		t.Fatal("a shipped blob holds the secret value")
	}
	for _, n := range list() {
		if strings.HasPrefix(strings.ToUpper(n), "RESOURCEID="+strings.ToUpper(otherID)+"/") {
			t.Fatalf("blob %q shipped for a vault without a diagnostic setting", n)
		}
	}

	// Operators' views: the log and the insights summary.
	logTable := kh("monitor", "log", "list", "--resource", vaultID, "--operation", "SecretGet", "-o", "table")
	if !strings.Contains(logTable, "SecretGet") || strings.Contains(logTable, "SecretSet") {
		t.Fatalf("monitor log list --operation SecretGet:\n%s", logTable)
	}
	var ins map[string]any
	mustJSON(t, kh("monitor", "insights", "show", "--resource", vaultID), &ins)
	if b, _ := json.Marshal(ins); !strings.Contains(string(b), "SecretSet") || !strings.Contains(string(b), "Forbidden") {
		t.Fatalf("insights lack operations or failures: %s", b)
	}
}

func newUUID() string {
	h := randHex(16)
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:]
}

// `keyhaven audit verify` finds an edited, a removed, a reordered event and a
// removed last event, each in its own vault's stream, and names the kind and
// position; an untouched stream still verifies.
func TestAuditVerifyFindsTampering(t *testing.T) {
	eventKey := func(stream string, seq int) string { return fmt.Sprintf("audit/events/%s/%020d", stream, seq) }
	tests := []struct {
		name     string
		tamper   func(t *testing.T, db *rawStore, stream string) (seq int64) // where verify must point
		wantKind string                                                      // "" for a stream that verifies
	}{
		{name: "ok/untouched", tamper: func(*testing.T, *rawStore, string) int64 { return 0 }},
		{name: "fail/edited", wantKind: "edited", tamper: func(t *testing.T, db *rawStore, stream string) int64 {
			v := db.get(t, eventKey(stream, 2))
			edited := bytes.Replace(v, []byte(`"httpStatusCode":200`), []byte(`"httpStatusCode":201`), 1)
			if bytes.Equal(edited, v) {
				t.Fatalf("could not edit event: %s", v)
			}
			db.put(t, eventKey(stream, 2), edited)
			return 2
		}},
		{name: "fail/removed", wantKind: "missing", tamper: func(t *testing.T, db *rawStore, stream string) int64 {
			db.del(t, eventKey(stream, 2))
			return 2
		}},
		{name: "fail/reordered", wantKind: "reordered", tamper: func(t *testing.T, db *rawStore, stream string) int64 {
			a, b := db.get(t, eventKey(stream, 2)), db.get(t, eventKey(stream, 3))
			db.put(t, eventKey(stream, 2), b)
			db.put(t, eventKey(stream, 3), a)
			return 2
		}},
		{name: "fail/last-removed", wantKind: "missing", tamper: func(t *testing.T, db *rawStore, stream string) int64 {
			keys := db.keys(t, "audit/events/"+stream+"/")
			last := keys[len(keys)-1]
			db.del(t, last)
			var seq int64
			if _, err := fmt.Sscanf(last[strings.LastIndex(last, "/")+1:], "%d", &seq); err != nil {
				t.Fatal(err)
			}
			return seq
		}},
	}
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			opts := b.opts(t)
			w := newWorld(t, opts)
			s := w.srv
			kh := cliSession(t, s)
			// One vault per case, each with a stream of five events
			// (VaultPut and four secret sets).
			ids := make([]string, len(tests))
			for i := range tests {
				name := "v" + randHex(4)
				ids[i] = "/subscriptions/" + s.Admin.SubscriptionID + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/" + name
				code, body := w.put(t, s.BaseURL+ids[i]+"?api-version=2023-07-01", map[string]any{"location": "local",
					"properties": map[string]any{"tenantId": s.Admin.TenantID, "sku": map[string]string{"family": "A", "name": "standard"}, "enableRbacAuthorization": true}})
				mustStatus(t, 201, code, body)
				for j := 0; j < 4; j++ {
					code, body := s.Do(t, "PUT", s.VaultURL(name)+"secrets/s?api-version=7.5", w.kvToken, map[string]any{"value": randHex(8)})
					mustStatus(t, 200, code, body)
				}
				if out := kh("audit", "verify", "--resource-id", ids[i]); !strings.Contains(out, `"ok": true`) {
					t.Fatalf("verify before tampering:\n%s", out)
				}
			}
			s.Stop()
			db := openRaw(t, opts, s.DataDir)
			seqs := make([]int64, len(tests))
			for i, tc := range tests {
				seqs[i] = tc.tamper(t, db, audit.StreamOf(ids[i]))
			}
			s.Restart()
			for i, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					out, err := s.CLI(t, "audit", "verify", "--resource-id", ids[i])
					var rep struct {
						OK       bool `json:"ok"`
						Problems []struct {
							ResourceID string `json:"resourceId"`
							Seq        int64  `json:"seq"`
							Kind       string `json:"kind"`
						} `json:"problems"`
					}
					if derr := json.NewDecoder(strings.NewReader(out)).Decode(&rep); derr != nil {
						t.Fatalf("verify output is not a report: %v\n%s", derr, out)
					}
					if tc.wantKind == "" {
						if err != nil || !rep.OK || len(rep.Problems) != 0 {
							t.Fatalf("untouched stream does not verify: %v\n%s", err, out)
						}
						return
					}
					if err == nil || rep.OK || len(rep.Problems) == 0 {
						t.Fatalf("verify after tampering succeeded: %v\n%s", err, out)
					}
					p := rep.Problems[0]
					if p.Kind != tc.wantKind || p.Seq != seqs[i] || !strings.EqualFold(p.ResourceID, ids[i]) {
						t.Fatalf("first problem %+v, want kind %s at seq %d of %s\n%s", p, tc.wantKind, seqs[i], ids[i], out)
					}
				})
			}
		})
	}
}

// ecJWK is k as an importable JWK (private scalar included).
func ecJWK(t *testing.T, k *ecdsa.PrivateKey) map[string]string {
	t.Helper()
	d, err := k.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]string{"kty": "EC", "crv": "P-256", "x": b64(pub[1:33]), "y": b64(pub[33:]), "d": b64(d)}
}
