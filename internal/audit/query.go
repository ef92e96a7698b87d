package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyhaven/keyhaven/internal/azerr"
	"github.com/keyhaven/keyhaven/internal/store"
)

// Query limits.
const (
	DefaultTop       = 100
	MaxTop           = 1000
	maxScanPerPage   = 20000  // index entries one query page reads
	maxInsightEvents = 200000 // events one insights summary reads
	maxFilterLen     = 256
)

// Filter selects events. Empty fields match everything; From is inclusive,
// To exclusive.
type Filter struct {
	ResourceID string
	From, To   time.Time
	Operation  string // operationName, case-insensitive
	Caller     string // oid, upn, appid or caller IP
	Result     string // resultType (Success/Failure), resultSignature or status code
	Top        int
	SkipToken  string
}

// Validate checks sizes and the page size.
func (f *Filter) Validate() error {
	for _, s := range []string{f.Operation, f.Caller, f.Result} {
		if len(s) > maxFilterLen {
			return azerr.BadParameter("A filter value is longer than %d characters.", maxFilterLen)
		}
	}
	if len(f.ResourceID) > maxObjectID || len(f.SkipToken) > 4096 {
		return azerr.BadParameter("A parameter is too long.")
	}
	if f.Top < 0 || f.Top > MaxTop {
		return azerr.BadParameter("top must be between 1 and %d.", MaxTop)
	}
	if f.Top == 0 {
		f.Top = DefaultTop
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return azerr.BadParameter("The start time must be before the end time.")
	}
	return nil
}

func (f *Filter) match(e *Event) bool {
	if f.ResourceID != "" && !strings.EqualFold(e.ResourceID, f.ResourceID) {
		return false
	}
	if f.Operation != "" && !strings.EqualFold(e.OperationName, f.Operation) {
		return false
	}
	if f.Result != "" && !strings.EqualFold(e.ResultType, f.Result) && !strings.EqualFold(e.ResultSignature, f.Result) &&
		f.Result != strconv.Itoa(e.Properties.HTTPStatusCode) {
		return false
	}
	if f.Caller != "" {
		ok := strings.EqualFold(e.CallerIPAddress, f.Caller)
		if c := e.Identity; c != nil {
			ok = ok || strings.EqualFold(c.Claim.OID, f.Caller) || strings.EqualFold(c.Claim.UPN, f.Caller) ||
				strings.EqualFold(c.Claim.AppID, f.Caller)
		}
		if !ok {
			return false
		}
	}
	return true
}

func (f *Filter) indexPrefix() string {
	if f.ResourceID != "" {
		return prefixSTime + StreamOf(f.ResourceID) + "/"
	}
	return prefixTime
}

// ErrBadSkipToken is returned for a skiptoken this filter did not produce.
var ErrBadSkipToken = errors.New("audit: invalid skiptoken")

// scan walks the time index from the filter's start (or skiptoken) in time
// order, calling fn for each matching event until fn returns false, the end
// of the range, or limit index entries; it returns the skiptoken to go on
// with ("" at the end).
func (l *Log) scan(ctx context.Context, f *Filter, limit int, fn func(e *Event) bool) (string, error) {
	pfx := f.indexPrefix()
	after := ""
	if !f.From.IsZero() {
		// Keys are "{ns}-...": strictly after "{ns}" is every key at ns or later.
		after = pfx + fmt.Sprintf("%020d", max(f.From.UnixNano(), 0))
	}
	if f.SkipToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(f.SkipToken)
		if err != nil || !strings.HasPrefix(string(b), pfx) {
			return "", ErrBadSkipToken
		}
		after = string(b)
	}
	toNs := int64(math.MaxInt64)
	if !f.To.IsZero() {
		toNs = f.To.UnixNano()
	}
	scanned := 0
	for {
		n := min(pageSize, limit-scanned)
		if n <= 0 {
			return base64.RawURLEncoding.EncodeToString([]byte(after)), nil
		}
		recs, err := l.st.List(ctx, pfx, store.ListOptions{After: after, Limit: n})
		if err != nil {
			return "", err
		}
		for _, rec := range recs {
			scanned++
			after = rec.Key
			nsText, _, _ := strings.Cut(strings.TrimPrefix(rec.Key, pfx), "-")
			ns, err := strconv.ParseInt(nsText, 10, 64)
			if err != nil {
				continue
			}
			if ns >= toNs {
				return "", nil
			}
			ev, err := l.st.Get(ctx, string(rec.Value))
			if errors.Is(err, store.ErrNotFound) {
				continue // removed: Verify reports it
			}
			if err != nil {
				return "", err
			}
			var e Event
			if json.Unmarshal(ev.Value, &e) != nil || !f.match(&e) {
				continue
			}
			if !fn(&e) {
				return base64.RawURLEncoding.EncodeToString([]byte(after)), nil
			}
		}
		if len(recs) < n {
			return "", nil
		}
	}
}

// Query returns up to f.Top matching events in time order and a skiptoken
// for the next page ("" when done). A page may hold fewer than Top events
// and still have a skiptoken: each page reads a bounded part of the index.
func (l *Log) Query(ctx context.Context, f Filter) ([]Event, string, error) {
	if err := f.Validate(); err != nil {
		return nil, "", err
	}
	out := []Event{}
	next, err := l.scan(ctx, &f, maxScanPerPage, func(e *Event) bool {
		out = append(out, *e)
		return len(out) < f.Top
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// Insights summarizes the events of a resource (or all) in a time range,
// for the portal's and the CLI's insights views.
type Insights struct {
	ResourceID         string          `json:"resourceId,omitempty"`
	From               string          `json:"from"`
	To                 string          `json:"to"`
	Total              int64           `json:"total"`
	Failures           int64           `json:"failures"`
	OperationsOverTime []HourBucket    `json:"operationsOverTime"`
	Operations         []NameCount     `json:"operations"`
	FailuresByReason   []FailureReason `json:"failuresByReason"`
	TopCallers         []CallerCount   `json:"topCallers"`
	Latency            Latency         `json:"latency"`
	Truncated          bool            `json:"truncated,omitempty"`
}

// HourBucket counts the operations of one hour.
type HourBucket struct {
	Time     string `json:"time"`
	Count    int64  `json:"count"`
	Failures int64  `json:"failures"`
}

// NameCount counts one operation name.
type NameCount struct {
	Name  string `json:"name"`
	Count int64  `json:"count"`
}

// FailureReason counts failures with one signature and description.
type FailureReason struct {
	ResultSignature   string `json:"resultSignature"`
	ResultDescription string `json:"resultDescription"`
	Count             int64  `json:"count"`
}

// CallerCount counts one caller: a principal, or an anonymous address.
type CallerCount struct {
	OID       string `json:"oid,omitempty"`
	UPN       string `json:"upn,omitempty"`
	AppID     string `json:"appid,omitempty"`
	IPAddress string `json:"callerIpAddress,omitempty"` // anonymous callers only
	Count     int64  `json:"count"`
}

// Latency summarizes durationMs (nearest-rank percentiles).
type Latency struct {
	Count int64 `json:"count"`
	P50   int64 `json:"p50"`
	P90   int64 `json:"p90"`
	P99   int64 `json:"p99"`
	Max   int64 `json:"max"`
}

const (
	topCallers      = 10
	topReasons      = 20
	maxFilledHours  = 24 * 31
	defaultInsights = 24 * time.Hour
)

// Insights summarizes [from, to) (the last 24 hours when both are zero).
func (l *Log) Insights(ctx context.Context, resourceID string, from, to time.Time) (*Insights, error) {
	if to.IsZero() {
		to = l.clk.Now()
	}
	if from.IsZero() {
		from = to.Add(-defaultInsights)
	}
	f := Filter{ResourceID: resourceID, From: from, To: to, Top: 1}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	out := &Insights{ResourceID: resourceID, From: from.UTC().Format(time.RFC3339), To: to.UTC().Format(time.RFC3339),
		OperationsOverTime: []HourBucket{}, Operations: []NameCount{}, FailuresByReason: []FailureReason{}, TopCallers: []CallerCount{}}
	hours := map[int64]*HourBucket{}
	ops := map[string]int64{}
	reasons := map[[2]string]int64{}
	callers := map[CallerCount]int64{}
	var durations []int64
	next, err := l.scan(ctx, &f, maxInsightEvents, func(e *Event) bool {
		out.Total++
		failed := e.ResultType != "Success"
		at := e.At().UTC().Truncate(time.Hour)
		b := hours[at.Unix()]
		if b == nil {
			b = &HourBucket{Time: at.Format(time.RFC3339)}
			hours[at.Unix()] = b
		}
		b.Count++
		ops[e.OperationName]++
		if failed {
			out.Failures++
			b.Failures++
			reasons[[2]string{e.ResultSignature, e.ResultDescription}]++
		}
		var c CallerCount
		if e.Identity != nil {
			c = CallerCount{OID: e.Identity.Claim.OID, UPN: e.Identity.Claim.UPN, AppID: e.Identity.Claim.AppID}
		} else {
			c = CallerCount{IPAddress: e.CallerIPAddress}
		}
		callers[c]++
		durations = append(durations, e.DurationMs)
		return true
	})
	if err != nil {
		return nil, err
	}
	out.Truncated = next != ""

	// Every hour of a bounded range appears, with zeros, so a chart has no gaps.
	first, last := from.UTC().Truncate(time.Hour), to.UTC()
	if last.Sub(first) <= maxFilledHours*time.Hour {
		for t := first; t.Before(last); t = t.Add(time.Hour) {
			if hours[t.Unix()] == nil {
				hours[t.Unix()] = &HourBucket{Time: t.Format(time.RFC3339)}
			}
		}
	}
	keys := make([]int64, 0, len(hours))
	for k := range hours {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		out.OperationsOverTime = append(out.OperationsOverTime, *hours[k])
	}
	for name, n := range ops {
		out.Operations = append(out.Operations, NameCount{Name: name, Count: n})
	}
	sort.Slice(out.Operations, func(i, j int) bool {
		a, b := out.Operations[i], out.Operations[j]
		return a.Count > b.Count || a.Count == b.Count && a.Name < b.Name
	})
	for k, n := range reasons {
		out.FailuresByReason = append(out.FailuresByReason, FailureReason{ResultSignature: k[0], ResultDescription: k[1], Count: n})
	}
	sort.Slice(out.FailuresByReason, func(i, j int) bool {
		a, b := out.FailuresByReason[i], out.FailuresByReason[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.ResultSignature != b.ResultSignature {
			return a.ResultSignature < b.ResultSignature
		}
		return a.ResultDescription < b.ResultDescription
	})
	if len(out.FailuresByReason) > topReasons {
		out.FailuresByReason = out.FailuresByReason[:topReasons]
	}
	for c, n := range callers {
		c.Count = n
		out.TopCallers = append(out.TopCallers, c)
	}
	sort.Slice(out.TopCallers, func(i, j int) bool {
		a, b := out.TopCallers[i], out.TopCallers[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.OID+a.AppID+a.UPN+a.IPAddress < b.OID+b.AppID+b.UPN+b.IPAddress
	})
	if len(out.TopCallers) > topCallers {
		out.TopCallers = out.TopCallers[:topCallers]
	}
	out.Latency = latency(durations)
	return out, nil
}

func latency(d []int64) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := func(p float64) int64 {
		i := int(math.Ceil(p/100*float64(len(d)))) - 1
		return d[min(max(i, 0), len(d)-1)]
	}
	return Latency{Count: int64(len(d)), P50: rank(50), P90: rank(90), P99: rank(99), Max: d[len(d)-1]}
}
