package cli

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func init() {
	register("monitor", newMonitorLogCmd)
	register("monitor", newMonitorInsightsCmd)
}

const (
	auditDefaultMaxEvents = 100
	auditMaxEvents        = 100000
	auditPageSize         = 1000
)

// auditWindow is --start-time, --end-time and --offset, as az monitor has.
type auditWindow struct {
	start, end, offset string
}

func (w *auditWindow) bind(c *cobra.Command) {
	c.Flags().StringVar(&w.start, "start-time", "", "Start of the time range (ISO 8601, UTC when no zone). Default: --end-time minus --offset.")
	c.Flags().StringVar(&w.end, "end-time", "", "End of the time range (ISO 8601). Default: now.")
	c.Flags().StringVar(&w.offset, "offset", "", "Length of the time range ending at --end-time, e.g. 6h, 2d or 30m.")
}

// query adds from and to (RFC 3339) to q.
func (w *auditWindow) query(a *app, q url.Values) error {
	var from, to time.Time
	if w.end != "" {
		s, err := parseTime("--end-time", w.end)
		if err != nil {
			return err
		}
		to = time.Unix(s, 0).UTC()
	}
	if w.start != "" {
		if w.offset != "" {
			return usageErrorf("usage error: --start-time cannot be combined with --offset")
		}
		s, err := parseTime("--start-time", w.start)
		if err != nil {
			return err
		}
		from = time.Unix(s, 0).UTC()
	}
	if w.offset != "" {
		d, err := parseAuditOffset(w.offset)
		if err != nil {
			return err
		}
		if to.IsZero() {
			to = a.now().UTC()
		}
		from = to.Add(-d)
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		return usageErrorf("usage error: --start-time must be before --end-time")
	}
	if !from.IsZero() {
		q.Set("from", from.Format(time.RFC3339))
	}
	if !to.IsZero() {
		q.Set("to", to.Format(time.RFC3339))
	}
	return nil
}

// parseAuditOffset accepts Go durations plus a day unit ("2d").
func parseAuditOffset(s string) (time.Duration, error) {
	bad := usageErrorf("argument --offset: invalid duration %q (e.g. 6h, 2d, 30m)", s)
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days <= 0 || days > 3650 {
			return 0, bad
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil || d <= 0 {
			return 0, bad
		}
	}
	return d, nil
}

func newMonitorLogCmd(a *app) *cobra.Command {
	cmd := newGroup("log", "Search the audit log (Key Vault AuditEvent records).")
	cmd.AddCommand(newMonitorLogListCmd(a))
	return cmd
}

func newMonitorLogListCmd(a *app) *cobra.Command {
	var t auditTarget
	var w auditWindow
	var operation, caller, result string
	var maxEvents int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit events, oldest first.",
		Long: `Lists audit events of a vault (--vault-name or --resource) or of every
resource, oldest first, filtered by time, operation (e.g. SecretGet), caller
(object id, UPN, application id or IP address) and result (Success, Failure,
a status name such as Forbidden, or a status code).`,
		Example: `  keyhaven monitor log list --vault-name myvault --offset 1h -o table
  keyhaven monitor log list --vault-name myvault --result Forbidden --caller alice@keyhaven.local`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if maxEvents < 1 || maxEvents > auditMaxEvents {
				return usageErrorf("argument --max-events: must be between 1 and %d", auditMaxEvents)
			}
			for flag, v := range map[string]string{"--operation": operation, "--caller": caller, "--result": result} {
				if len(v) > 256 {
					return usageErrorf("argument %s: longer than 256 characters", flag)
				}
			}
			rid, err := t.resolve(cmd.Context(), a, "resource")
			if err != nil {
				return err
			}
			q := url.Values{}
			if rid != "" {
				q.Set("resourceId", rid)
			}
			if err := w.query(a, q); err != nil {
				return err
			}
			for k, v := range map[string]string{"operation": operation, "caller": caller, "result": result} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("top", strconv.Itoa(min(maxEvents, auditPageSize)))
			u, aud, err := a.auditURL("/events", q)
			if err != nil {
				return err
			}
			items, err := a.listPages(cmd.Context(), u, aud, maxEvents)
			if err != nil {
				return err
			}
			if a.output == "table" && a.query == "" {
				return a.print(auditEventRows(items))
			}
			return a.print(items)
		},
	}
	t.bind(cmd, "resource")
	w.bind(cmd)
	cmd.Flags().StringVar(&operation, "operation", "", "Operation name, e.g. SecretGet or VaultPut.")
	cmd.Flags().StringVar(&caller, "caller", "", "Caller: object id, UPN, application id or IP address.")
	cmd.Flags().StringVar(&result, "result", "", "Result: Success, Failure, a status name (Forbidden) or code (403).")
	cmd.Flags().IntVar(&maxEvents, "max-events", auditDefaultMaxEvents, "Maximum number of events to return.")
	return cmd
}

// auditEventRows flattens events for the table view: one line per event.
func auditEventRows(items []any) []any {
	rows := make([]any, 0, len(items))
	for _, it := range items {
		m, _ := it.(map[string]any)
		props, _ := m["properties"].(map[string]any)
		rows = append(rows, map[string]any{
			"time":       m["time"],
			"operation":  m["operationName"],
			"result":     m["resultSignature"],
			"caller":     auditCaller(m),
			"durationMs": m["durationMs"],
			"resource":   lastSegment(auditStr(m["resourceId"])),
			"statusCode": props["httpStatusCode"],
		})
	}
	return rows
}

// auditCaller names an event's caller: UPN, else object id, else app id, else
// the address of an anonymous caller.
func auditCaller(m map[string]any) string {
	if id, ok := m["identity"].(map[string]any); ok {
		if c, ok := id["claim"].(map[string]any); ok {
			for _, k := range []string{"upn", "oid", "appid"} {
				if s := auditStr(c[k]); s != "" {
					return s
				}
			}
		}
	}
	return auditStr(m["callerIpAddress"])
}

func auditStr(v any) string { s, _ := v.(string); return s }

func newMonitorInsightsCmd(a *app) *cobra.Command {
	cmd := newGroup("insights", "Summaries of how, when and by whom resources are accessed.")
	cmd.AddCommand(newMonitorInsightsShowCmd(a))
	return cmd
}

func newMonitorInsightsShowCmd(a *app) *cobra.Command {
	var t auditTarget
	var w auditWindow
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show a vault's insights: operations over time, failures by reason, top callers, latency.",
		Long: `Summarizes the audit events of a vault over a time range (default: the last
24 hours): operations per hour, failures by result and reason, the top
callers, and latency percentiles (p50, p90, p99) of durationMs.`,
		Example: `  keyhaven monitor insights show --vault-name myvault
  keyhaven monitor insights show --resource /subscriptions/.../vaults/myvault --offset 7d`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rid, err := t.resolve(cmd.Context(), a, "resource")
			if err != nil {
				return err
			}
			if rid == "" {
				return usageErrorf("usage error: --vault-name or --resource is required")
			}
			q := url.Values{"resourceId": {rid}}
			if err := w.query(a, q); err != nil {
				return err
			}
			out, err := a.auditCall(cmd.Context(), http.MethodGet, "/insights", q, nil)
			if err != nil {
				return err
			}
			if a.output == "table" && a.query == "" {
				return a.print(auditInsightsRow(out))
			}
			return a.print(out)
		},
	}
	t.bind(cmd, "resource")
	w.bind(cmd)
	return cmd
}

// auditInsightsRow is the one-line table view of an insights summary.
func auditInsightsRow(v any) any {
	m, _ := v.(map[string]any)
	lat, _ := m["latency"].(map[string]any)
	row := map[string]any{
		"from": m["from"], "to": m["to"], "total": m["total"], "failures": m["failures"],
		"p50Ms": lat["p50"], "p90Ms": lat["p90"], "p99Ms": lat["p99"],
	}
	if callers, _ := m["topCallers"].([]any); len(callers) > 0 {
		c, _ := callers[0].(map[string]any)
		name := auditStr(c["upn"])
		for _, k := range []string{"oid", "appid", "callerIpAddress"} {
			if name == "" {
				name = auditStr(c[k])
			}
		}
		row["topCaller"] = name
	}
	return row
}
