package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// What clients may wait for an operation whose replica died: its lease
// (--operation-lease-ttl 4s here, renewed every third of it) lapses, then
// the next sweep (every half lease on each replica) fails it.
const interruptedWithin = 4*time.Second + 2*time.Second + 10*time.Second

// Two replicas share one PostgreSQL schema. A resource-group delete started
// on B stalls inside its work and B is SIGKILLed: polling the operation
// through A ends in Failed (OperationInterrupted) within the lease TTL plus
// a sweep interval, never InProgress forever, and re-issuing the delete on
// A finishes it.
func TestReplicaDeathFailsItsOperations(t *testing.T) {
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is unset: the PostgreSQL replica test needs a shared database")
	}
	opts := backends(t)[1].opts(t) // a fresh PostgreSQL schema
	opts.DataDir = t.TempDir()     // shared: root key, TLS material, admin credential
	opts.Args = append(opts.Args, "--operation-lease-ttl", "4s")
	schema := ""
	for i, a := range opts.Args {
		if a == "--store-schema" && i+1 < len(opts.Args) {
			schema = opts.Args[i+1]
		}
	}
	a := khtest.Start(t, opts)
	b := khtest.Start(t, opts)
	tok := b.AdminToken(t, b.BaseURL)
	tokA := a.AdminToken(t, a.BaseURL) // each replica issues for its own base URL

	group := "/subscriptions/" + a.Admin.SubscriptionID + "/resourcegroups/doomed"
	code, body := b.Do(t, "PUT", b.BaseURL+group+"?api-version=2021-04-01", tok, map[string]any{"location": "local"})
	mustStatus(t, 201, code, body)
	vault := "v" + randHex(4)
	code, body = b.Do(t, "PUT", b.BaseURL+group+"/providers/Microsoft.KeyVault/vaults/"+vault+"?api-version=2023-07-01", tok, map[string]any{
		"location": "local",
		"properties": map[string]any{"tenantId": b.Admin.TenantID, "sku": map[string]string{"family": "A", "name": "standard"},
			"enableRbacAuthorization": true},
	})
	mustStatus(t, 201, code, body)

	// Stall B's work without any hook in the binary: hold a row lock on
	// the vault's record (keyvault's store key), which the group delete's
	// cascade must update; B blocks on it until it dies.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	lock, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Rollback(ctx)
	tag, err := lock.Exec(ctx, `SELECT key FROM `+pgx.Identifier{schema, "kv"}.Sanitize()+` WHERE key = $1 FOR UPDATE`, "rp/keyvault/names/"+vault)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("lock the vault record (%s): %v, %d rows", schema, err, tag.RowsAffected())
	}

	req, _ := http.NewRequest("DELETE", b.BaseURL+group+"?api-version=2021-04-01", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := b.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("group delete = %d", resp.StatusCode)
	}
	// Poll through A: same paths, A's address.
	statusURL := a.BaseURL + strings.TrimPrefix(resp.Header.Get("Azure-AsyncOperation"), b.BaseURL)
	resultURL := a.BaseURL + strings.TrimPrefix(resp.Header.Get("Location"), b.BaseURL)
	if !strings.Contains(statusURL, "/operationStatuses/") || !strings.Contains(resultURL, "/operationResults/") {
		t.Fatalf("poll URLs %q %q", statusURL, resultURL)
	}
	poll := func() (status string, errCode string) {
		code, body := a.Do(t, "GET", statusURL, tokA, nil)
		mustStatus(t, 200, code, body)
		var m struct {
			Status string `json:"status"`
			Error  *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("status body %s: %v", body, err)
		}
		if m.Error != nil {
			return m.Status, m.Error.Code
		}
		return m.Status, ""
	}
	// B is alive and stalled: the operation stays B's.
	for range 5 {
		if st, _ := poll(); st != "InProgress" {
			t.Fatalf("stalled operation on a live replica is %s", st)
		}
		time.Sleep(100 * time.Millisecond)
	}

	b.Kill()
	killed := time.Now()
	_ = lock.Rollback(ctx) // B's transaction died with it; nothing commits

	var st, code2 string
	for time.Since(killed) < interruptedWithin+30*time.Second {
		if st, code2 = poll(); st != "InProgress" {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	took := time.Since(killed).Round(time.Second)
	if st == "InProgress" {
		t.Fatalf("operation still InProgress %v after its replica was killed\nlogs A:\n%s", took, tailLines(a.Logs(), "operation", 20))
	}
	if st != "Failed" || code2 != "OperationInterrupted" {
		t.Fatalf("operation ended %s (%s), want Failed (OperationInterrupted)", st, code2)
	}
	if took > interruptedWithin {
		t.Fatalf("the interrupted operation took %v to fail, want within %v", took, interruptedWithin)
	}
	t.Logf("operation of the killed replica failed %v after the kill", took)
	// The Location poll answers the same error, with its status.
	code, body = a.Do(t, "GET", resultURL, tokA, nil)
	if code != 500 || errCode(body) != "OperationInterrupted" {
		t.Fatalf("result poll = %d %s", code, body)
	}

	// Retrying, as the error says, finishes the delete on A.
	req, _ = http.NewRequest("DELETE", a.BaseURL+group+"?api-version=2021-04-01", nil)
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err = a.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("retried group delete = %d", resp.StatusCode)
	}
	retryURL := resp.Header.Get("Azure-AsyncOperation")
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := a.Do(t, "GET", retryURL, tokA, nil)
		mustStatus(t, 200, code, body)
		if !strings.Contains(string(body), `"InProgress"`) {
			if !strings.Contains(string(body), `"Succeeded"`) {
				t.Fatalf("retried delete: %s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retried delete did not finish")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := a.Do(t, "GET", a.BaseURL+group+"?api-version=2021-04-01", tokA, nil); code != 404 {
		t.Fatalf("group after the retried delete = %d %s", code, body)
	}
}
