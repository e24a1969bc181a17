package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/eipgw/eipgw/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the Prometheus endpoint, on the standard client library (its exposition,
// content negotiation and the process and Go runtime collectors): API requests and
// latencies are counted here, eipgw_build_info says which build runs, and the
// daemon registers collectors for the rest (the dataplane's counters, read at scrape
// time). Make it with NewMetrics.
type Metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	latencies *prometheus.HistogramVec
}

// NewMetrics makes the registry with the API's own metrics and the standard ones.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipgw_api_requests_total", Help: "API requests by action, result code and HTTP status.",
		}, []string{"action", "code", "status"}),
		latencies: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "eipgw_api_request_duration_seconds", Help: "API request latency by action.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5},
		}, []string{"action"}),
	}
	build := buildinfo.Read()
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eipgw_build_info", Help: "Always 1: the running build's version, VCS revision and Go version.",
		ConstLabels: prometheus.Labels{"version": build.Version, "revision": build.Revision, "goversion": build.GoVersion},
	})
	info.Set(1)
	m.registry.MustRegister(m.requests, m.latencies, info,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return m
}

// Register adds collectors (the daemon's: dataplane, NAT, repairs, pools).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := m.registry.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Observe records one request. Actions are the known ones or "none" (the server
// never passes a name a client made up), so the label values stay bounded.
func (m *Metrics) Observe(action, code string, status int, d time.Duration) {
	if m == nil {
		return
	}
	if action == "" {
		action = "none"
	}
	if code == "" {
		code = "OK"
	}
	m.requests.WithLabelValues(action, code, strconv.Itoa(status)).Inc()
	m.latencies.WithLabelValues(action).Observe(d.Seconds())
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry, for tests that gather it.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }
