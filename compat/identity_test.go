package compat_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/msi/armmsi"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// TestClientSecretCredential: a service principal's client secret gets
// tokens for ARM and the vault audience; a wrong secret is refused both by
// GetToken and through an SDK client.
func TestClientSecretCredential(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := testCtx(t)
	sp := e.createServicePrincipal(t, "compat-csc")
	e.createResourceGroup(t, "rg-compat-csc")
	e.createVault(t, "rg-compat-csc", "kv-compat-csc")

	t.Run("ok/get-token", func(t *testing.T) {
		cred := e.clientSecretCredential(t, sp.AppID, sp.Secret)
		for _, scope := range []string{e.base + "/.default", e.srv.VaultAudience() + "/.default"} {
			tok, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
			if err != nil {
				t.Fatalf("%s: %v", scope, err)
			}
			if tok.Token == "" || time.Until(tok.ExpiresOn) < 10*time.Minute {
				t.Errorf("%s: token empty or expires at %v", scope, tok.ExpiresOn)
			}
		}
	})

	t.Run("fail/wrong-secret", func(t *testing.T) {
		cred := e.clientSecretCredential(t, sp.AppID, "not-the-secret-"+strings.Repeat("x", 20))
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.base + "/.default"}})
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) {
			t.Fatalf("want AuthenticationFailedError, got %T: %v", err, err)
		}
		if afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusUnauthorized && afe.RawResponse.StatusCode != http.StatusBadRequest {
			t.Errorf("token endpoint answered %v", afe.RawResponse)
		}
		if strings.Contains(err.Error(), "not-the-secret") {
			t.Error("error echoes the client secret")
		}
		// Through an SDK client the same failure surfaces before any vault call.
		_, err = e.secretsClient(t, "kv-compat-csc", cred).GetSecret(ctx, "x", "", nil)
		if !errors.As(err, &afe) {
			t.Fatalf("azsecrets with wrong secret: want AuthenticationFailedError, got %T: %v", err, err)
		}
	})

	t.Run("fail/unknown-client", func(t *testing.T) {
		cred := e.clientSecretCredential(t, "00000000-0000-0000-0000-000000000001", sp.Secret)
		_, err := cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.base + "/.default"}})
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) {
			t.Fatalf("want AuthenticationFailedError, got %T: %v", err, err)
		}
	})
}

// workloadSecret is keyhaven's answer to issueWorkloadSecret: what a
// workload needs to use its user-assigned identity through the App Service
// managed-identity protocol.
type workloadSecret struct {
	IdentityEndpoint string `json:"identityEndpoint"`
	IdentityHeader   string `json:"identityHeader"`
	ClientID         string `json:"clientId"`
	PrincipalID      string `json:"principalId"`
}

// TestManagedIdentityCredential: a user-assigned identity created through
// armmsi, given Key Vault Secrets User on a vault, reads a secret with
// azidentity.ManagedIdentityCredential; removing the role assignment makes
// the very next call fail with 403 even though the token is cached.
// Not parallel: it sets IDENTITY_ENDPOINT/IDENTITY_HEADER for the process.
func TestManagedIdentityCredential(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)
	const rg, vaultName = "rg-compat-mi", "kv-compat-mi"
	e.createResourceGroup(t, rg)
	vaultID := e.createVault(t, rg, vaultName)

	// An officer seeds the secret the workload reads.
	officer := e.createServicePrincipal(t, "compat-mi-officer")
	e.assignRole(t, vaultID, roleKeyVaultSecretsOfficer, officer.ObjectID)
	seeder := e.secretsClient(t, vaultName, e.clientSecretCredential(t, officer.AppID, officer.Secret))
	if _, err := seeder.SetSecret(ctx, "app-config", azsecrets.SetSecretParameters{Value: to.Ptr("mi-can-read")}, nil); err != nil {
		t.Fatal(err)
	}

	uai, err := e.identitiesClient(t).CreateOrUpdate(ctx, rg, "uai-workload", armmsi.Identity{Location: to.Ptr("local")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	clientID, principalID := deref(uai.Properties.ClientID), deref(uai.Properties.PrincipalID)
	assignment := e.assignRole(t, vaultID, roleKeyVaultSecretsUser, principalID)

	var ws workloadSecret
	if code := e.rest(t, http.MethodPost, *uai.ID+"/issueWorkloadSecret?api-version=2023-01-31", map[string]any{}, &ws); code != http.StatusOK {
		t.Fatalf("issueWorkloadSecret: %d", code)
	}
	if ws.IdentityEndpoint == "" || ws.IdentityHeader == "" || ws.ClientID != clientID || ws.PrincipalID != principalID {
		t.Fatalf("workload secret: endpoint %q header set %v clientId %q principalId %q (want %q %q)",
			ws.IdentityEndpoint, ws.IdentityHeader != "", ws.ClientID, ws.PrincipalID, clientID, principalID)
	}
	t.Setenv("IDENTITY_ENDPOINT", ws.IdentityEndpoint)
	t.Setenv("IDENTITY_HEADER", ws.IdentityHeader)
	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
		ClientOptions: e.clientOptions(), ID: azidentity.ClientID(ws.ClientID),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := e.secretsClient(t, vaultName, cred)

	t.Run("ok/read-secret", func(t *testing.T) {
		res, err := client.GetSecret(ctx, "app-config", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if *res.Value != "mi-can-read" {
			t.Error("wrong value")
		}
	})

	t.Run("ok/select-by-resource-and-object-id", func(t *testing.T) {
		for _, id := range []azidentity.ManagedIDKind{azidentity.ResourceID(*uai.ID), azidentity.ObjectID(principalID)} {
			c, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
				ClientOptions: e.clientOptions(), ID: id,
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := e.secretsClient(t, vaultName, c).GetSecret(ctx, "app-config", "", nil)
			if err != nil {
				t.Fatalf("%s: %v", id, err)
			}
			if *res.Value != "mi-can-read" {
				t.Errorf("%s: wrong value", id)
			}
		}
	})

	t.Run("fail/secrets-user-cannot-set", func(t *testing.T) {
		_, err := client.SetSecret(ctx, "app-config", azsecrets.SetSecretParameters{Value: to.Ptr("nope")}, nil)
		wantResponseError(t, "set as Secrets User", err, http.StatusForbidden, "Forbidden")
	})

	t.Run("fail/wrong-header", func(t *testing.T) {
		t.Setenv("IDENTITY_HEADER", "wrong-"+strings.Repeat("0", 32))
		bad, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
			ClientOptions: e.clientOptions(), ID: azidentity.ClientID(ws.ClientID),
		})
		if err != nil {
			t.Fatal(err)
		}
		// A scope no other credential asked for, so no cached token answers.
		_, err = bad.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{e.base + "/.default"}})
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) || afe.RawResponse == nil || afe.RawResponse.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong IDENTITY_HEADER: want 401 AuthenticationFailedError, got %T: %v", err, err)
		}
	})

	t.Run("fail/after-role-removal", func(t *testing.T) {
		e.deleteRoleAssignment(t, assignment)
		_, err := client.GetSecret(ctx, "app-config", "", nil)
		wantResponseError(t, "get after role removal", err, http.StatusForbidden, "Forbidden")
	})
}
