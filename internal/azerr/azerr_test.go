package azerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wantStatus int
		wantBody   string
		wantHeader map[string]string
	}{
		{name: "ok/keyvault-shape", err: NotFound("SecretNotFound", "A secret with (name/id) x was not found in this key vault."),
			wantStatus: 404, wantBody: `{"error":{"code":"SecretNotFound","message":"A secret with (name/id) x was not found in this key vault."}}`,
			wantHeader: map[string]string{"x-ms-error-code": "SecretNotFound"}},
		{name: "ok/innererror", err: Forbidden("no").WithInner("ForbiddenByRbac"),
			wantStatus: 403, wantBody: `{"error":{"code":"Forbidden","message":"no","innererror":{"code":"ForbiddenByRbac"}}}`},
		{name: "ok/arm-target-details", err: &Error{Status: 400, Code: "InvalidRequestContent", Message: "bad", Target: "properties.sku",
			Details: []*Error{{Code: "X", Message: "y"}}},
			wantStatus: 400, wantBody: `{"error":{"code":"InvalidRequestContent","message":"bad","target":"properties.sku","details":[{"code":"X","message":"y"}]}}`},
		{name: "ok/retry-after", err: &Error{Status: 429, Code: "Throttled", Message: "slow down", RetryAfterMS: 1500},
			wantStatus: 429, wantHeader: map[string]string{"Retry-After": "2", "retry-after-ms": "1500", "x-ms-retry-after-ms": "1500"}},
		{name: "ok/wrapped-azerr-found", err: fmt.Errorf("ctx: %w", Conflict("taken")), wantStatus: 409,
			wantBody: `{"error":{"code":"Conflict","message":"taken"}}`},
		{name: "fail/plain-error-hides-cause", err: errors.New("disk on fire: secret=hunter2"), wantStatus: 500,
			wantBody: `{"error":{"code":"InternalError","message":"The server encountered an internal error. Please retry the request."}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, tc.err)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			if tc.wantBody != "" && rec.Body.String() != tc.wantBody {
				t.Fatalf("body\n got %s\nwant %s", rec.Body, tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Fatalf("header %s = %q, want %q", k, got, v)
				}
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatal("body is not JSON")
			}
		})
	}
}

func TestIsMatchesByCode(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", NotFound("SecretNotFound", "gone").WithCause(errors.New("inner")))
	if !errors.Is(err, New(404, "SecretNotFound", "")) {
		t.Fatal("errors.Is by code failed")
	}
	if errors.Is(err, New(404, "VaultNotFound", "")) {
		t.Fatal("errors.Is matched another code")
	}
}

type recorder struct {
	*httptest.ResponseRecorder
	got *Error
}

func (r *recorder) RecordError(e *Error) { r.got = e }

func TestWriteTellsRecorder(t *testing.T) {
	r := &recorder{ResponseRecorder: httptest.NewRecorder()}
	cause := errors.New("root cause")
	Write(r, Internal(cause))
	if r.got == nil || !errors.Is(r.got, cause) {
		t.Fatalf("recorder not told the error with its cause: %+v", r.got)
	}
}
