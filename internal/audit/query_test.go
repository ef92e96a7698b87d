package audit

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// dataset appends a known set of events: vault v1 gets 10 over three hours,
// v2 gets 2, the global stream 1.
func dataset(t *testing.T, l *Log) {
	t.Helper()
	alice := &Identity{Claim: Claim{OID: userOID, UPN: "alice@keyhaven.local", TID: testTenant}}
	app := &Identity{Claim: Claim{OID: readerOID, AppID: "app-1", TID: testTenant}}
	type row struct {
		rid    string
		at     time.Duration
		op     string
		status int
		desc   string
		who    *Identity
		ms     int64
	}
	rows := []row{
		{testVault, 0, "SecretGet", 200, "", alice, 10},
		{testVault, 5 * time.Minute, "SecretGet", 200, "", alice, 20},
		{testVault, 10 * time.Minute, "SecretSet", 200, "", app, 30},
		{testVault, 20 * time.Minute, "SecretGet", 403, "Access denied", app, 40},
		{testVault, 65 * time.Minute, "SecretGet", 404, "Secret not found", alice, 50},
		{testVault, 70 * time.Minute, "SecretGet", 403, "Access denied", app, 60},
		{testVault, 75 * time.Minute, "SecretList", 200, "", nil, 70},
		{testVault, 130 * time.Minute, "SecretGet", 200, "", alice, 80},
		{testVault, 140 * time.Minute, "SecretDelete", 200, "", alice, 90},
		{testVault, 150 * time.Minute, "SecretGet", 429, "Throttled", alice, 1000},
		{testVault2, 30 * time.Minute, "SecretGet", 200, "", alice, 5},
		{testVault2, 31 * time.Minute, "SecretGet", 200, "", alice, 5},
		{"", 32 * time.Minute, "TokenIssue", 200, "", nil, 3},
	}
	for _, r := range rows {
		rt := "Success"
		if r.status >= 400 {
			rt = "Failure"
		}
		_, err := l.Append(context.Background(), Event{Time: t0.Add(r.at).Format(TimeFormat), ResourceID: r.rid, OperationName: r.op,
			ResultType: rt, ResultSignature: statusSignature(r.status), ResultDescription: r.desc, DurationMs: r.ms, Identity: r.who,
			CallerIPAddress: "192.0.2.1", Properties: Properties{HTTPStatusCode: r.status}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestQuery(t *testing.T) {
	e := newEnv(t, Options{})
	dataset(t, e.log)
	tests := []struct {
		name    string
		f       Filter
		wantOps []string
		wantErr bool
	}{
		{name: "ok/vault", f: Filter{ResourceID: testVault2}, wantOps: []string{"SecretGet", "SecretGet"}},
		{name: "ok/vault-case-insensitive", f: Filter{ResourceID: "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000001/resourcegroups/rg/providers/microsoft.keyvault/vaults/V2"}, wantOps: []string{"SecretGet", "SecretGet"}},
		{name: "ok/all-in-time-order", f: Filter{From: t0.Add(29 * time.Minute), To: t0.Add(65 * time.Minute)}, wantOps: []string{"SecretGet", "SecretGet", "TokenIssue"}},
		{name: "ok/from-inclusive-to-exclusive", f: Filter{ResourceID: testVault, From: t0.Add(5 * time.Minute), To: t0.Add(20 * time.Minute)}, wantOps: []string{"SecretGet", "SecretSet"}},
		{name: "ok/operation", f: Filter{ResourceID: testVault, Operation: "secretset"}, wantOps: []string{"SecretSet"}},
		{name: "ok/result-type", f: Filter{ResourceID: testVault, Result: "Failure"}, wantOps: []string{"SecretGet", "SecretGet", "SecretGet", "SecretGet"}},
		{name: "ok/result-signature", f: Filter{ResourceID: testVault, Result: "Forbidden"}, wantOps: []string{"SecretGet", "SecretGet"}},
		{name: "ok/result-code", f: Filter{ResourceID: testVault, Result: "429"}, wantOps: []string{"SecretGet"}},
		{name: "ok/caller-upn", f: Filter{ResourceID: testVault, Caller: "ALICE@keyhaven.local", Operation: "SecretDelete"}, wantOps: []string{"SecretDelete"}},
		{name: "ok/caller-appid", f: Filter{Caller: "app-1"}, wantOps: []string{"SecretSet", "SecretGet", "SecretGet"}},
		{name: "fail/top-too-large", f: Filter{Top: MaxTop + 1}, wantErr: true},
		{name: "fail/inverted-range", f: Filter{From: t0.Add(time.Hour), To: t0}, wantErr: true},
		{name: "fail/foreign-skiptoken", f: Filter{ResourceID: testVault, SkipToken: "YXVkaXQva2V5"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, next, err := e.log.Query(context.Background(), tc.f)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v", err)
			}
			if err != nil {
				return
			}
			var ops []string
			for _, ev := range evs {
				ops = append(ops, ev.OperationName)
			}
			if !reflect.DeepEqual(ops, tc.wantOps) || next != "" {
				t.Fatalf("ops %v next %q, want %v", ops, next, tc.wantOps)
			}
		})
	}
}

func TestQueryPaging(t *testing.T) {
	e := newEnv(t, Options{})
	dataset(t, e.log)
	var seqs []int64
	f := Filter{ResourceID: testVault, Top: 3}
	for page := 0; page < 10; page++ {
		evs, next, err := e.log.Query(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			seqs = append(seqs, ev.Seq)
		}
		if next == "" {
			break
		}
		f.SkipToken = next
	}
	if !equalInts(seqs, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
		t.Fatalf("paged seqs %v", seqs)
	}
}

func TestInsightsOnKnownDataset(t *testing.T) {
	e := newEnv(t, Options{})
	dataset(t, e.log)
	ins, err := e.log.Insights(context.Background(), testVault, t0, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := &Insights{
		ResourceID: testVault, From: "2024-03-01T10:00:00Z", To: "2024-03-01T13:00:00Z", Total: 10, Failures: 4,
		OperationsOverTime: []HourBucket{
			{Time: "2024-03-01T10:00:00Z", Count: 4, Failures: 1},
			{Time: "2024-03-01T11:00:00Z", Count: 3, Failures: 2},
			{Time: "2024-03-01T12:00:00Z", Count: 3, Failures: 1},
		},
		Operations: []NameCount{{"SecretGet", 7}, {"SecretDelete", 1}, {"SecretList", 1}, {"SecretSet", 1}},
		FailuresByReason: []FailureReason{
			{ResultSignature: "Forbidden", ResultDescription: "Access denied", Count: 2},
			{ResultSignature: "NotFound", ResultDescription: "Secret not found", Count: 1},
			{ResultSignature: "TooManyRequests", ResultDescription: "Throttled", Count: 1},
		},
		TopCallers: []CallerCount{
			{OID: userOID, UPN: "alice@keyhaven.local", Count: 6},
			{OID: readerOID, AppID: "app-1", Count: 3},
			{IPAddress: "192.0.2.1", Count: 1},
		},
		// durations 10..90 and 1000: nearest rank p50 = 5th = 50, p90 = 9th = 90, p99 = 10th.
		Latency: Latency{Count: 10, P50: 50, P90: 90, P99: 1000, Max: 1000},
	}
	if !reflect.DeepEqual(ins, want) {
		g, _ := json.MarshalIndent(ins, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("insights\n got %s\nwant %s", g, w)
	}

	// A window with no events still lists its hours, with zeros.
	empty, err := e.log.Insights(context.Background(), testVault, t0.Add(-2*time.Hour), t0)
	if err != nil || empty.Total != 0 || len(empty.OperationsOverTime) != 2 || empty.Latency != (Latency{}) {
		t.Fatalf("empty window: %+v %v", empty, err)
	}
	// All resources: every stream counts.
	all, err := e.log.Insights(context.Background(), "", t0, t0.Add(3*time.Hour))
	if err != nil || all.Total != 13 {
		t.Fatalf("all: total %d %v", all.Total, err)
	}
}
