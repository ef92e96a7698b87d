package azerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Error is an error a client may see. Message is public: it must never carry a
// secret value, a token or key material. Cause is internal and only logged.
type Error struct {
	Status  int    // HTTP status
	Code    string // Azure error code, e.g. SecretNotFound, Forbidden, ScopeLocked
	Message string // public, human-readable
	Target  string // ARM: the offending property or resource, optional
	// Inner is Key Vault's innererror code (e.g. ForbiddenByPolicy), optional.
	Inner   string
	Details []*Error // ARM: additional errors, optional
	// RetryAfter, when positive, is sent as Retry-After (seconds) and retry-after-ms.
	RetryAfterMS int64
	Cause        error // internal; never rendered
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Cause)
	}
	return e.Code + ": " + e.Message
}

// Unwrap exposes the internal cause to errors.Is/As.
func (e *Error) Unwrap() error { return e.Cause }

// Is matches another *Error by Code, so callers can write
// errors.Is(err, azerr.New(404, "SecretNotFound", "")).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// New returns an error with the given status, code and public message.
func New(status int, code, format string, args ...any) *Error {
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	return &Error{Status: status, Code: code, Message: msg}
}

// WithCause attaches an internal cause and returns e.
func (e *Error) WithCause(err error) *Error { e.Cause = err; return e }

// WithInner sets the Key Vault innererror code and returns e.
func (e *Error) WithInner(code string) *Error { e.Inner = code; return e }

// WithTarget sets the ARM target and returns e.
func (e *Error) WithTarget(t string) *Error { e.Target = t; return e }

// Common constructors, named after Azure's codes.
func BadParameter(format string, args ...any) *Error {
	return New(http.StatusBadRequest, "BadParameter", format, args...)
}
func NotFound(code, format string, args ...any) *Error {
	return New(http.StatusNotFound, code, format, args...)
}
func Conflict(format string, args ...any) *Error {
	return New(http.StatusConflict, "Conflict", format, args...)
}
func Forbidden(format string, args ...any) *Error {
	return New(http.StatusForbidden, "Forbidden", format, args...)
}
func Unauthorized(format string, args ...any) *Error {
	return New(http.StatusUnauthorized, "Unauthorized", format, args...)
}
func Internal(cause error) *Error {
	return &Error{Status: http.StatusInternalServerError, Code: "InternalError",
		Message: "The server encountered an internal error. Please retry the request.", Cause: cause}
}

// From converts any error into an *Error: an *Error anywhere in the chain is
// returned as is, anything else becomes a 500 whose cause stays internal.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

type body struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Target  string  `json:"target,omitempty"`
	Inner   *inner  `json:"innererror,omitempty"`
	Details []*body `json:"details,omitempty"`
}

type inner struct {
	Code string `json:"code"`
}

func toBody(e *Error) *body {
	b := &body{Code: e.Code, Message: e.Message, Target: e.Target}
	if e.Inner != "" {
		b.Inner = &inner{Code: e.Inner}
	}
	for _, d := range e.Details {
		b.Details = append(b.Details, toBody(d))
	}
	return b
}

// MarshalJSON renders the Azure envelope {"error":{...}}.
func (e *Error) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Error *body `json:"error"`
	}{toBody(e)})
}

// Recorder is implemented by response writers that want to see the error
// being rendered (the server's access log records internal causes of 5xx).
type Recorder interface {
	RecordError(e *Error)
}

// Write renders err in Azure's shape, with the code also in x-ms-error-code
// (the SDKs read the header first). It is the only place errors become HTTP.
func Write(w http.ResponseWriter, err error) *Error {
	e := From(err)
	if rec, ok := w.(Recorder); ok {
		rec.RecordError(e)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("x-ms-error-code", e.Code)
	if e.RetryAfterMS > 0 {
		h.Set("Retry-After", fmt.Sprint((e.RetryAfterMS+999)/1000))
		h.Set("retry-after-ms", fmt.Sprint(e.RetryAfterMS))
		h.Set("x-ms-retry-after-ms", fmt.Sprint(e.RetryAfterMS))
	}
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(e)
	_, _ = w.Write(b)
	return e
}
