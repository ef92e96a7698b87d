package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// DefaultAuditable audits every request except the server's probes and
// metrics scrapes, which carry no caller and no data. Sign-ins (the token
// endpoints) are audited: who obtained a token, and who failed to, is
// exactly what an operator asks of an audit log.
func DefaultAuditable(r *http.Request) bool {
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	return true
}

// Middleware records exactly one event per auditable request. It must run
// inside the server's request-info and authentication middleware (it reads
// principal.Info) and outside every plane (handlers fill Info in).
//
// Fail closed: the response is held back (status, headers and body up to
// MaxBufferBytes) until its event is durably stored; if that fails the client
// gets a 500 in Azure's shape instead, and nothing of the held response. A
// response larger than the bound has its event written when it crosses the
// bound (with the status already chosen), then streams. With FailOpen the
// response is served anyway and keyhaven_audit_fail_open_total counts it.
func (l *Log) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.opts.Auditable(r) {
			next.ServeHTTP(w, r)
			return
		}
		// Handlers identify values through this, never by storing them.
		principal.InfoFrom(r.Context()).HMAC = l.HMAC
		bw := &bufWriter{w: w, l: l, r: r, start: l.clk.Now(), header: w.Header().Clone()}
		finished := false
		defer func() {
			if finished {
				return
			}
			v := recover()
			if v == nil {
				return // runtime.Goexit: nothing was answered
			}
			// A panicking handler still gets its event (as the 500 the
			// server's recovery answers), then the panic goes on.
			if !bw.recorded {
				bw.status = http.StatusInternalServerError
				_ = bw.record()
			}
			panic(v)
		}()
		next.ServeHTTP(bw, r)
		finished = true
		bw.finish()
	})
}

// errAuditUnavailable is the public failure when no event could be written.
var errAuditUnavailable = errors.New("audit: event not written")

// bufWriter holds the response until the event is stored.
type bufWriter struct {
	w      http.ResponseWriter
	l      *Log
	r      *http.Request
	start  time.Time
	header http.Header
	status int
	buf    bytes.Buffer

	recorded  bool // the event was written (or, failing open, attempted)
	streaming bool // the held response went out; writes pass through
	refused   bool // the audit write failed closed; the handler's output is dropped
}

func (b *bufWriter) Header() http.Header { return b.header }

func (b *bufWriter) WriteHeader(code int) {
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		b.w.WriteHeader(code) // informational: nothing to hold back
		return
	}
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	switch {
	case b.refused:
		return 0, errAuditUnavailable
	case b.streaming:
		return b.w.Write(p)
	case b.buf.Len()+len(p) <= b.l.opts.MaxBufferBytes:
		return b.buf.Write(p)
	}
	// Too large to hold: record now, with the status already chosen.
	if !b.commit() {
		return 0, errAuditUnavailable
	}
	return b.w.Write(p)
}

// Flush is a no-op while the response is held; it flushes once streaming.
func (b *bufWriter) Flush() {
	if b.streaming {
		if f, ok := b.w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// RecordError passes the rendered error on to the server's access log.
func (b *bufWriter) RecordError(e *azerr.Error) {
	if rec, ok := b.w.(azerr.Recorder); ok {
		rec.RecordError(e)
	}
}

func (b *bufWriter) finish() {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.streaming || b.refused {
		return
	}
	b.commit()
}

// commit writes the event and, unless that failed closed, sends the held
// response. It reports whether the handler's response went out.
func (b *bufWriter) commit() bool {
	if err := b.record(); err != nil {
		if !b.l.opts.FailOpen {
			b.refused = true
			b.l.log.Error("audit: event not written; refusing the response", "request_id", principal.InfoFrom(b.r.Context()).RequestID, "err", err)
			azerr.Write(b.w, azerr.Internal(err))
			return false
		}
		b.l.m.failOpen.Inc()
		b.l.log.Warn("audit: event not written; serving the response (fail open)", "request_id", principal.InfoFrom(b.r.Context()).RequestID, "err", err)
	}
	h := b.w.Header()
	for k := range h {
		delete(h, k)
	}
	for k, v := range b.header {
		h[k] = v
	}
	b.w.WriteHeader(b.status)
	b.streaming = true
	if b.buf.Len() > 0 {
		_, _ = b.w.Write(b.buf.Bytes())
	}
	b.buf = bytes.Buffer{}
	return true
}

// record builds and appends the event, once. The append outlives a client
// that hung up: the operation happened and must be on record.
func (b *bufWriter) record() error {
	if b.recorded {
		return nil
	}
	b.recorded = true
	ev := b.l.eventFor(b.r, b.start, b.status)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(b.r.Context()), appendTimeout)
	defer cancel()
	_, err := b.l.Append(ctx, ev)
	return err
}

// Field limits: events stay small whatever a client sends.
const (
	maxPath        = 1024
	maxHost        = 255
	maxDescription = 1024
	maxClientInfo  = 256
	maxObjectID    = 2048
	maxShort       = 128
)

// eventFor builds the event of a request from metadata only: never a body,
// a header other than User-Agent, or a query value other than api-version.
func (l *Log) eventFor(r *http.Request, start time.Time, status int) Event {
	info := principal.InfoFrom(r.Context())
	dur := l.clk.Now().Sub(start).Milliseconds()
	if dur < 0 {
		dur = 0
	}
	resultType := "Success"
	if status >= 400 {
		resultType = "Failure"
	}
	ip := info.ClientIP
	if ip == "" {
		if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			ip = h
		}
	}
	ua := info.UserAgent
	if ua == "" {
		ua = r.UserAgent()
	}
	op := info.OperationName
	if op == "" {
		op = fallbackOperation(r)
	}
	version := info.OperationVersion
	if version == "" {
		version = r.URL.Query().Get("api-version")
	}
	e := Event{
		Time:              start.UTC().Format(TimeFormat),
		ResourceID:        clip(info.ResourceID, maxObjectID),
		OperationName:     clip(op, maxShort),
		OperationVersion:  safeToken(version),
		Category:          Category,
		ResultType:        resultType,
		ResultSignature:   statusSignature(status),
		ResultDescription: clip(info.ResultDescription, maxDescription),
		DurationMs:        dur,
		CallerIPAddress:   clip(ip, maxShort),
		CorrelationID:     clip(info.CorrelationID, maxShort),
		Properties: Properties{
			ID:                  clip(info.ObjectID, maxObjectID),
			RequestURI:          requestURI(r),
			HTTPStatusCode:      status,
			ClientInfo:          clip(ua, maxClientInfo),
			IsAccessPolicyMatch: info.IsAccessPolicy,
			IsRBACAuthorized:    info.IsRBACAuthorized,
			TLSVersion:          clip(info.TLSVersion, maxShort),
			RequestID:           clip(info.RequestID, maxShort),
			ValueHMAC:           validHMAC(info.ValueHMAC),
		},
	}
	if p := info.Principal; p != nil {
		e.Identity = &Identity{Claim: Claim{
			OID: clip(p.ObjectID, maxShort), AppID: clip(p.AppID, maxShort), UPN: clip(p.UPN, 256),
			TID: clip(p.TenantID, maxShort), XMSMIRID: clip(p.MIResourceID, maxObjectID),
		}}
	}
	return e
}

// validHMAC keeps s only if it has exactly the form (*Log).HMAC produces, so
// a handler that set anything else (a value by mistake) records nothing.
func validHMAC(s string) string {
	h, ok := strings.CutPrefix(s, HMACPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return ""
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return s
}

// fallbackOperation names requests no handler named (sign-ins, unknown
// routes) from the path's shape, never its values.
func fallbackOperation(r *http.Request) string {
	p := strings.ToLower(r.URL.Path)
	switch {
	case strings.HasSuffix(p, "/oauth2/v2.0/token"), strings.HasSuffix(p, "/oauth2/token"):
		return "TokenIssue"
	case p == "/msi/token" || strings.HasPrefix(p, "/metadata/identity/"):
		return "ManagedIdentityTokenIssue"
	}
	return "Unknown"
}

// requestURI is scheme, host and path, with api-version the only query
// parameter kept: other query values (skiptokens, filters, hand-written
// clients' tokens) never reach the log.
func requestURI(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	host := r.Host
	if len(host) > maxHost || strings.ContainsFunc(host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']')
	}) {
		host = ""
	}
	u := scheme + "://" + host + clip(r.URL.EscapedPath(), maxPath)
	if v := safeToken(r.URL.Query().Get("api-version")); v != "" {
		u += "?api-version=" + v
	}
	return u
}

// safeToken keeps short version-like strings only.
func safeToken(s string) string {
	if len(s) > 40 {
		return ""
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return ""
		}
	}
	return s
}

// statusSignature names a status as Azure's logs do (.NET HttpStatusCode
// names: "OK", "NotFound", "TooManyRequests").
func statusSignature(code int) string {
	t := http.StatusText(code)
	if t == "" {
		return strconv.Itoa(code)
	}
	return strings.NewReplacer(" ", "", "-", "", "'", "").Replace(t)
}

// clip makes s valid UTF-8 (so the stored form round-trips exactly) and at
// most n bytes, cut on a rune boundary.
func clip(s string, n int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
