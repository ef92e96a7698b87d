package audit

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/keyhaven/keyhaven/internal/principal"
)

// BenchmarkMiddleware measures what auditing adds to a request: building
// the event and one durable SQLite transaction (event, two index entries,
// stream head).
func BenchmarkMiddleware(b *testing.B) {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := principal.InfoFrom(r.Context())
		info.OperationName, info.ResourceID = "SecretGet", testVault
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"value":"v","id":"https://v1.vault.localhost/secrets/a/1"}`))
	})
	run := func(b *testing.B, h http.Handler) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := withInfo(httptest.NewRequest("GET", "https://v1.vault.localhost/secrets/a?api-version=7.5", nil),
				&principal.Info{RequestID: "r", Principal: userPrincipal()})
			h.ServeHTTP(httptest.NewRecorder(), r)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, inner) })
	b.Run("audited", func(b *testing.B) {
		e := newEnv(b, Options{})
		run(b, e.log.Middleware(inner))
	})
	b.Run("not-auditable-path", func(b *testing.B) {
		e := newEnv(b, Options{Auditable: func(*http.Request) bool { return false }})
		run(b, e.log.Middleware(inner))
	})
}
