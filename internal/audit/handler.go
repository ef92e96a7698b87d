package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/authz"
	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/principal"
)

// ReadAction is the permission every audit API call needs, at the resource
// it reads (or "/" for all resources and for HMACs). Owner ("*") and Reader
// ("*/read") hold it.
const ReadAction = "Microsoft.Insights/logs/read"

const maxHashBody = 64 << 10

// Handler serves keyhaven's audit API, for a mount on the main host with or
// without its "/audit" prefix:
//
//	POST /audit/hash      {"value"} → {"hash"}
//	GET  /audit/events    ?resourceId&from&to&operation&caller&result&top&$skiptoken → {"value":[events],"nextLink"}
//	GET  /audit/verify    ?resourceId | stream (neither: every stream) → Report
//	GET  /audit/insights  ?resourceId&from&to → Insights
//	GET  /audit/streams   → {"value":[StreamInfo]}
//
// Callers present an ARM-audience token (Options.APIAudience) and need
// ReadAction at the resource, or at "/" for hash, streams and queries that
// name no resource.
func (l *Log) Handler(dec authz.Decider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := principal.InfoFrom(r.Context())
		if err := l.serveAPI(w, r, dec, info); err != nil {
			e := azerr.Write(w, err)
			if info.ResultDescription == "" {
				info.ResultDescription = e.Message
			}
		}
	})
}

func (l *Log) serveAPI(w http.ResponseWriter, r *http.Request, dec authz.Decider, info *principal.Info) error {
	path := strings.TrimPrefix(r.URL.Path, "/audit")
	q := r.URL.Query()
	info.OperationVersion = ""
	var op, method string
	switch path {
	case "/hash":
		op, method = "AuditHash", http.MethodPost
	case "/events":
		op, method = "AuditLogQuery", http.MethodGet
	case "/verify":
		op, method = "AuditLogVerify", http.MethodGet
	case "/insights":
		op, method = "AuditInsights", http.MethodGet
	case "/streams":
		op, method = "AuditStreamList", http.MethodGet
	default:
		return azerr.NotFound("NotFound", "No audit API at %s.", clip(r.URL.Path, 200))
	}
	info.OperationName = op
	if r.Method != method {
		return azerr.New(http.StatusMethodNotAllowed, "MethodNotAllowed", "Use %s for %s.", method, clip(r.URL.Path, 200))
	}
	if err := l.authenticate(w, info); err != nil {
		return err
	}
	rid := strings.TrimRight(q.Get("resourceId"), "/")
	if len(rid) > maxObjectID || (rid != "" && !strings.HasPrefix(rid, "/")) {
		return azerr.BadParameter("resourceId must be an ARM resource ID.")
	}

	switch path {
	case "/hash":
		if err := l.authorize(r, dec, info, "/"); err != nil {
			return err
		}
		var in struct {
			Value *string `json:"value"`
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxHashBody+1))
		if err != nil {
			return azerr.BadParameter("The request body could not be read.")
		}
		if len(body) > maxHashBody {
			return azerr.New(http.StatusRequestEntityTooLarge, "RequestTooLarge", "The value is larger than %d bytes.", maxHashBody)
		}
		if json.Unmarshal(body, &in) != nil || in.Value == nil {
			return azerr.BadParameter(`The body must be {"value": "..."}.`)
		}
		writeJSON(w, http.StatusOK, map[string]string{"hash": l.HMAC(*in.Value)})
		return nil

	case "/events":
		f := Filter{ResourceID: rid, Operation: q.Get("operation"), Caller: q.Get("caller"), Result: q.Get("result"),
			SkipToken: firstOf(q, "$skiptoken", "skiptoken")}
		var err error
		if f.From, f.To, err = timeRange(q); err != nil {
			return err
		}
		if t := firstOf(q, "top", "$top"); t != "" {
			if f.Top, err = strconv.Atoi(t); err != nil || f.Top < 1 {
				return azerr.BadParameter("top must be a positive integer.")
			}
		}
		if err := f.Validate(); err != nil {
			return err
		}
		if err := l.authorize(r, dec, info, scopeOf(rid)); err != nil {
			return err
		}
		events, next, err := l.Query(r.Context(), f)
		if errors.Is(err, ErrBadSkipToken) {
			return azerr.BadParameter("The skiptoken is not valid for this query.")
		}
		if err != nil {
			return err
		}
		out := map[string]any{"value": events}
		if next != "" {
			nq := url.Values{}
			for k, v := range q {
				if k != "$skiptoken" && k != "skiptoken" {
					nq[k] = v
				}
			}
			nq.Set("$skiptoken", next)
			out["nextLink"] = r.URL.EscapedPath() + "?" + nq.Encode()
		}
		writeJSON(w, http.StatusOK, out)
		return nil

	case "/verify":
		stream := q.Get("stream")
		switch {
		case stream != "" && rid != "":
			return azerr.BadParameter("Give resourceId or stream, not both.")
		case stream != "" && !validStream(stream):
			return azerr.BadParameter("stream is not a stream name.")
		case stream == GlobalStream:
			// global: scope "/"
		case stream != "":
			h, _, err := readHead(r.Context(), l.st, stream)
			if err != nil {
				return err
			}
			rid = h.ResourceID
		case rid != "":
			stream = StreamOf(rid)
		}
		if err := l.authorize(r, dec, info, scopeOf(rid)); err != nil {
			return err
		}
		var rep Report
		var err error
		if stream == "" {
			rep, err = l.VerifyAll(r.Context())
		} else {
			rep, err = l.Verify(r.Context(), stream)
		}
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, rep)
		return nil

	case "/insights":
		from, to, err := timeRange(q)
		if err != nil {
			return err
		}
		if !from.IsZero() && !to.IsZero() && !from.Before(to) {
			return azerr.BadParameter("from must be before to.")
		}
		if err := l.authorize(r, dec, info, scopeOf(rid)); err != nil {
			return err
		}
		ins, err := l.Insights(r.Context(), rid, from, to)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, ins)
		return nil

	default: // /streams
		if err := l.authorize(r, dec, info, "/"); err != nil {
			return err
		}
		streams, err := l.Streams(r.Context())
		if err != nil {
			return err
		}
		if streams == nil {
			streams = []StreamInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": streams})
		return nil
	}
}

func scopeOf(resourceID string) string {
	if resourceID == "" {
		return "/"
	}
	return resourceID
}

func firstOf(q url.Values, keys ...string) string {
	for _, k := range keys {
		if v := q.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// authenticate requires a verified token for the API audience.
func (l *Log) authenticate(w http.ResponseWriter, info *principal.Info) error {
	p := info.Principal
	var e *azerr.Error
	switch {
	case p == nil && info.AuthError != "":
		e = azerr.New(http.StatusUnauthorized, "InvalidAuthenticationToken", "The access token is invalid: %s", info.AuthError)
	case p == nil:
		e = azerr.New(http.StatusUnauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
	case l.opts.APIAudience == "" || !sameAudience(p.Audience, l.opts.APIAudience):
		e = azerr.New(http.StatusUnauthorized, "InvalidAuthenticationToken",
			"The access token has been obtained for the wrong audience: the audit API accepts tokens for the resource manager.")
	default:
		return nil
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization_uri="%s", error="invalid_token"`, strings.TrimRight(l.opts.APIAudience, "/")))
	return e
}

func sameAudience(a, b string) bool {
	norm := func(s string) string {
		return strings.ToLower(strings.TrimRight(strings.TrimSuffix(s, "/.default"), "/"))
	}
	return norm(a) == norm(b)
}

func (l *Log) authorize(r *http.Request, dec authz.Decider, info *principal.Info, scope string) error {
	if scope != "/" {
		info.ResourceID = scope
	}
	d, err := dec.Decide(r.Context(), authz.Request{Principal: info.Principal, Action: ReadAction, Scope: scope})
	if err != nil {
		return err
	}
	if !d.Allowed {
		return azerr.New(http.StatusForbidden, "AuthorizationFailed",
			"The client '%s' does not have authorization to perform action '%s' over scope '%s' or the scope is invalid.",
			info.Principal.ObjectID, ReadAction, scope)
	}
	info.IsRBACAuthorized = true
	return nil
}

// timeRange reads from and to (RFC 3339, or a date).
func timeRange(q url.Values) (from, to time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		s := q.Get(name)
		if s == "" {
			return time.Time{}, nil
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, nil
			}
		}
		return time.Time{}, azerr.BadParameter("%s must be an RFC 3339 time, e.g. 2024-01-02T15:04:05Z.", name)
	}
	if from, err = parse("from"); err != nil {
		return
	}
	to, err = parse("to")
	return
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
