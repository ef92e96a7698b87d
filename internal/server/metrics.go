package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/keyhaven/keyhaven/internal/store"
)

// metrics are the server's Prometheus series. Operation labels come from the
// handler (e.g. SecretGet, VaultPut), so cardinality stays bounded.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	storeLat *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "keyhaven_http_requests_total",
		Help: "HTTP requests by plane, operation and status code.",
	}, []string{"plane", "operation", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keyhaven_http_request_duration_seconds",
		Help:    "HTTP request latency by plane and operation.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"plane", "operation"})
	m.storeLat = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "keyhaven_store_operation_duration_seconds",
		Help:    "Store latency by operation (get, list, update, view) and outcome.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"op", "outcome"})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "keyhaven_http_requests_in_flight",
		Help: "Requests being served.",
	})
	m.reg.MustRegister(m.requests, m.latency, m.storeLat, m.inflight,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// instrumentedStore times every store call.
type instrumentedStore struct {
	store.Store
	h *prometheus.HistogramVec
}

var _ store.Store = instrumentedStore{}

func (s instrumentedStore) observe(op string, start time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case err == store.ErrNotFound:
		outcome = "not_found"
	case err == store.ErrConflict:
		outcome = "conflict"
	default:
		outcome = "error"
	}
	s.h.WithLabelValues(op, outcome).Observe(time.Since(start).Seconds())
}

func (s instrumentedStore) Get(ctx context.Context, key string) (store.Record, error) {
	start := time.Now()
	r, err := s.Store.Get(ctx, key)
	s.observe("get", start, err)
	return r, err
}

func (s instrumentedStore) List(ctx context.Context, prefix string, o store.ListOptions) ([]store.Record, error) {
	start := time.Now()
	r, err := s.Store.List(ctx, prefix, o)
	s.observe("list", start, err)
	return r, err
}

func (s instrumentedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	start := time.Now()
	err := s.Store.Update(ctx, fn)
	s.observe("update", start, err)
	return err
}

func (s instrumentedStore) View(ctx context.Context, fn func(store.Reader) error) error {
	start := time.Now()
	err := s.Store.View(ctx, fn)
	s.observe("view", start, err)
	return err
}
