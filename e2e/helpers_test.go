package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

// backend is one storage configuration the tests run against.
type backend struct {
	name string
	// opts returns the server options for a fresh, isolated store, or skips
	// t (with the reason) when the backend is not configured.
	opts func(t *testing.T) khtest.Options
}

// backends lists SQLite and PostgreSQL. The PostgreSQL entry is always there
// so that, without KEYHAVEN_TEST_POSTGRES_DSN, its subtest shows up as
// skipped with the reason instead of vanishing silently; with it, each test
// gets its own schema, dropped afterwards.
func backends(t *testing.T) []backend {
	t.Helper()
	dsn := os.Getenv("KEYHAVEN_TEST_POSTGRES_DSN")
	return []backend{
		{name: "sqlite", opts: func(t *testing.T) khtest.Options { return khtest.Options{} }},
		{name: "postgres", opts: func(t *testing.T) khtest.Options {
			t.Helper()
			if dsn == "" {
				t.Skip("KEYHAVEN_TEST_POSTGRES_DSN is unset: the PostgreSQL variant needs a database " +
					"(e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable)")
			}
			schema := "kh_e2e_" + randHex(6)
			t.Cleanup(func() {
				conn, err := pgx.Connect(context.Background(), dsn)
				if err != nil {
					t.Logf("cleanup: %v", err)
					return
				}
				defer conn.Close(context.Background())
				_, _ = conn.Exec(context.Background(), "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			})
			return khtest.Options{Store: dsn, Args: []string{"--store-schema", schema}}
		}},
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// world is a server with a resource group and an RBAC vault, plus admin tokens.
type world struct {
	srv      *khtest.Server
	armToken string
	kvToken  string
	vault    string
	vaultID  string
}

func newWorld(t *testing.T, opts khtest.Options) *world {
	t.Helper()
	s := khtest.Start(t, opts)
	w := &world{srv: s, vault: "v" + randHex(4)}
	w.armToken = s.AdminToken(t, s.BaseURL)
	w.kvToken = s.AdminToken(t, s.VaultAudience())
	rg := s.BaseURL + "/subscriptions/" + s.Admin.SubscriptionID + "/resourcegroups/rg1?api-version=2021-04-01"
	code, body := w.put(t, rg, map[string]any{"location": "local"})
	mustStatus(t, 201, code, body)
	w.vaultID = "/subscriptions/" + s.Admin.SubscriptionID + "/resourceGroups/rg1/providers/Microsoft.KeyVault/vaults/" + w.vault
	code, body = s.Do(t, "PUT", s.BaseURL+w.vaultID+"?api-version=2023-07-01", w.armToken, map[string]any{
		"location": "local",
		"properties": map[string]any{"tenantId": s.Admin.TenantID, "sku": map[string]string{"family": "A", "name": "standard"},
			"enableRbacAuthorization": true},
	})
	mustStatus(t, 201, code, body)
	return w
}

// reconnect refreshes tokens after a restart (signing keys persist, so old
// tokens stay valid; this also proves login works after restart).
func (w *world) reconnect(t *testing.T) {
	w.armToken = w.srv.AdminToken(t, w.srv.BaseURL)
	w.kvToken = w.srv.AdminToken(t, w.srv.VaultAudience())
}

func (w *world) put(t *testing.T, u string, body any) (int, []byte) {
	return w.srv.Do(t, "PUT", u, w.armToken, body)
}

func (w *world) secretURL(name string) string {
	return w.srv.VaultURL(w.vault) + "secrets/" + url.PathEscape(name) + "?api-version=7.5"
}

func (w *world) setSecret(t *testing.T, name, value string) (int, []byte) {
	return w.srv.Do(t, "PUT", w.secretURL(name), w.kvToken, map[string]any{"value": value})
}

func (w *world) getSecret(t *testing.T, name string) (int, string, []byte) {
	code, body := w.srv.Do(t, "GET", w.secretURL(name), w.kvToken, nil)
	var out struct {
		Value string `json:"value"`
	}
	_ = json.Unmarshal(body, &out)
	return code, out.Value, body
}

func mustStatus(t *testing.T, want int, code int, body ...[]byte) {
	t.Helper()
	if code != want {
		var b string
		if len(body) > 0 {
			b = string(body[0])
		}
		t.Fatalf("status %d, want %d: %s", code, want, b)
	}
}

func errCode(body []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &e)
	return e.Error.Code
}

func contains(hay []byte, needle string) bool { return strings.Contains(string(hay), needle) }

var _ = fmt.Sprint

// selfSigned is a certificate k signed for itself, for cn, valid from nbf
// to naf.
func selfSigned(t *testing.T, k *ecdsa.PrivateKey, cn string, nbf, naf time.Time) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(nbf.UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: nbf, NotAfter: naf}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keyAndCertPEM is an importable PEM: k as PKCS #8, then c.
func keyAndCertPEM(t *testing.T, k *ecdsa.PrivateKey, c *x509.Certificate) string {
	t.Helper()
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})) + string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}
