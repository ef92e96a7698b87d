package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// TokenVerifier is what the server needs of the identity service.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*principal.Principal, error)
}

// statusRecorder captures the status code for logs and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	err    *azerr.Error
}

// RecordError keeps the rendered error so the access log can name its
// internal cause (never shown to the client).
func (s *statusRecorder) RecordError(e *azerr.Error) { s.err = e }

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func tlsVersionName(cs *tls.ConnectionState) string {
	if cs == nil {
		return ""
	}
	switch cs.Version {
	case tls.VersionTLS13:
		return "TLS1_3"
	case tls.VersionTLS12:
		return "TLS1_2"
	default:
		return fmt.Sprintf("0x%04x", cs.Version)
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// validRequestID accepts a client-supplied id only when it is short and plain,
// so it is safe to echo and to log.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
			return false
		}
	}
	return true
}

// instrument is the outermost middleware: request info, recovery, body limit,
// access log and metrics. plane labels the metrics.
func (s *Server) instrument(plane func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &principal.Info{
			RequestID:  uuid.NewString(),
			ClientIP:   s.forwardedClientIP(r, clientIP(r)),
			TLSVersion: tlsVersionName(r.TLS),
			UserAgent:  truncate(r.UserAgent(), 256),
		}
		if c := r.Header.Get("x-ms-client-request-id"); validRequestID(c) {
			info.CorrelationID = c
			w.Header().Set("x-ms-client-request-id", c)
		} else {
			info.CorrelationID = info.RequestID
		}
		w.Header().Set("x-ms-request-id", info.RequestID)
		w.Header().Set("x-ms-keyvault-service-version", "keyhaven")
		r = r.WithContext(principal.WithInfo(r.Context(), info))
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		rec := &statusRecorder{ResponseWriter: w}
		s.metrics.inflight.Inc()
		defer func() {
			s.metrics.inflight.Dec()
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic serving request", "request_id", info.RequestID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if rec.status == 0 {
					azerr.Write(rec, azerr.Internal(fmt.Errorf("panic: %v", v)))
				}
			}
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			p := plane(r)
			op := info.OperationName
			if op == "" {
				op = "other"
			}
			d := time.Since(start)
			s.metrics.requests.WithLabelValues(p, op, fmt.Sprint(rec.status)).Inc()
			s.metrics.latency.WithLabelValues(p, op).Observe(d.Seconds())
			// The access log names the caller and the operation, never the
			// query string (it may carry a resource filter but also tokens in
			// hand-written clients), headers or bodies.
			lvl := slog.LevelInfo
			if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
				lvl = slog.LevelDebug
			}
			attrs := []any{"request_id", info.RequestID, "method", r.Method, "host", r.Host, "path", truncate(r.URL.Path, 512),
				"status", rec.status, "duration_ms", d.Milliseconds(), "plane", p, "operation", op, "client_ip", info.ClientIP}
			if info.Principal != nil {
				attrs = append(attrs, "caller_oid", info.Principal.ObjectID, "caller_tid", info.Principal.TenantID)
			}
			if rec.err != nil {
				attrs = append(attrs, "error_code", rec.err.Code)
				if rec.status >= 500 && rec.err.Cause != nil {
					lvl = slog.LevelError
					attrs = append(attrs, "cause", rec.err.Cause.Error())
				}
			}
			s.log.Log(r.Context(), lvl, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// authenticate verifies a presented bearer token and records the principal
// (or why the token was refused). It never answers 401 itself: each plane has
// its own challenge shape.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		if h != "" {
			info := principal.InfoFrom(r.Context())
			scheme, tok, ok := strings.Cut(h, " ")
			switch {
			case !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "":
				info.AuthError = "The Authorization header must be 'Bearer <token>'."
			case len(tok) > 16<<10:
				info.AuthError = "The bearer token is too large."
			default:
				p, err := s.verifier.Verify(r.Context(), strings.TrimSpace(tok))
				if err != nil {
					info.AuthError = azerr.From(err).Message
				} else {
					info.Principal = p
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
