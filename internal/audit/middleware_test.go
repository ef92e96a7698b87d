package audit

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// plane stands in for a data or control plane: it fills the audit fields of
// principal.Info as the real handlers do, then answers.
type plane struct {
	op, version, resourceID, objectID, desc string
	policy, rbac                            bool
	status                                  int
	err                                     *azerr.Error
	body                                    string
	advance                                 time.Duration
	clk                                     interface{ Advance(time.Duration) }
}

func (p plane) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	info := principal.InfoFrom(r.Context())
	info.OperationName, info.OperationVersion, info.ResourceID, info.ObjectID = p.op, p.version, p.resourceID, p.objectID
	info.IsAccessPolicy, info.IsRBACAuthorized = p.policy, p.rbac
	if p.clk != nil {
		p.clk.Advance(p.advance)
	}
	if p.err != nil {
		e := azerr.Write(w, p.err)
		info.ResultDescription = e.Message
		return
	}
	info.ResultDescription = p.desc
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", `"v1"`)
	w.WriteHeader(p.status)
	_, _ = w.Write([]byte(p.body))
}

func TestMiddlewareOneEventPerRequest(t *testing.T) {
	mi := &principal.Principal{TenantID: testTenant, ObjectID: "66666666-6666-6666-6666-666666666666", AppID: "77777777-7777-7777-7777-777777777777",
		Kind: principal.ManagedIdentity, MIResourceID: testVault2 + "/../identity", Audience: testAud}
	tests := []struct {
		name      string
		method    string
		target    string
		principal *principal.Principal
		plane     plane
		tls       bool
		want      Event // fields compared; chain fields ignored
		noEvent   bool
	}{
		{
			name: "ok/secret-get", method: "GET", target: "https://v1.vault.localhost:8443/secrets/db/abc?api-version=7.5", principal: userPrincipal(), tls: true,
			plane: plane{op: "SecretGet", version: "7.5", resourceID: testVault, objectID: "https://v1.vault.localhost:8443/secrets/db/abc", rbac: true, status: 200, body: `{"value":"x"}`, advance: 42 * time.Millisecond},
			want: Event{ResourceID: testVault, OperationName: "SecretGet", OperationVersion: "7.5", Category: "AuditEvent", ResultType: "Success", ResultSignature: "OK",
				DurationMs: 42, CallerIPAddress: "192.0.2.7", CorrelationID: "corr-1",
				Identity: &Identity{Claim: Claim{OID: userOID, AppID: "04b07795-8ddb-461a-bbee-02f9e1bf7b46", UPN: "alice@keyhaven.local", TID: testTenant}},
				Properties: Properties{ID: "https://v1.vault.localhost:8443/secrets/db/abc", RequestURI: "https://v1.vault.localhost:8443/secrets/db/abc?api-version=7.5",
					HTTPStatusCode: 200, ClientInfo: "azsdk-go/1.0", IsRBACAuthorized: true, TLSVersion: "TLS1_3", RequestID: "req-1"}},
		},
		{
			name: "ok/refused-by-policy", method: "PUT", target: "https://v1.vault.localhost:8443/secrets/db?api-version=7.5", principal: mi, tls: true,
			plane: plane{op: "SecretSet", version: "7.5", resourceID: testVault, objectID: "https://v1.vault.localhost:8443/secrets/db", policy: true,
				err: azerr.Forbidden("The user, group or application does not have secrets set permission.").WithInner("ForbiddenByPolicy")},
			want: Event{ResourceID: testVault, OperationName: "SecretSet", OperationVersion: "7.5", Category: "AuditEvent", ResultType: "Failure", ResultSignature: "Forbidden",
				ResultDescription: "The user, group or application does not have secrets set permission.", CallerIPAddress: "192.0.2.7", CorrelationID: "corr-1",
				Identity: &Identity{Claim: Claim{OID: mi.ObjectID, AppID: mi.AppID, TID: testTenant, XMSMIRID: mi.MIResourceID}},
				Properties: Properties{ID: "https://v1.vault.localhost:8443/secrets/db", RequestURI: "https://v1.vault.localhost:8443/secrets/db?api-version=7.5",
					HTTPStatusCode: 403, ClientInfo: "azsdk-go/1.0", IsAccessPolicyMatch: true, TLSVersion: "TLS1_3", RequestID: "req-1"}},
		},
		{
			name: "ok/anonymous-401-control-plane", method: "GET", target: "https://localhost:8443/subscriptions?api-version=2022-12-01", tls: true,
			plane: plane{err: azerr.Unauthorized("Authentication failed.")},
			want: Event{OperationName: "Unknown", OperationVersion: "2022-12-01", Category: "AuditEvent", ResultType: "Failure", ResultSignature: "Unauthorized",
				ResultDescription: "Authentication failed.", CallerIPAddress: "192.0.2.7", CorrelationID: "corr-1",
				Properties: Properties{RequestURI: "https://localhost:8443/subscriptions?api-version=2022-12-01", HTTPStatusCode: 401, ClientInfo: "azsdk-go/1.0", TLSVersion: "TLS1_3", RequestID: "req-1"}},
		},
		{
			name: "ok/vault-put", method: "PUT", target: "https://localhost:8443" + testVault + "?api-version=2023-07-01", principal: userPrincipal(), tls: true,
			plane: plane{op: "VaultPut", version: "2023-07-01", resourceID: testVault, rbac: true, status: 201, body: `{}`},
			want: Event{ResourceID: testVault, OperationName: "VaultPut", OperationVersion: "2023-07-01", Category: "AuditEvent", ResultType: "Success", ResultSignature: "Created",
				CallerIPAddress: "192.0.2.7", CorrelationID: "corr-1",
				Identity:   &Identity{Claim: Claim{OID: userOID, AppID: "04b07795-8ddb-461a-bbee-02f9e1bf7b46", UPN: "alice@keyhaven.local", TID: testTenant}},
				Properties: Properties{RequestURI: "https://localhost:8443" + testVault + "?api-version=2023-07-01", HTTPStatusCode: 201, ClientInfo: "azsdk-go/1.0", IsRBACAuthorized: true, TLSVersion: "TLS1_3", RequestID: "req-1"}},
		},
		{
			name: "ok/sign-in-is-audited", method: "POST", target: "http://localhost:8443/" + testTenant + "/oauth2/v2.0/token",
			plane: plane{status: 200, body: `{"access_token":"t"}`},
			want: Event{OperationName: "TokenIssue", Category: "AuditEvent", ResultType: "Success", ResultSignature: "OK", CallerIPAddress: "192.0.2.7", CorrelationID: "corr-1",
				Properties: Properties{RequestURI: "http://localhost:8443/" + testTenant + "/oauth2/v2.0/token", HTTPStatusCode: 200, ClientInfo: "azsdk-go/1.0", TLSVersion: "TLS1_3", RequestID: "req-1"}},
		},
		{name: "ok/healthz-not-audited", method: "GET", target: "https://localhost:8443/healthz", plane: plane{status: 200, body: "ok"}, noEvent: true},
		{name: "ok/metrics-not-audited", method: "GET", target: "https://localhost:8443/metrics", plane: plane{status: 200, body: "x 1"}, noEvent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			tc.plane.clk = e.clk
			h := e.log.Middleware(tc.plane)
			r := httptest.NewRequest(tc.method, tc.target, nil)
			if tc.tls {
				r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13}
			}
			r = withInfo(r, &principal.Info{RequestID: "req-1", CorrelationID: "corr-1", ClientIP: "192.0.2.7", TLSVersion: "TLS1_3",
				UserAgent: "azsdk-go/1.0", Principal: tc.principal})
			w := serve(h, r)

			// The client sees the handler's response unchanged.
			direct := httptest.NewRecorder()
			tc.plane.clk = nil
			tc.plane.ServeHTTP(direct, withInfo(httptest.NewRequest(tc.method, tc.target, nil), nil))
			if w.Code != direct.Code || w.Body.String() != direct.Body.String() || w.Header().Get("ETag") != direct.Header().Get("ETag") ||
				w.Header().Get("x-ms-error-code") != direct.Header().Get("x-ms-error-code") {
				t.Fatalf("response changed: %d %q %v, want %d %q %v", w.Code, w.Body, w.Header(), direct.Code, direct.Body, direct.Header())
			}
			n := allEventCount(t, e.st)
			if tc.noEvent {
				if n != 0 {
					t.Fatalf("%d events for a request that is not audited", n)
				}
				return
			}
			if n != 1 {
				t.Fatalf("%d events, want exactly 1", n)
			}
			evs := events(t, e.st, StreamOf(tc.want.ResourceID))
			if len(evs) != 1 {
				t.Fatalf("stream %s holds %d events", StreamOf(tc.want.ResourceID), len(evs))
			}
			got := evs[0]
			if got.Seq != 1 || got.PrevHash != "" || got.Hash == "" {
				t.Fatalf("chain fields seq=%d prev=%q hash=%q", got.Seq, got.PrevHash, got.Hash)
			}
			if got.Time != t0.Format(TimeFormat) {
				t.Fatalf("time %q want %q", got.Time, t0.Format(TimeFormat))
			}
			got.Seq, got.PrevHash, got.Hash, got.Time = 0, "", "", ""
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(tc.want)
			if string(gb) != string(wb) {
				t.Fatalf("event\n got %s\nwant %s", gb, wb)
			}
		})
	}
}

func TestMiddlewareFailure(t *testing.T) {
	const marker = "HANDLER-BODY-7f3a"
	tests := []struct {
		name       string
		failOpen   bool
		maxBuffer  int
		wantStatus int
		wantLeak   bool
	}{
		{name: "fail/closed-refuses", wantStatus: 500},
		{name: "fail/closed-refuses-large-body", maxBuffer: 8, wantStatus: 500},
		{name: "ok/open-serves", failOpen: true, wantStatus: 200, wantLeak: true},
		{name: "ok/open-serves-large-body", failOpen: true, maxBuffer: 8, wantStatus: 200, wantLeak: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			fs := &failingStore{Store: e.st}
			l := e.newLog(t, fs, Options{FailOpen: tc.failOpen, MaxBufferBytes: tc.maxBuffer})
			fs.set(true)
			h := l.Middleware(plane{op: "SecretGet", resourceID: testVault, status: 200, body: `{"value":"` + marker + `"}`})
			r := withInfo(httptest.NewRequest("GET", "https://v1.vault.localhost/secrets/a?api-version=7.5", nil), &principal.Info{RequestID: "rid-9"})
			w := serve(h, r)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d want %d", w.Code, tc.wantStatus)
			}
			leaked := strings.Contains(w.Body.String(), marker)
			if leaked != tc.wantLeak {
				t.Fatalf("handler body served = %v, want %v: %s", leaked, tc.wantLeak, w.Body)
			}
			if tc.wantStatus == 500 {
				var body struct {
					Error struct{ Code string } `json:"error"`
				}
				if json.Unmarshal(w.Body.Bytes(), &body) != nil || body.Error.Code != "InternalError" || w.Header().Get("ETag") != "" {
					t.Fatalf("refusal is not Azure's 500 shape or carries handler headers: %v %s", w.Header(), w.Body)
				}
				if got := metricValue(l.m.failOpen); got != 0 {
					t.Fatalf("fail-open counter %v", got)
				}
			} else if got := metricValue(l.m.failOpen); got != 1 {
				t.Fatalf("fail-open counter %v want 1", got)
			}
			if got := metricValue(l.m.writeFailures); got != 1 {
				t.Fatalf("write failures %v want 1", got)
			}
			if n := allEventCount(t, e.st); n != 0 {
				t.Fatalf("%d events stored by a failing store", n)
			}
			// The store recovers: the next request is recorded and served.
			fs.set(false)
			if w := serve(h, r); w.Code != 200 || allEventCount(t, e.st) != 1 {
				t.Fatalf("after recovery: status %d, %d events", w.Code, allEventCount(t, e.st))
			}
		})
	}
}

func TestMiddlewareLargeResponseStreamsAfterEvent(t *testing.T) {
	e := newEnv(t, Options{})
	l := e.newLog(t, e.st, Options{MaxBufferBytes: 16})
	body := strings.Repeat("0123456789", 100)
	h := l.Middleware(plane{op: "SecretBackup", resourceID: testVault, status: 200, body: body})
	w := serve(h, withInfo(httptest.NewRequest("POST", "https://v1.vault.localhost/secrets/a/backup?api-version=7.5", nil), nil))
	if w.Code != 200 || w.Body.String() != body || w.Header().Get("ETag") != `"v1"` {
		t.Fatalf("streamed response: %d, %d bytes, %v", w.Code, w.Body.Len(), w.Header())
	}
	evs := events(t, e.st, StreamOf(testVault))
	if len(evs) != 1 || evs[0].OperationName != "SecretBackup" || evs[0].Properties.HTTPStatusCode != 200 {
		t.Fatalf("events %+v", evs)
	}
}

func TestMiddlewarePanicStillAudited(t *testing.T) {
	e := newEnv(t, Options{})
	h := e.log.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		principal.InfoFrom(r.Context()).OperationName = "SecretGet"
		panic("boom")
	}))
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("panic not propagated: %v", v)
			}
		}()
		serve(h, withInfo(httptest.NewRequest("GET", "https://x/secrets/a", nil), nil))
	}()
	evs := events(t, e.st, GlobalStream)
	if len(evs) != 1 || evs[0].Properties.HTTPStatusCode != 500 || evs[0].ResultType != "Failure" || evs[0].OperationName != "SecretGet" {
		t.Fatalf("events %+v", evs)
	}
}

func TestRequestURIKeepsOnlyAPIVersion(t *testing.T) {
	tests := []struct{ name, target, want string }{
		{"ok/api-version-kept", "https://v.vault.localhost/secrets/a?api-version=7.5&maxresults=3", "https://v.vault.localhost/secrets/a?api-version=7.5"},
		{"ok/skiptoken-dropped", "https://localhost/subscriptions?$skiptoken=abc", "https://localhost/subscriptions"},
		{"fail/hostile-api-version-dropped", "https://localhost/x?api-version=%3Cscript%3E", "https://localhost/x"},
		{"fail/long-path-clipped", "https://localhost/" + strings.Repeat("a", 3000), "https://localhost/" + strings.Repeat("a", maxPath-1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := requestURI(httptest.NewRequest("GET", tc.target, nil)); got != tc.want {
				t.Fatalf("requestURI %q want %q", got, tc.want)
			}
		})
	}
}

// A handler identifies a value through info.HMAC; the event carries that
// HMAC and nothing a handler put there in any other form.
func TestMiddlewareValueHMAC(t *testing.T) {
	const value = "VALUE-HMAC-MARKER-5d1e"
	tests := []struct {
		name string
		set  func(info *principal.Info) // what the handler records
		want func(l *Log) string        // the event's valueHmac
	}{
		{name: "ok/hmac-recorded", set: func(info *principal.Info) { info.ValueHMAC = info.HMAC(value) }, want: func(l *Log) string { return l.HMAC(value) }},
		{name: "ok/none-set", set: func(*principal.Info) {}, want: func(*Log) string { return "" }},
		{name: "fail/raw-value-dropped", set: func(info *principal.Info) { info.ValueHMAC = value }, want: func(*Log) string { return "" }},
		{name: "fail/hmac-prefixed-value-dropped", set: func(info *principal.Info) { info.ValueHMAC = HMACPrefix + value }, want: func(*Log) string { return "" }},
		{name: "fail/non-hex-dropped", set: func(info *principal.Info) { info.ValueHMAC = HMACPrefix + strings.Repeat("zz", 32) }, want: func(*Log) string { return "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Options{})
			h := e.log.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				info := principal.InfoFrom(r.Context())
				if info.HMAC == nil {
					t.Error("the middleware offers no HMAC to the handler")
					return
				}
				info.OperationName, info.ResourceID = "SecretSet", testVault
				tc.set(info)
				w.WriteHeader(http.StatusOK)
			}))
			if w := serve(h, withInfo(httptest.NewRequest("PUT", "https://v1.vault.localhost/secrets/a?api-version=7.5", nil), &principal.Info{})); w.Code != 200 {
				t.Fatalf("status %d", w.Code)
			}
			evs := events(t, e.st, StreamOf(testVault))
			if len(evs) != 1 {
				t.Fatalf("%d events", len(evs))
			}
			if got, want := evs[0].Properties.ValueHMAC, tc.want(e.log); got != want {
				t.Fatalf("valueHmac %q, want %q", got, want)
			}
			for _, rec := range rawRecords(t, e.st, prefix) {
				if strings.Contains(string(rec.Value), value) {
					t.Fatalf("the value is stored in %s", rec.Key)
				}
			}
			// The field is part of the chained content.
			if rep, err := e.log.Verify(context.Background(), StreamOf(testVault)); err != nil || !rep.OK {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}
