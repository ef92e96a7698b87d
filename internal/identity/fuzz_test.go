package identity

import (
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic and
// never accept anything but the genuine token.
func FuzzVerify(f *testing.F) {
	e := newEnv(f)
	good, _, err := e.svc.IssueToken(e.ctx, e.boot.PlatformObjectID, testBase)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(good, ".")
	for _, s := range []string{good, "", ".", "..", "a.b.c", parts[0] + "." + parts[1] + ".",
		"eyJhbGciOiJub25lIn0.e30.", parts[0] + ".e30." + parts[2], good + "x", strings.Repeat("A", 9000),
		"eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.eyJleHAiOiJub3QtYS1udW1iZXIifQ.AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := e.svc.Verify(e.ctx, raw)
		if err == nil && raw != good {
			t.Fatalf("accepted a token that was not issued: %+v", p)
		}
		if err != nil {
			if a, ok := asAz(err); !ok || a.Status != 401 {
				t.Fatalf("error is not a 401 *azerr.Error: %v", err)
			}
		}
	})
}

// FuzzTokenRequest feeds arbitrary form bodies to the token endpoint: it
// must never panic, always answer JSON, and never issue a token without a
// valid credential.
func FuzzTokenRequest(f *testing.F) {
	e := newEnv(f)
	h := e.svc.Handler()
	for _, s := range []string{"", "grant_type=client_credentials", "grant_type=password&username=admin@keyhaven.local&password=x&client_id=1",
		"grant_type=refresh_token&refresh_token=abc&client_id=" + e.boot.PlatformAppID,
		"grant_type=client_credentials&client_id=" + e.boot.PlatformAppID + "&client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c&scope=x/.default",
		"scope=%ZZ", "a=1&a=2", "client_secret=" + strings.Repeat("x", 5000)} {
		f.Add(s, "organizations")
	}
	f.Fuzz(func(t *testing.T, body, tenant string) {
		if tenant == "" || len(tenant) > 300 {
			tenant = "organizations"
		}
		req := httptest.NewRequest("POST", "/"+url.PathEscape(tenant)+"/oauth2/v2.0/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == 200 {
			t.Fatalf("issued a token for %q", body)
		}
		// The mux itself answers path oddities ("/./...") with redirects or 404.
		routed := rec.Code != 404 && (rec.Code < 300 || rec.Code >= 400)
		if routed && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
			t.Fatalf("non-JSON answer %d", rec.Code)
		}
	})
}
