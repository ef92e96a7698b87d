package compat_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// TestSecretsOfCertificates reads a certificate's secret with the unmodified
// azsecrets client: OutContentType converts the stored PKCS #12 to PEM, and
// PreviousVersion names the certificate version before it. The Go proxy here
// has no azcertificates, so the certificates are created over REST.
func TestSecretsOfCertificates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const vaultName = "kv-compat-certsecrets"
	client, _ := secretsVault(t, e, vaultName)
	ctx := testCtx(t)
	vaultURL := strings.TrimSuffix(e.srv.VaultURL(vaultName), "/")
	token := e.srv.AdminToken(t, e.srv.VaultAudience())
	create := func() string {
		t.Helper()
		body := map[string]any{"policy": map[string]any{
			"issuer": map[string]any{"name": "Self"}, "x509_props": map[string]any{"subject": "CN=compat.example.com"},
			"secret_props": map[string]any{"contentType": "application/x-pkcs12"}}}
		code, b := e.srv.Do(t, http.MethodPost, vaultURL+"/certificates/web/create?api-version=7.6", token, body)
		var op struct{ Status string }
		if code != http.StatusAccepted || json.Unmarshal(b, &op) != nil || op.Status != "completed" {
			t.Fatalf("create certificate: %d %s", code, b)
		}
		code, b = e.srv.Do(t, http.MethodGet, vaultURL+"/certificates/web/?api-version=7.6", token, nil)
		var bundle struct{ ID string }
		if code != http.StatusOK || json.Unmarshal(b, &bundle) != nil {
			t.Fatalf("get certificate: %d %s", code, b)
		}
		return bundle.ID[strings.LastIndex(bundle.ID, "/")+1:]
	}
	v1 := create()
	v2 := create()

	res, err := client.GetSecret(ctx, "web", "", &azsecrets.GetSecretOptions{OutContentType: to.Ptr(azsecrets.ContentTypePEM)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ID.Version() != v2 || res.ContentType == nil || *res.ContentType != string(azsecrets.ContentTypePEM) {
		t.Fatalf("secret %v content type %v, want version %s as PEM", res.ID, res.ContentType, v2)
	}
	if v := *res.Value; !strings.HasPrefix(v, "-----BEGIN PRIVATE KEY-----") || !strings.Contains(v, "-----BEGIN CERTIFICATE-----") {
		t.Fatal("the PEM value is not a private key followed by the certificate")
	}
	if res.PreviousVersion == nil || *res.PreviousVersion != v1 {
		t.Fatalf("PreviousVersion %v, want %s", res.PreviousVersion, v1)
	}
	if res.Managed == nil || !*res.Managed {
		t.Fatal("a certificate's secret is not marked managed")
	}

	stored, err := client.GetSecret(ctx, "web", v1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *stored.ContentType != string(azsecrets.ContentTypePFX) || stored.PreviousVersion != nil {
		t.Fatalf("first version: content type %s, previousVersion %v", *stored.ContentType, stored.PreviousVersion)
	}

	if _, err := client.SetSecret(ctx, "plain", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetSecret(ctx, "plain", "", &azsecrets.GetSecretOptions{OutContentType: to.Ptr(azsecrets.ContentTypePEM)})
	wantResponseError(t, "outContentType on a plain secret", err, http.StatusBadRequest, "BadParameter")
}
