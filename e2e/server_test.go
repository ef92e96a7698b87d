package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhaven/keyhaven/internal/testutil/khtest"
)

func newJSONRequest(method, u, token string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	return req, nil
}

// The server's basic contract: health, readiness, metrics, a request id on
// every response, limits, and errors in Azure's shape.
func TestServerBasics(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	s := w.srv
	c := s.Client()
	cases := []struct {
		name       string
		method     string
		url        string
		body       io.Reader
		header     http.Header
		wantStatus int
		wantCode   string
	}{
		{name: "ok/healthz", method: "GET", url: s.BaseURL + "/healthz", wantStatus: 200},
		{name: "ok/readyz", method: "GET", url: s.BaseURL + "/readyz", wantStatus: 200},
		{name: "ok/metadata", method: "GET", url: s.BaseURL + "/metadata/endpoints?api-version=2022-09-01", wantStatus: 200},
		{name: "fail/unknown-path", method: "GET", url: s.BaseURL + "/nope/nothing/here", wantStatus: 404},
		{name: "fail/arm-no-api-version", method: "GET", url: s.BaseURL + "/subscriptions", header: http.Header{"Authorization": {"Bearer " + w.armToken}}, wantStatus: 400, wantCode: "MissingApiVersionParameter"},
		{name: "fail/arm-no-token", method: "GET", url: s.BaseURL + "/subscriptions?api-version=2022-12-01", wantStatus: 401},
		{name: "fail/body-too-large", method: "PUT", url: w.secretURL("big"), body: strings.NewReader(`{"value":"` + strings.Repeat("x", 2<<20) + `"}`),
			header: http.Header{"Authorization": {"Bearer " + w.kvToken}, "Content-Type": {"application/json"}}, wantStatus: 413},
		{name: "fail/garbage-token", method: "GET", url: w.secretURL("x"), header: http.Header{"Authorization": {"Bearer abc.def.ghi"}}, wantStatus: 401, wantCode: "Unauthorized"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, tc.url, tc.body)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, b)
			}
			if resp.Header.Get("x-ms-request-id") == "" {
				t.Fatal("no x-ms-request-id")
			}
			if tc.wantCode != "" {
				if got := errCode(b); got != tc.wantCode {
					t.Fatalf("error code %q, want %q: %s", got, tc.wantCode, b)
				}
				if resp.Header.Get("x-ms-error-code") != tc.wantCode {
					t.Fatalf("x-ms-error-code %q", resp.Header.Get("x-ms-error-code"))
				}
			}
		})
	}

	t.Run("ok/client-request-id-echoed", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.BaseURL+"/healthz", nil)
		req.Header.Set("x-ms-client-request-id", "abc-123")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("x-ms-client-request-id") != "abc-123" {
			t.Fatalf("client request id not echoed: %v", resp.Header)
		}
	})

	t.Run("fail/header-too-large", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.BaseURL+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %d for a 200 KiB header", resp.StatusCode)
			}
		}
	})

	t.Run("ok/metrics", func(t *testing.T) {
		code, _ := w.setSecret(t, "m1", "v")
		mustStatus(t, 200, code)
		resp, err := c.Get(s.BaseURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`keyhaven_http_requests_total{code="200",operation="SecretSet",plane="vault"}`,
			`keyhaven_http_request_duration_seconds_bucket{operation="SecretSet",plane="vault"`,
			`keyhaven_store_operation_duration_seconds_bucket{op="update",outcome="ok"`,
		} {
			if !strings.Contains(string(b), want) {
				t.Fatalf("metrics lack %s", want)
			}
		}
	})

	t.Run("ok/logs-carry-no-secret-or-token", func(t *testing.T) {
		code, _ := w.setSecret(t, "logcheck", "LOG-MARKER-VALUE-123")
		mustStatus(t, 200, code)
		logs := s.Logs()
		if strings.Contains(logs, "LOG-MARKER-VALUE-123") || strings.Contains(logs, w.kvToken) || strings.Contains(logs, s.Admin.Password) {
			t.Fatal("logs contain a secret value, token or password")
		}
	})
}

// SIGTERM lets an in-flight request finish before the process exits.
func TestGracefulShutdown(t *testing.T) {
	w := newWorld(t, khtest.Options{})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PUT", w.secretURL("inflight"), pr)
	req.Header.Set("Authorization", "Bearer "+w.kvToken)
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = int64(len(`{"value":"finished"}`))
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := w.srv.Client().Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{code: resp.StatusCode}
	}()
	_, _ = pw.Write([]byte(`{"value":`))
	time.Sleep(300 * time.Millisecond) // the request is now being read
	stopped := make(chan struct{})
	go func() { w.srv.Stop(); close(stopped) }()
	time.Sleep(300 * time.Millisecond)
	_, _ = pw.Write([]byte(`"finished"}`))
	pw.Close()
	r := <-done
	if r.err != nil || r.code != 200 {
		t.Fatalf("in-flight request during shutdown: %d %v", r.code, r.err)
	}
	<-stopped
	if code := w.srv.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM\n%s", code, w.srv.Logs())
	}
}
