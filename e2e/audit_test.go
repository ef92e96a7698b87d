package e2e

import (
	"database/sql"
	"encoding/json"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

type auditEvent struct {
	ResourceID       string `json:"resourceId"`
	OperationName    string `json:"operationName"`
	OperationVersion string `json:"operationVersion"`
	ResultType       string `json:"resultType"`
	ResultSignature  string `json:"resultSignature"`
	CallerIPAddress  string `json:"callerIpAddress"`
	CorrelationID    string `json:"correlationId"`
	Identity         *struct {
		Claim struct {
			OID string `json:"oid"`
			TID string `json:"tid"`
		} `json:"claim"`
	} `json:"identity"`
	Properties struct {
		ID             string `json:"id"`
		RequestURI     string `json:"requestUri"`
		HTTPStatusCode int    `json:"httpStatusCode"`
		TLSVersion     string `json:"tlsVersion"`
	} `json:"properties"`
}

// auditEvents pages through the audit query API for a resource.
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
	}
	return all
}

// do sends one request tagged with a client request id (the audit
// correlationId) and returns that id.
func (w *world) do(t *testing.T, method, u, token string, body any) (string, int) {
	t.Helper()
	id := "e2e-" + randHex(8)
	req, _ := newJSONRequest(method, u, token, body)
	req.Header.Set("x-ms-client-request-id", id)
	resp, err := w.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return id, resp.StatusCode
}

// Every data-plane and control-plane operation kind, refused ones included,
// leaves exactly one audit event with the right fields and caller; no secret
// value reaches the audit log, the logs, the shipped blobs or error messages;
// and `keyhaven audit verify` finds an edited event.
func TestAuditEveryOperation(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	s := w.srv
	kh := cliSession(t, s)
	// A diagnostic setting ships this vault's events to a storage account.
	kh("storage", "account", "create", "-n", "auditlogs"+randHex(3), "-g", "rg1", "--sku", "Standard_ZRS", "-o", "none")
	acct := strings.TrimSpace(kh("storage", "account", "list", "-g", "rg1", "--query", "[0].name", "-o", "tsv"))
	kh("monitor", "diagnostic-settings", "create", "-n", "toStorage", "--resource", w.vaultID, "--storage-account", acct,
		"--logs", `[{"category":"AuditEvent","enabled":true}]`, "-o", "none")

	secretValue := "AUDIT-SECRET-" + randHex(8)
	vu := s.VaultURL(w.vault)
	type op struct {
		name, method, url string
		token             string
		body              any
		wantOp            string
		wantStatus        int
	}
	ops := []op{
		{"set", "PUT", vu + "secrets/a?api-version=7.5", w.kvToken, map[string]any{"value": secretValue}, "SecretSet", 200},
		{"get", "GET", vu + "secrets/a?api-version=7.5", w.kvToken, nil, "SecretGet", 200},
		{"list", "GET", vu + "secrets?api-version=7.5", w.kvToken, nil, "SecretList", 200},
		{"versions", "GET", vu + "secrets/a/versions?api-version=7.5", w.kvToken, nil, "SecretListVersions", 200},
		{"update", "PATCH", vu + "secrets/a/?api-version=7.5", w.kvToken, map[string]any{"contentType": "x"}, "SecretUpdate", 200},
		{"backup", "POST", vu + "secrets/a/backup?api-version=7.5", w.kvToken, nil, "SecretBackup", 200},
		{"delete", "DELETE", vu + "secrets/a?api-version=7.5", w.kvToken, nil, "SecretDelete", 200},
		{"get-deleted", "GET", vu + "deletedsecrets/a?api-version=7.5", w.kvToken, nil, "SecretGetDeleted", 200},
		{"list-deleted", "GET", vu + "deletedsecrets?api-version=7.5", w.kvToken, nil, "SecretListDeleted", 200},
		{"recover", "POST", vu + "deletedsecrets/a/recover?api-version=7.5", w.kvToken, nil, "SecretRecover", 200},
		{"refused-no-token", "GET", vu + "secrets/a?api-version=7.5", "", nil, "", 401},
		{"refused-not-found", "GET", vu + "secrets/missing?api-version=7.5", w.kvToken, nil, "SecretGet", 404},
		{"vault-get", "GET", s.BaseURL + w.vaultID + "?api-version=2023-07-01", w.armToken, nil, "VaultGet", 200},
		{"vault-patch", "PATCH", s.BaseURL + w.vaultID + "?api-version=2023-07-01", w.armToken, map[string]any{"tags": map[string]string{"a": "b"}}, "VaultPatch", 200},
	}
	ids := map[string]op{}
	for _, o := range ops {
		id, code := w.do(t, o.method, o.url, o.token, o.body)
		if code != o.wantStatus {
			t.Fatalf("%s: status %d, want %d", o.name, code, o.wantStatus)
		}
		ids[id] = o
	}
	// Refused by authorization: a principal with no role on the vault.
	var sp struct{ AppID, Password string }
	mustJSON(t, kh("ad", "sp", "create-for-rbac", "-n", "nobody", "--query", "{AppID:appId,Password:password}"), &sp)
	spTok := s.ClientSecretToken(t, sp.AppID, sp.Password, s.VaultAudience())
	forbiddenID, code := w.do(t, "GET", vu+"secrets/a?api-version=7.5", spTok, nil)
	if code != 403 {
		t.Fatalf("no-role get: %d", code)
	}

	events := auditEvents(t, w, w.vaultID)
	byCorr := map[string][]auditEvent{}
	for _, e := range events {
		byCorr[e.CorrelationID] = append(byCorr[e.CorrelationID], e)
	}
	for id, o := range ids {
		t.Run(o.name, func(t *testing.T) {
			got := byCorr[id]
			if len(got) != 1 {
				t.Fatalf("%d events for correlation %s, want exactly 1", len(got), id)
			}
			e := got[0]
			if o.wantOp != "" && e.OperationName != o.wantOp {
				t.Fatalf("operationName %q, want %q", e.OperationName, o.wantOp)
			}
			if e.Properties.HTTPStatusCode != o.wantStatus || e.CallerIPAddress != "127.0.0.1" || e.Properties.TLSVersion == "" {
				t.Fatalf("fields: %+v", e)
			}
			if !strings.EqualFold(e.ResourceID, w.vaultID) {
				t.Fatalf("resourceId %q", e.ResourceID)
			}
			if o.token != "" {
				if e.Identity == nil || e.Identity.Claim.TID != s.Admin.TenantID || e.Identity.Claim.OID == "" {
					t.Fatalf("identity: %+v", e.Identity)
				}
				if o.wantStatus < 300 && e.ResultType != "Success" {
					t.Fatalf("resultType %q", e.ResultType)
				}
			}
		})
	}
	if got := byCorr[forbiddenID]; len(got) != 1 || got[0].Properties.HTTPStatusCode != 403 || got[0].ResultSignature != "Forbidden" {
		t.Fatalf("forbidden request events: %+v", got)
	}

	// No secret value anywhere: audit records (via the API), server logs, and
	// the storage account's shipped blobs.
	raw, _ := json.Marshal(events)
	if strings.Contains(string(raw), secretValue) || strings.Contains(s.Logs(), secretValue) {
		t.Fatal("secret value found in audit events or logs")
	}
	waitFor(t, func() bool {
		out, err := s.CLI(t, "storage", "blob", "list", "--account-name", acct, "--container-name", "insights-logs-auditevent", "-o", "tsv")
		return err == nil && strings.Contains(out, "PT1H.json")
	})
	blobs := kh("storage", "blob", "list", "--account-name", acct, "--container-name", "insights-logs-auditevent", "--query", "[].name", "-o", "tsv")
	blobName := strings.TrimSpace(strings.Split(blobs, "\n")[0])
	if !strings.Contains(blobName, "resourceId="+strings.ToUpper(w.vaultID)) {
		t.Fatalf("blob name %q does not follow Azure's layout", blobName)
	}
	content := kh("storage", "blob", "download", "--account-name", acct, "--container-name", "insights-logs-auditevent", "--name", blobName)
	if !strings.Contains(content, `"operationName":"SecretSet"`) || strings.Contains(content, secretValue) {
		t.Fatalf("shipped blob: secret present or events missing:\n%.500s", content)
	}

	// Operators' views: the log and the insights summary.
	logTable := kh("monitor", "log", "list", "--resource", w.vaultID, "--operation", "SecretGet", "-o", "table")
	if !strings.Contains(logTable, "SecretGet") || strings.Contains(logTable, "SecretSet") {
		t.Fatalf("monitor log list --operation SecretGet:\n%s", logTable)
	}
	var ins map[string]any
	mustJSON(t, kh("monitor", "insights", "show", "--resource", w.vaultID), &ins)
	if b, _ := json.Marshal(ins); !strings.Contains(string(b), "SecretSet") || !strings.Contains(string(b), "Forbidden") {
		t.Fatalf("insights lack operations or failures: %s", b)
	}

	// The chain verifies; an edited event is found and named.
	if out := kh("audit", "verify", "--resource-id", w.vaultID); !strings.Contains(out, `"ok": true`) {
		t.Fatalf("verify before tampering:\n%s", out)
	}
	s.Stop()
	editAuditEvent(t, filepath.Join(s.DataDir, "keyhaven.db"))
	s.Restart()
	out, err := s.CLI(t, "audit", "verify", "--resource-id", w.vaultID)
	if err == nil || !strings.Contains(out, "edited") {
		t.Fatalf("verify after tampering: %v\n%s", err, out)
	}
}

// editAuditEvent changes one stored event's status code in place.
func editAuditEvent(t *testing.T, dbPath string) {
	t.Helper()
	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT key, value FROM kv WHERE CAST(key AS TEXT) LIKE 'audit/events/%'")
	if err != nil {
		t.Fatal(err)
	}
	var key, val []byte
	found := false
	for rows.Next() {
		if err := rows.Scan(&key, &val); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(val), `"SecretGet"`) {
			found = true
			break
		}
	}
	rows.Close()
	if !found {
		t.Fatal("no SecretGet event stored")
	}
	edited := strings.Replace(string(val), `"httpStatusCode":200`, `"httpStatusCode":201`, 1)
	if edited == string(val) {
		t.Fatalf("could not edit event: %s", val)
	}
	if _, err := db.Exec("UPDATE kv SET value = ? WHERE key = ?", []byte(edited), key); err != nil {
		t.Fatal(err)
	}
}
