package api

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Metrics is the Prometheus endpoint: API requests and latencies counted here, and
// the dataplane's counters read through Collect at scrape time. It writes the text
// exposition format itself: a few lines do not need a client library.
type Metrics struct {
	// Collect writes the dataplane's metrics (per-EIP traffic, drops and passes).
	Collect func(w io.Writer)

	mu        sync.Mutex
	requests  map[[3]string]uint64 // action, code, status
	latencies map[string]*histogram
}

var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

type histogram struct {
	counts []uint64
	sum    float64
	n      uint64
}

// Observe records one request.
func (m *Metrics) Observe(action, code string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.requests == nil {
		m.requests, m.latencies = map[[3]string]uint64{}, map[string]*histogram{}
	}
	if action == "" {
		action = "none"
	}
	if code == "" {
		code = "OK"
	}
	m.requests[[3]string{action, code, fmt.Sprint(status)}]++
	h := m.latencies[action]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(latencyBuckets))}
		m.latencies[action] = h
	}
	for i, b := range latencyBuckets {
		if d.Seconds() <= b {
			h.counts[i]++
		}
	}
	h.sum += d.Seconds()
	h.n++
}

// Write writes every metric in the text format.
func (m *Metrics) Write(w io.Writer) {
	if m == nil {
		return
	}
	m.mu.Lock()
	fmt.Fprintln(w, "# HELP eipgw_api_requests_total API requests by action, result code and HTTP status.")
	fmt.Fprintln(w, "# TYPE eipgw_api_requests_total counter")
	keys := make([][3]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
	for _, k := range keys {
		fmt.Fprintf(w, "eipgw_api_requests_total{action=%q,code=%q,status=%q} %d\n", k[0], k[1], k[2], m.requests[k])
	}
	fmt.Fprintln(w, "# HELP eipgw_api_request_duration_seconds API request latency by action.")
	fmt.Fprintln(w, "# TYPE eipgw_api_request_duration_seconds histogram")
	actions := make([]string, 0, len(m.latencies))
	for a := range m.latencies {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	for _, a := range actions {
		h := m.latencies[a]
		for i, b := range latencyBuckets {
			fmt.Fprintf(w, "eipgw_api_request_duration_seconds_bucket{action=%q,le=\"%g\"} %d\n", a, b, h.counts[i])
		}
		fmt.Fprintf(w, "eipgw_api_request_duration_seconds_bucket{action=%q,le=\"+Inf\"} %d\n", a, h.n)
		fmt.Fprintf(w, "eipgw_api_request_duration_seconds_sum{action=%q} %g\n", a, h.sum)
		fmt.Fprintf(w, "eipgw_api_request_duration_seconds_count{action=%q} %d\n", a, h.n)
	}
	m.mu.Unlock()
	if m.Collect != nil {
		m.Collect(w)
	}
}
