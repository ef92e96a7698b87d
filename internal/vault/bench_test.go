package vault

import (
	"testing"
)

func BenchmarkGetSecret(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Throttle = Throttle{Transactions: -1, Creates: -1} })
	e.mustSet("bench", `{"value":"a-secret-value-of-moderate-length-0123456789"}`)
	b.ReportAllocs()
	for b.Loop() {
		if w := e.serve(call{method: "GET", target: "/secrets/bench/"}); w.Code != 200 {
			b.Fatal(w.Body)
		}
	}
}

func BenchmarkSetSecret(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Throttle = Throttle{Transactions: -1, Creates: -1} })
	b.ReportAllocs()
	for b.Loop() {
		if w := e.serve(call{method: "PUT", target: "/secrets/bench", body: `{"value":"a-secret-value","tags":{"k":"v"}}`}); w.Code != 200 {
			b.Fatal(w.Body)
		}
	}
}
