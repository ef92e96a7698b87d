package compat_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// secretsVault creates a resource group and an RBAC vault, and a service
// principal holding Key Vault Secrets Officer on it. It returns a client of
// the vault authenticated with azidentity.ClientSecretCredential.
func secretsVault(t *testing.T, e *env, vaultName string) (*azsecrets.Client, string) {
	t.Helper()
	e.createResourceGroup(t, "rg-"+vaultName)
	vaultID := e.createVault(t, "rg-"+vaultName, vaultName)
	sp := e.createServicePrincipal(t, "compat-"+vaultName)
	e.assignRole(t, vaultID, roleKeyVaultSecretsOfficer, sp.ObjectID)
	cred := e.clientSecretCredential(t, sp.AppID, sp.Secret)
	return e.secretsClient(t, vaultName, cred), vaultID
}

// TestSecretsClient drives every azsecrets.Client operation against a real
// server with a service principal's client-secret credential.
func TestSecretsClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const vaultName = "kv-compat-secrets"
	client, _ := secretsVault(t, e, vaultName)
	ctx := testCtx(t)
	vaultURL := strings.TrimSuffix(e.srv.VaultURL(vaultName), "/")

	nbf := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second).UTC()
	var v1, v2 string

	t.Run("ok/set-with-attributes", func(t *testing.T) {
		res, err := client.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{
			Value:       to.Ptr("first-value"),
			ContentType: to.Ptr("text/plain"),
			Tags:        map[string]*string{"env": to.Ptr("test"), "owner": to.Ptr("compat")},
			SecretAttributes: &azsecrets.SecretAttributes{
				Enabled: to.Ptr(true), NotBefore: to.Ptr(nbf), Expires: to.Ptr(exp),
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.ID == nil || res.ID.Name() != "db-password" || res.ID.Version() == "" {
			t.Fatalf("id = %v", res.ID)
		}
		if !strings.HasPrefix(string(*res.ID), vaultURL+"/secrets/db-password/") {
			t.Errorf("id %q not under vault URL %q", *res.ID, vaultURL)
		}
		v1 = res.ID.Version()
		checkSecret(t, res.Secret, "first-value", "text/plain", map[string]string{"env": "test", "owner": "compat"})
		a := res.Attributes
		if a == nil || !*a.Enabled || !a.NotBefore.Equal(nbf) || !a.Expires.Equal(exp) {
			t.Fatalf("attributes = %+v", a)
		}
		if a.Created == nil || a.Updated == nil || time.Since(*a.Created) > time.Minute {
			t.Errorf("created/updated = %v/%v", a.Created, a.Updated)
		}
		if a.RecoveryLevel == nil || !strings.Contains(*a.RecoveryLevel, "Recoverable") {
			t.Errorf("recoveryLevel = %v", a.RecoveryLevel)
		}
		if a.RecoverableDays == nil || *a.RecoverableDays != 7 {
			t.Errorf("recoverableDays = %v, want 7 (the vault's retention)", a.RecoverableDays)
		}
	})

	t.Run("ok/new-version", func(t *testing.T) {
		res, err := client.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("second-value")}, nil)
		if err != nil {
			t.Fatal(err)
		}
		v2 = res.ID.Version()
		if v2 == "" || v2 == v1 {
			t.Fatalf("versions %q %q", v1, v2)
		}
	})

	t.Run("ok/get-latest-and-by-version", func(t *testing.T) {
		latest, err := client.GetSecret(ctx, "db-password", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *latest.Value != "second-value" || latest.ID.Version() != v2 {
			t.Errorf("latest = %q version %q, want second-value %q", *latest.Value, latest.ID.Version(), v2)
		}
		old, err := client.GetSecret(ctx, "db-password", v1, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkSecret(t, old.Secret, "first-value", "text/plain", map[string]string{"env": "test", "owner": "compat"})
		if old.ID.Version() != v1 || !old.Attributes.Expires.Equal(exp) {
			t.Errorf("old version = %q exp %v", old.ID.Version(), old.Attributes.Expires)
		}
	})

	t.Run("ok/list-versions", func(t *testing.T) {
		var got []string
		pager := client.NewListSecretPropertiesVersionsPager("db-password", nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.Value {
				if p.ID.Name() != "db-password" {
					t.Errorf("version item name %q", p.ID.Name())
				}
				got = append(got, p.ID.Version())
			}
		}
		sort.Strings(got)
		want := []string{v1, v2}
		sort.Strings(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("versions = %v, want %v", got, want)
		}
	})

	t.Run("ok/list-more-than-one-page", func(t *testing.T) {
		const n = 30 // the page size is 25
		for i := range n {
			if _, err := client.SetSecret(ctx, fmt.Sprintf("page-%02d", i), azsecrets.SetSecretParameters{
				Value: to.Ptr(fmt.Sprintf("v%d", i)), Tags: map[string]*string{"i": to.Ptr(fmt.Sprint(i))},
			}, nil); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]int{}
		pages := 0
		pager := client.NewListSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			for _, p := range page.Value {
				seen[p.ID.Name()]++
				if p.ID.Version() != "" {
					t.Errorf("list item %q carries a version", *p.ID)
				}
				if p.Attributes == nil || p.Attributes.Created == nil {
					t.Errorf("list item %q has no attributes", *p.ID)
				}
			}
		}
		if pages < 2 {
			t.Errorf("pages = %d, want >= 2", pages)
		}
		if len(seen) != n+1 {
			t.Errorf("listed %d names, want %d: %v", len(seen), n+1, seen)
		}
		for name, c := range seen {
			if c != 1 {
				t.Errorf("%s listed %d times", name, c)
			}
		}
		if seen["db-password"] != 1 {
			t.Error("db-password not listed")
		}
	})

	t.Run("ok/update-properties", func(t *testing.T) {
		res, err := client.UpdateSecretProperties(ctx, "db-password", v2, azsecrets.UpdateSecretPropertiesParameters{
			ContentType: to.Ptr("application/x-password"),
			Tags:        map[string]*string{"rotated": to.Ptr("yes")},
			SecretAttributes: &azsecrets.SecretAttributes{
				Expires: to.Ptr(exp.Add(24 * time.Hour)),
			},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.Value != nil {
			t.Error("update response carries the secret value")
		}
		if res.ID.Version() != v2 || *res.ContentType != "application/x-password" || *res.Tags["rotated"] != "yes" ||
			!res.Attributes.Expires.Equal(exp.Add(24*time.Hour)) {
			t.Errorf("update response = id %q ct %v tags %v exp %v", *res.ID, res.ContentType, res.Tags, res.Attributes.Expires)
		}
		got, err := client.GetSecret(ctx, "db-password", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		checkSecret(t, got.Secret, "second-value", "application/x-password", map[string]string{"rotated": "yes"})
		old, err := client.GetSecret(ctx, "db-password", v1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *old.ContentType != "text/plain" {
			t.Errorf("update of %s changed version %s", v2, v1)
		}
	})

	t.Run("fail/disabled-secret-forbidden", func(t *testing.T) {
		if _, err := client.SetSecret(ctx, "to-disable", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
			t.Fatal(err)
		}
		res, err := client.UpdateSecretProperties(ctx, "to-disable", "", azsecrets.UpdateSecretPropertiesParameters{
			SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.Attributes.Enabled {
			t.Fatal("still enabled")
		}
		_, err = client.GetSecret(ctx, "to-disable", "", nil)
		wantResponseError(t, "get disabled secret", err, http.StatusForbidden, "Forbidden")
	})

	t.Run("fail/not-found", func(t *testing.T) {
		_, err := client.GetSecret(ctx, "no-such-secret", "", nil)
		wantResponseError(t, "get missing secret", err, http.StatusNotFound, "SecretNotFound")
		_, err = client.GetSecret(ctx, "db-password", "00000000000000000000000000000000", nil)
		wantResponseError(t, "get missing version", err, http.StatusNotFound, "SecretNotFound")
	})

	t.Run("ok/names-are-case-insensitive", func(t *testing.T) {
		res, err := client.GetSecret(ctx, "DB-Password", v1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.Value != "first-value" {
			t.Error("wrong value")
		}
	})

	t.Run("fail/principal-without-role", func(t *testing.T) {
		sp := e.createServicePrincipal(t, "compat-no-role")
		other := e.secretsClient(t, vaultName, e.clientSecretCredential(t, sp.AppID, sp.Secret))
		_, err := other.GetSecret(ctx, "db-password", "", nil)
		wantResponseError(t, "get without a role", err, http.StatusForbidden, "Forbidden")
		pager := other.NewListSecretPropertiesPager(nil)
		_, err = pager.NextPage(ctx)
		wantResponseError(t, "list without a role", err, http.StatusForbidden, "Forbidden")
	})

	t.Run("ok/delete-get-deleted-list-deleted", func(t *testing.T) {
		del, err := client.DeleteSecret(ctx, "db-password", nil)
		if err != nil {
			t.Fatal(err)
		}
		if del.RecoveryID == nil || *del.RecoveryID != vaultURL+"/deletedsecrets/db-password" {
			t.Errorf("recoveryId = %v", del.RecoveryID)
		}
		if del.DeletedDate == nil || del.ScheduledPurgeDate == nil ||
			del.ScheduledPurgeDate.Sub(*del.DeletedDate) != 7*24*time.Hour {
			t.Errorf("deletedDate/scheduledPurgeDate = %v/%v", del.DeletedDate, del.ScheduledPurgeDate)
		}
		if del.Value != nil {
			t.Error("delete response carries the value")
		}
		got, err := client.GetDeletedSecret(ctx, "db-password", nil)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID.Version() != v2 || *got.RecoveryID != *del.RecoveryID {
			t.Errorf("deleted secret = id %q recovery %q", *got.ID, *got.RecoveryID)
		}
		_, err = client.GetSecret(ctx, "db-password", "", nil)
		wantResponseError(t, "get deleted secret", err, http.StatusNotFound, "SecretNotFound")

		found := false
		pager := client.NewListDeletedSecretPropertiesPager(nil)
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range page.Value {
				if p.ID.Name() == "db-password" {
					found = true
					if p.RecoveryID == nil || p.DeletedDate == nil {
						t.Errorf("deleted item = %+v", p)
					}
				}
			}
		}
		if !found {
			t.Error("db-password not in deleted list")
		}
	})

	t.Run("fail/set-on-deleted-name-conflict", func(t *testing.T) {
		_, err := client.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
		wantResponseError(t, "set on deleted name", err, http.StatusConflict, "Conflict")
	})

	t.Run("ok/recover", func(t *testing.T) {
		rec, err := client.RecoverDeletedSecret(ctx, "db-password", nil)
		if err != nil {
			t.Fatal(err)
		}
		if rec.ID.Name() != "db-password" {
			t.Errorf("recover id = %q", *rec.ID)
		}
		// Key Vault recovers asynchronously; clients poll until Get succeeds.
		got := eventually(t, func() (azsecrets.GetSecretResponse, error) {
			return client.GetSecret(ctx, "db-password", "", nil)
		})
		if *got.Value != "second-value" || got.ID.Version() != v2 {
			t.Errorf("recovered = %q %q", *got.Value, got.ID.Version())
		}
		_, err = client.GetDeletedSecret(ctx, "db-password", nil)
		wantResponseError(t, "get deleted after recover", err, http.StatusNotFound, "")
	})

	t.Run("ok/purge", func(t *testing.T) {
		if _, err := client.DeleteSecret(ctx, "page-00", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := client.PurgeDeletedSecret(ctx, "page-00", nil); err != nil {
			t.Fatal(err)
		}
		_, err := client.GetDeletedSecret(ctx, "page-00", nil)
		wantResponseError(t, "get purged", err, http.StatusNotFound, "")
		// The name is free again.
		if _, err := client.SetSecret(ctx, "page-00", azsecrets.SetSecretParameters{Value: to.Ptr("again")}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = client.PurgeDeletedSecret(ctx, "page-01", nil)
		wantResponseError(t, "purge a live secret", err, http.StatusNotFound, "")
	})

	t.Run("ok/backup-purge-restore", func(t *testing.T) {
		backup, err := client.BackupSecret(ctx, "db-password", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(backup.Value) == 0 || bytes.Contains(backup.Value, []byte("second-value")) {
			t.Fatalf("backup blob empty or holds the plaintext (%d bytes)", len(backup.Value))
		}
		if _, err := client.DeleteSecret(ctx, "db-password", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := client.PurgeDeletedSecret(ctx, "db-password", nil); err != nil {
			t.Fatal(err)
		}
		// A purge may finish asynchronously; restore answers 409 until then.
		restored := eventually(t, func() (azsecrets.RestoreSecretResponse, error) {
			return client.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: backup.Value}, nil)
		})
		if restored.ID.Name() != "db-password" || restored.ID.Version() != v2 {
			t.Errorf("restored id = %q", *restored.ID)
		}
		got, err := client.GetSecret(ctx, "db-password", v1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *got.Value != "first-value" {
			t.Errorf("restored v1 = %q", *got.Value)
		}
		_, err = client.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: backup.Value}, nil)
		wantResponseError(t, "restore over an existing secret", err, http.StatusConflict, "")
		_, err = client.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: []byte("not a backup")}, nil)
		wantResponseError(t, "restore garbage", err, http.StatusBadRequest, "")
	})
}

func checkSecret(t *testing.T, s azsecrets.Secret, value, contentType string, tags map[string]string) {
	t.Helper()
	if s.Value == nil || *s.Value != value {
		t.Errorf("value mismatch (want %d bytes)", len(value))
	}
	if s.ContentType == nil || *s.ContentType != contentType {
		t.Errorf("contentType = %v, want %q", s.ContentType, contentType)
	}
	if len(s.Tags) != len(tags) {
		t.Errorf("tags = %v, want %v", s.Tags, tags)
	}
	for k, v := range tags {
		if s.Tags[k] == nil || *s.Tags[k] != v {
			t.Errorf("tag %s = %v, want %q", k, s.Tags[k], v)
		}
	}
}

// eventually retries f for a few seconds while it answers 404 or 409.
func eventually[T any](t *testing.T, f func() (T, error)) T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := f()
		if err == nil {
			return v
		}
		re := responseError(t, err)
		if (re.StatusCode != http.StatusNotFound && re.StatusCode != http.StatusConflict) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSecretsThrottled shows the SDK riding out 429s: a server with a small
// per-vault transaction limit, a burst of Gets, and every Get succeeds
// because the client waits as the server's retry headers say.
func TestSecretsThrottled(t *testing.T) {
	t.Parallel()
	const limit = 10 // per 10 s: one new transaction a second
	e := newEnv(t, "--throttle-vault-transactions", fmt.Sprint(limit))
	client, _ := secretsVault(t, e, "kv-compat-throttle")
	ctx := testCtx(t)
	if _, err := client.SetSecret(ctx, "hot", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	before := e.counter.count(http.StatusTooManyRequests)
	start := time.Now()
	const burst = 16
	for i := range burst {
		res, err := client.GetSecret(ctx, "hot", "", nil)
		if err != nil {
			var re *azcore.ResponseError
			if errors.As(err, &re) {
				t.Fatalf("get %d: %d %s after %v", i, re.StatusCode, re.ErrorCode, time.Since(start))
			}
			t.Fatalf("get %d: %v", i, err)
		}
		if *res.Value != "v" {
			t.Fatalf("get %d: wrong value", i)
		}
	}
	elapsed := time.Since(start)
	throttled := e.counter.count(http.StatusTooManyRequests) - before
	t.Logf("%d gets in %v with %d throttled attempts", burst, elapsed, throttled)
	if throttled == 0 {
		t.Fatal("no 429 seen: the limit did not apply")
	}
	// The bucket started with at most `limit` tokens and refills one a
	// second, so the burst cannot finish before the refill of the rest.
	if minWait := time.Duration(burst-limit-1) * time.Second; elapsed < minWait {
		t.Errorf("burst took %v, want >= %v", elapsed, minWait)
	}
	if elapsed > 40*time.Second {
		t.Errorf("burst took %v: retries waited far longer than the server asked", elapsed)
	}
}
