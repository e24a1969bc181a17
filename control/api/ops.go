package api

import (
	"fmt"
	"net/http"
)

// OpsHandler serves what operators and their tools read, without authentication, on
// a listener of its own (loopback by default): GET /metrics (Prometheus exposition)
// and GET /healthz (200 when ready, 503 and the reason when not).
func OpsHandler(m *Metrics, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil {
			if err := ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
