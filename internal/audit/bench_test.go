package audit

import (
	"net/http"
	"net/http/httptest"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// benchHandler stands in for a vault read that names its resource.
var benchHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	info := principal.InfoFrom(r.Context())
	info.OperationName, info.ResourceID = "SecretGet", testVault
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"value":"v","id":"https://v1.vault.localhost/secrets/a/1"}`))
})

func benchRequest() *http.Request {
	return withInfo(httptest.NewRequest("GET", "https://v1.vault.localhost/secrets/a?api-version=7.5", nil),
		&principal.Info{RequestID: "r", Principal: userPrincipal()})
}

// BenchmarkMiddleware measures what auditing adds to a request: building
// the event and one durable SQLite transaction (event, two index entries,
// stream head).
func BenchmarkMiddleware(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			h.ServeHTTP(httptest.NewRecorder(), benchRequest())
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, benchHandler) })
	b.Run("audited", func(b *testing.B) {
		e := newEnv(b, Options{})
		run(b, e.log.Middleware(benchHandler))
	})
	b.Run("not-auditable-path", func(b *testing.B) {
		e := newEnv(b, Options{Auditable: func(*http.Request) bool { return false }})
		run(b, e.log.Middleware(benchHandler))
	})
}

// parallelism is goroutines per GOMAXPROCS in the parallel benchmark.
const parallelism = 8

// BenchmarkMiddlewareParallel is the per-request cost with 8 requests in
// flight per core (b.RunParallel with SetParallelism 8: 16 on the 2-core
// benchmark machine), all on one stream: the case group commit exists for.
func BenchmarkMiddlewareParallel(b *testing.B) {
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		b.SetParallelism(parallelism)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, benchRequest())
				if w.Code != 200 {
					b.Errorf("status %d", w.Code)
				}
			}
		})
	}
	b.Run("bare", func(b *testing.B) { run(b, benchHandler) })
	b.Run("audited", func(b *testing.B) {
		e := newEnv(b, Options{})
		run(b, e.log.Middleware(benchHandler))
		reportBatches(b, e.log)
	})
	b.Run("audited-postgres", func(b *testing.B) {
		e := newEnv(b, Options{})
		l := e.newLog(b, pgStores(b, 1)[0], Options{})
		run(b, l.Middleware(benchHandler))
		reportBatches(b, l)
	})
}

// reportBatches adds events per transaction to the benchmark's output.
func reportBatches(b *testing.B, l *Log) {
	var d dto.Metric
	if err := l.m.batchSize.Write(&d); err == nil && d.Histogram.GetSampleCount() > 0 {
		b.ReportMetric(d.Histogram.GetSampleSum()/float64(d.Histogram.GetSampleCount()), "events/tx")
	}
}
