package audit

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/principal"
)

func TestHandlerAuthorization(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, Options{})
	engine := authz.New(e.st, e.clk)
	for _, a := range []authz.Assignment{
		{Name: "11111111-0000-0000-0000-000000000001", Scope: "/", RoleDefinitionID: authz.RoleOwner, PrincipalID: userOID, PrincipalType: "User"},
		{Name: "11111111-0000-0000-0000-000000000002", Scope: testVault, RoleDefinitionID: authz.RoleReader, PrincipalID: readerOID, PrincipalType: "ServicePrincipal"},
	} {
		if _, _, err := engine.CreateAssignment(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	dataset(t, e.log)
	h := e.log.Handler(engine)
	owner := userPrincipal()
	reader := &principal.Principal{TenantID: testTenant, ObjectID: readerOID, AppID: "app-1", Kind: principal.ServicePrincipal, Audience: testAud + "/"}
	nobody := &principal.Principal{TenantID: testTenant, ObjectID: "99999999-9999-9999-9999-999999999999", Kind: principal.User, Audience: testAud}
	vaultToken := &principal.Principal{TenantID: testTenant, ObjectID: userOID, Kind: principal.User, Audience: "https://vault.localhost:8443"}
	vq := url.QueryEscape(testVault)

	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		p          *principal.Principal
		wantStatus int
		wantCode   string
		check      func(t *testing.T, body []byte, info *principal.Info)
	}{
		{name: "ok/owner-hash", method: "POST", target: "/audit/hash", body: `{"value":"s3cr3t"}`, p: owner, wantStatus: 200,
			check: func(t *testing.T, b []byte, info *principal.Info) {
				var out struct{ Hash string }
				if json.Unmarshal(b, &out) != nil || out.Hash != e.log.HMAC("s3cr3t") || info.OperationName != "AuditHash" || !info.IsRBACAuthorized {
					t.Fatalf("hash %s info %+v", b, info)
				}
			}},
		{name: "fail/reader-hash-needs-root", method: "POST", target: "/audit/hash", body: `{"value":"x"}`, p: reader, wantStatus: 403, wantCode: "AuthorizationFailed"},
		{name: "fail/hash-bad-body", method: "POST", target: "/audit/hash", body: `{"v":1}`, p: owner, wantStatus: 400, wantCode: "BadParameter"},
		{name: "fail/hash-too-large", method: "POST", target: "/audit/hash", body: `{"value":"` + strings.Repeat("a", maxHashBody) + `"}`, p: owner, wantStatus: 413},
		{name: "ok/reader-events-of-its-vault", method: "GET", target: "/audit/events?resourceId=" + vq + "&result=Forbidden", p: reader, wantStatus: 200,
			check: func(t *testing.T, b []byte, info *principal.Info) {
				var out struct{ Value []Event }
				if json.Unmarshal(b, &out) != nil || len(out.Value) != 2 || info.ResourceID != testVault || info.OperationName != "AuditLogQuery" {
					t.Fatalf("events %s info %+v", b, info)
				}
			}},
		{name: "fail/reader-events-of-all", method: "GET", target: "/audit/events", p: reader, wantStatus: 403, wantCode: "AuthorizationFailed"},
		{name: "fail/reader-events-other-vault", method: "GET", target: "/audit/events?resourceId=" + url.QueryEscape(testVault2), p: reader, wantStatus: 403},
		{name: "fail/nobody-events", method: "GET", target: "/audit/events?resourceId=" + vq, p: nobody, wantStatus: 403},
		{name: "ok/owner-verify-all", method: "GET", target: "/audit/verify", p: owner, wantStatus: 200,
			check: func(t *testing.T, b []byte, _ *principal.Info) {
				var rep Report
				if json.Unmarshal(b, &rep) != nil || !rep.OK || rep.Checked != 13 || rep.Streams != 3 {
					t.Fatalf("verify %s", b)
				}
			}},
		{name: "ok/reader-verify-its-vault", method: "GET", target: "/audit/verify?resourceId=" + vq, p: reader, wantStatus: 200,
			check: func(t *testing.T, b []byte, _ *principal.Info) {
				var rep Report
				if json.Unmarshal(b, &rep) != nil || !rep.OK || rep.Checked != 10 {
					t.Fatalf("verify %s", b)
				}
			}},
		{name: "ok/reader-verify-by-stream-name", method: "GET", target: "/audit/verify?stream=" + StreamOf(testVault), p: reader, wantStatus: 200},
		{name: "fail/reader-verify-global", method: "GET", target: "/audit/verify?stream=global", p: reader, wantStatus: 403},
		{name: "fail/verify-bad-stream", method: "GET", target: "/audit/verify?stream=../../x", p: owner, wantStatus: 400},
		{name: "ok/reader-insights", method: "GET", target: "/audit/insights?resourceId=" + vq + "&from=2024-03-01T10:00:00Z&to=2024-03-01T13:00:00Z", p: reader, wantStatus: 200,
			check: func(t *testing.T, b []byte, _ *principal.Info) {
				var ins Insights
				if json.Unmarshal(b, &ins) != nil || ins.Total != 10 || ins.Failures != 4 {
					t.Fatalf("insights %s", b)
				}
			}},
		{name: "fail/insights-bad-time", method: "GET", target: "/audit/insights?from=yesterday", p: owner, wantStatus: 400},
		{name: "fail/insights-inverted", method: "GET", target: "/audit/insights?from=2024-03-02&to=2024-03-01", p: owner, wantStatus: 400},
		{name: "ok/owner-streams", method: "GET", target: "/audit/streams", p: owner, wantStatus: 200},
		{name: "ok/mounted-without-prefix", method: "GET", target: "/events?top=1", p: owner, wantStatus: 200},
		{name: "fail/anonymous", method: "GET", target: "/audit/events", wantStatus: 401, wantCode: "AuthenticationFailed"},
		{name: "fail/vault-audience-token", method: "GET", target: "/audit/events", p: vaultToken, wantStatus: 401, wantCode: "InvalidAuthenticationToken"},
		{name: "fail/wrong-method", method: "POST", target: "/audit/events", p: owner, wantStatus: 405},
		{name: "fail/unknown", method: "GET", target: "/audit/nope", p: owner, wantStatus: 404},
		{name: "fail/top-zero", method: "GET", target: "/audit/events?top=0", p: owner, wantStatus: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			info := &principal.Info{Principal: tc.p}
			r := withInfo(httptest.NewRequest(tc.method, "https://localhost:8443"+tc.target, strings.NewReader(tc.body)), info)
			w := serve(h, r)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d want %d: %s", w.Code, tc.wantStatus, w.Body)
			}
			if tc.wantCode != "" && w.Header().Get("x-ms-error-code") != tc.wantCode {
				t.Fatalf("code %q want %q", w.Header().Get("x-ms-error-code"), tc.wantCode)
			}
			if w.Code == 401 && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") {
				t.Fatal("401 without a Bearer challenge")
			}
			if w.Code >= 400 && info.ResultDescription == "" {
				t.Fatal("refusal not described for the audit record")
			}
			if tc.check != nil {
				tc.check(t, w.Body.Bytes(), info)
			}
		})
	}
}

func TestHandlerRefusesWithoutAudience(t *testing.T) {
	e := newEnv(t, Options{})
	st := e.st
	l, err := New(st, e.clk, Options{Key: e.key})
	if err != nil {
		t.Fatal(err)
	}
	w := serve(l.Handler(authz.New(st, e.clk)), withInfo(httptest.NewRequest("GET", "/audit/streams", nil), &principal.Info{Principal: userPrincipal()}))
	if w.Code != 401 {
		t.Fatalf("status %d: an unconfigured audience must refuse", w.Code)
	}
}

func TestHandlerEventsPaging(t *testing.T) {
	e := newEnv(t, Options{})
	dataset(t, e.log)
	allow := deciderFunc(func(context.Context, authz.Request) (authz.Decision, error) {
		return authz.Decision{Allowed: true}, nil
	})
	h := e.log.Handler(allow)
	next := "/audit/events?resourceId=" + url.QueryEscape(testVault) + "&top=4"
	var seqs []int64
	for pages := 0; next != "" && pages < 10; pages++ {
		w := serve(h, withInfo(httptest.NewRequest("GET", "https://localhost:8443"+next, nil), &principal.Info{Principal: userPrincipal()}))
		var out struct {
			Value    []Event
			NextLink string
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil {
			t.Fatalf("page: %d %s", w.Code, w.Body)
		}
		for _, ev := range out.Value {
			seqs = append(seqs, ev.Seq)
		}
		next = out.NextLink
		if next != "" && !strings.HasPrefix(next, "/audit/events?") {
			t.Fatalf("nextLink %q", next)
		}
	}
	if !equalInts(seqs, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("seqs %v", seqs)
	}
}

type deciderFunc func(context.Context, authz.Request) (authz.Decision, error)

func (f deciderFunc) Decide(ctx context.Context, r authz.Request) (authz.Decision, error) {
	return f(ctx, r)
}
