package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
)

var (
	secretNameRE = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	operationRE  = regexp.MustCompile(`^[A-Za-z]{0,64}$`)
	resultRE     = regexp.MustCompile(`^[A-Za-z0-9]{0,32}$`)
)

// windows are the time ranges the audit views offer.
var windows = []struct {
	Key string
	D   time.Duration
}{{"1h", time.Hour}, {"24h", 24 * time.Hour}, {"7d", 7 * 24 * time.Hour}, {"30d", 30 * 24 * time.Hour}}

func window(r *http.Request) (string, time.Duration) {
	k := r.URL.Query().Get("window")
	for _, w := range windows {
		if w.Key == k {
			return w.Key, w.D
		}
	}
	return "24h", 24 * time.Hour
}

// auditEvent is the part of an AuditEvent the log view shows.
type auditEvent struct {
	Time              string `json:"time"`
	OperationName     string `json:"operationName"`
	ResultType        string `json:"resultType"`
	ResultSignature   string `json:"resultSignature"`
	ResultDescription string `json:"resultDescription"`
	DurationMs        int64  `json:"durationMs"`
	CallerIPAddress   string `json:"callerIpAddress"`
	Identity          *struct {
		Claim struct {
			OID   string `json:"oid"`
			UPN   string `json:"upn"`
			AppID string `json:"appid"`
		} `json:"claim"`
	} `json:"identity"`
	Properties struct {
		ID             string `json:"id"`
		HTTPStatusCode int    `json:"httpStatusCode"`
	} `json:"properties"`
}

// Caller names the caller: UPN, object id, application id, else address.
func (e auditEvent) Caller() string {
	if e.Identity != nil {
		for _, v := range []string{e.Identity.Claim.UPN, e.Identity.Claim.OID, e.Identity.Claim.AppID} {
			if v != "" {
				return v
			}
		}
	}
	return e.CallerIPAddress
}

type auditData struct {
	Vault             vaultRes
	Base              string
	Operation, Result string
	Window            string
	Windows           []string
	Events            []auditEvent
	Total             int
	Truncated         bool
}

const (
	auditShown    = 500
	auditPageSize = 1000
	auditMaxRead  = 5000
)

func windowKeys() []string {
	out := make([]string, len(windows))
	for i, w := range windows {
		out[i] = w.Key
	}
	return out
}

// serveAuditLog is a vault's audit events, newest first, through GET
// /audit/events (the caller needs Microsoft.Insights/logs/read on the vault).
func (p *Portal) serveAuditLog(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := p.getVault(w, r, s)
	if !ok {
		return
	}
	q := r.URL.Query()
	d := auditData{Vault: *v, Base: v.Link(), Operation: q.Get("operation"), Result: q.Get("result"), Windows: windowKeys()}
	if !operationRE.MatchString(d.Operation) || !resultRE.MatchString(d.Result) {
		p.renderError(w, r, s, http.StatusBadRequest, "Bad filter", "An operation is a name such as SecretGet; a result is Success, Failure, a status name or a code.")
		return
	}
	var span time.Duration
	d.Window, span = window(r)
	aq := url.Values{"resourceId": {v.ID}, "from": {p.opts.Now().Add(-span).UTC().Format(time.RFC3339)},
		"top": {strconv.Itoa(auditPageSize)}}
	if d.Operation != "" {
		aq.Set("operation", d.Operation)
	}
	if d.Result != "" {
		aq.Set("result", d.Result)
	}
	events, err := list[auditEvent](r.Context(), p, s, p.opts.BaseURL+"/audit/events?"+aq.Encode(), p.opts.BaseURL, auditMaxRead)
	if err != nil {
		p.fail(w, r, s, err)
		return
	}
	d.Total = len(events)
	d.Truncated = len(events) >= auditMaxRead
	if len(events) > auditShown {
		events = events[len(events)-auditShown:]
	}
	for i, j := 0, len(events)-1; i < j; i, j = i+1, j-1 {
		events[i], events[j] = events[j], events[i]
	}
	d.Events = events
	p.render(w, s, http.StatusOK, "logs", "Audit log of "+v.Name, append(vaultCrumbs(v), crumb{v.Name, v.Link()}), d)
}

// insights mirrors the audit API's Insights answer.
type insights struct {
	From               string `json:"from"`
	To                 string `json:"to"`
	Total              int64  `json:"total"`
	Failures           int64  `json:"failures"`
	OperationsOverTime []struct {
		Time     string `json:"time"`
		Count    int64  `json:"count"`
		Failures int64  `json:"failures"`
	} `json:"operationsOverTime"`
	Operations []struct {
		Name  string `json:"name"`
		Count int64  `json:"count"`
	} `json:"operations"`
	FailuresByReason []struct {
		ResultSignature   string `json:"resultSignature"`
		ResultDescription string `json:"resultDescription"`
		Count             int64  `json:"count"`
	} `json:"failuresByReason"`
	TopCallers []struct {
		OID       string `json:"oid"`
		UPN       string `json:"upn"`
		AppID     string `json:"appid"`
		IPAddress string `json:"callerIpAddress"`
		Count     int64  `json:"count"`
	} `json:"topCallers"`
	Latency struct {
		Count int64 `json:"count"`
		P50   int64 `json:"p50"`
		P90   int64 `json:"p90"`
		P99   int64 `json:"p99"`
		Max   int64 `json:"max"`
	} `json:"latency"`
	Truncated bool `json:"truncated"`
}

// bar is one column of the operations-over-time chart (SVG attributes, so
// the strict CSP needs no inline style).
type bar struct {
	X, Y, H, FY, FH int
	Label           string
	Count, Failures int64
}

type insightsData struct {
	Vault   vaultRes
	Base    string
	Window  string
	Windows []string
	In      insights
	Bars    []bar
	Width   int
	BarW    int
}

const (
	chartHeight = 120
	chartWidth  = 720
)

func (p *Portal) serveInsights(w http.ResponseWriter, r *http.Request, s *session) {
	v, ok := p.getVault(w, r, s)
	if !ok {
		return
	}
	d := insightsData{Vault: *v, Base: v.Link(), Windows: windowKeys()}
	var span time.Duration
	d.Window, span = window(r)
	aq := url.Values{"resourceId": {v.ID}, "from": {p.opts.Now().Add(-span).UTC().Format(time.RFC3339)}}
	if err := p.call(r.Context(), s, http.MethodGet, p.opts.BaseURL+"/audit/insights?"+aq.Encode(), p.opts.BaseURL, nil, &d.In); err != nil {
		p.fail(w, r, s, err)
		return
	}
	var peak int64 = 1
	for _, b := range d.In.OperationsOverTime {
		peak = max(peak, b.Count)
	}
	// Up to 60 columns of 12 pixels; a longer range gets thinner columns.
	colW := max(chartWidth/max(len(d.In.OperationsOverTime), 60), 1)
	d.BarW = max(colW-2, 1)
	for i, b := range d.In.OperationsOverTime {
		h := int(b.Count * chartHeight / peak)
		fh := int(b.Failures * chartHeight / peak)
		d.Bars = append(d.Bars, bar{X: i * colW, Y: chartHeight - h, H: h, FY: chartHeight - fh, FH: fh,
			Label: b.Time, Count: b.Count, Failures: b.Failures})
	}
	d.Width = max(len(d.Bars)*colW, colW)
	p.render(w, s, http.StatusOK, "insights", "Insights of "+v.Name, append(vaultCrumbs(v), crumb{v.Name, v.Link()}), d)
}
