package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestHTTPVaultClient(t *testing.T) {
	var got struct {
		method, path, api, auth string
		body                    map[string]any
	}
	respond := func(w http.ResponseWriter, r *http.Request) {}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.api, got.auth = r.Method, r.URL.Path, r.URL.Query().Get("api-version"), r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got.body)
		respond(w, r)
	}))
	defer srv.Close()
	c := NewHTTPVaultClient(srv.Client())
	azErr := func(status int, code, inner string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("x-ms-error-code", code)
			w.WriteHeader(status)
			body := `{"error":{"code":"` + code + `","message":"refused"`
			if inner != "" {
				body += `,"innererror":{"code":"` + inner + `"}`
			}
			_, _ = io.WriteString(w, body+"}}")
		}
	}
	cases := []struct {
		name    string
		respond func(http.ResponseWriter, *http.Request)
		want    error
		version string
	}{
		{name: "ok/set", respond: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"value":"x","id":"`+srv.URL+`/vaults/kv1/secrets/c1-m1-BMCCredential-abc/0123abcd"}`)
		}, version: "0123abcd"},
		{name: "fail/firewall", respond: azErr(403, "Forbidden", "ForbiddenByFirewall"), want: ErrForbiddenByFirewall},
		{name: "fail/connection", respond: azErr(403, "Forbidden", "ForbiddenByConnection"), want: ErrForbiddenByFirewall},
		{name: "fail/rbac", respond: azErr(403, "Forbidden", "ForbiddenByRbac"), want: ErrForbiddenByRbac},
		{name: "fail/forbidden-bare", respond: azErr(403, "Forbidden", ""), want: ErrForbiddenByRbac},
		{name: "fail/access-policy", respond: azErr(403, "Forbidden", "AccessDenied"), want: ErrAccessDenied},
		{name: "fail/unauthorized", respond: azErr(401, "Unauthorized", ""), want: ErrUnauthorized},
		{name: "fail/vault-not-found", respond: azErr(404, "VaultNotFound", ""), want: ErrVaultNotFound},
		{name: "fail/deleted-secret", respond: azErr(409, "Conflict", "ObjectIsDeletedButRecoverable"), want: ErrSecretDeleted},
		{name: "fail/throttled", respond: azErr(429, "Throttled", ""), want: ErrVaultUnavailable},
		{name: "fail/server", respond: azErr(500, "InternalError", ""), want: ErrVaultUnavailable},
		{name: "fail/wrong-id", respond: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"id":"`+srv.URL+`/vaults/kv1/secrets/other/0123"}`)
		}, want: errAny},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			respond = tc.respond
			v, err := c.SetSecret(context.Background(), srv.URL+"/vaults/kv1/", "c1-m1-BMCCredential-abc", "s3cret-value",
				"text/plain", map[string]string{"clusterId": "c"}, "tok123")
			if got.method != http.MethodPut || got.path != "/vaults/kv1/secrets/c1-m1-BMCCredential-abc" || got.api != "7.5" ||
				got.auth != "Bearer tok123" || got.body["value"] != "s3cret-value" || got.body["contentType"] != "text/plain" {
				t.Fatalf("request %+v", got)
			}
			if tc.want == nil {
				if err != nil || v != tc.version {
					t.Fatalf("got %q %v", v, err)
				}
				return
			}
			if tc.want == errAny {
				if err == nil {
					t.Fatal("want error")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			if strings.Contains(err.Error(), "s3cret-value") || strings.Contains(err.Error(), "tok123") {
				t.Fatal("error quotes the value or token")
			}
		})
	}
	t.Run("fail/inputs", func(t *testing.T) {
		for _, uri := range []string{"http://x/", "https://u:p@x/", "::"} {
			if _, err := c.SetSecret(context.Background(), uri, "n", "v", "", nil, "t"); err == nil {
				t.Fatalf("%s accepted", uri)
			}
		}
		if _, err := c.SetSecret(context.Background(), srv.URL+"/", "bad/name", "v", "", nil, "t"); err == nil {
			t.Fatal("bad name accepted")
		}
	})
}

var errAny = errors.New("any error")

func TestSecretName(t *testing.T) {
	valid := regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	sub := "/subscriptions/00000000-0000-0000-0000-000000000001"
	c1 := sub + "/resourceGroups/rg1/providers/Microsoft.NetworkCloud/clusters/c1"
	c1b := sub + "/resourceGroups/rg2/providers/Microsoft.NetworkCloud/clusters/c1"
	long := strings.Repeat("m", 300)
	cases := []struct {
		name                      string
		cluster, owner, ownerName string
		kind                      Kind
		prefix                    string
	}{
		{"ok/plain", c1, c1 + "/bmm1", "bmm1", KindBMC, "c1-bmm1-BMCCredential-"},
		{"ok/sanitized", c1, c1 + "/x", "rack_1.node 2", KindConsoleUser, "c1-rack-1-node-2-ConsoleUser-"},
		{"ok/truncated", c1, c1 + "/y", long, KindStorageAdmin, "c1-mmmm"},
		{"ok/non-ascii", c1, c1 + "/z", "nœud", KindLocalPathStorage, "c1-n-ud-LocalPathStorageKey-"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := SecretName(tc.cluster, tc.owner, tc.ownerName, tc.kind)
			if !valid.MatchString(n) || !strings.HasPrefix(n, tc.prefix) {
				t.Fatalf("name %q", n)
			}
			if n != SecretName(tc.cluster, tc.owner, tc.ownerName, tc.kind) {
				t.Fatal("not deterministic")
			}
			if seen[n] {
				t.Fatal("collision")
			}
			seen[n] = true
		})
	}
	t.Run("ok/unique-across-resource-groups", func(t *testing.T) {
		a := SecretName(c1, c1+"/bmm1", "bmm1", KindBMC)
		b := SecretName(c1b, c1b+"/bmm1", "bmm1", KindBMC)
		if a == b {
			t.Fatal("same cluster name in two resource groups collides")
		}
		if SecretName(c1, c1+"/bmm1", "bmm1", KindConsoleUser) == a {
			t.Fatal("kinds collide")
		}
	})
	t.Run("ok/truncation-keeps-uniqueness", func(t *testing.T) {
		a := SecretName(c1, c1+"/a", long+"a", KindBMC)
		b := SecretName(c1, c1+"/b", long+"b", KindBMC)
		if a == b || len(a) > MaxSecretNameLen {
			t.Fatalf("%q vs %q", a, b)
		}
	})
}

func TestNewPassword(t *testing.T) {
	for range 200 {
		p, err := newPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(p) < 16 || len(p) > 20 {
			t.Fatalf("length %d", len(p))
		}
		var up, lo, di, sy bool
		for _, c := range p {
			switch {
			case unicode.IsUpper(c):
				up = true
			case unicode.IsLower(c):
				lo = true
			case unicode.IsDigit(c):
				di = true
			case strings.ContainsRune(pwSymbols, c):
				sy = true
			default:
				t.Fatalf("unexpected character class in a generated password")
			}
		}
		if !up || !lo || !di || !sy {
			t.Fatal("a character class is missing")
		}
	}
}

func TestAlertsHandler(t *testing.T) {
	e := newEnv(t)
	cid := e.clusterID("c1")
	e.res.set(cid, e.cmArchive()) // no role: the credential raises an alert
	s := e.engine("r1", func(c *Config) { c.AlertsAudiences = []string{"https://localhost:8443"} })
	if err := e.deploy(s, []Target{{ClusterID: cid, OwnerID: cid, Kind: KindLocalPathStorage}}); err != nil {
		t.Fatal(err)
	}
	e.runOnce(s)
	_, readerSP, err := e.ids.CreateApplication(e.ctx, "", "cluster-reader")
	if err != nil {
		t.Fatal(err)
	}
	e.assign(readerSP.ObjectID, authz.RoleReader, cid)
	_, otherSP, _ := e.ids.CreateApplication(e.ctx, "", "other")
	h := s.AlertsHandler(e.az)
	cases := []struct {
		name   string
		p      *principal.Principal
		query  string
		method string
		status int
	}{
		{"ok/reader", &principal.Principal{ObjectID: readerSP.ObjectID, Audience: "https://localhost:8443"}, "clusterId=" + cid, "GET", 200},
		{"fail/unauthenticated", nil, "clusterId=" + cid, "GET", 401},
		{"fail/wrong-audience", &principal.Principal{ObjectID: readerSP.ObjectID, Audience: e.aud}, "clusterId=" + cid, "GET", 401},
		{"fail/no-role", &principal.Principal{ObjectID: otherSP.ObjectID, Audience: "https://localhost:8443"}, "clusterId=" + cid, "GET", 403},
		{"fail/no-cluster", &principal.Principal{ObjectID: readerSP.ObjectID, Audience: "https://localhost:8443"}, "", "GET", 400},
		{"fail/method", &principal.Principal{ObjectID: readerSP.ObjectID, Audience: "https://localhost:8443"}, "clusterId=" + cid, "POST", 405},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/rotation/alerts?"+tc.query, nil)
			r = r.WithContext(principal.WithInfo(r.Context(), &principal.Info{Principal: tc.p}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if tc.status != 200 {
				return
			}
			var out struct{ Value []Alert }
			if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || len(out.Value) != 1 || out.Value[0].Code != CodeMissingRoleAssignment {
				t.Fatalf("body %s", w.Body)
			}
		})
	}
}
