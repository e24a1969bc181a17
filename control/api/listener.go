package api

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits bound what one client can hold of the API server: time to send a request,
// time a kept-alive connection may sit idle, request size, connections at once.
type Limits struct {
	ReadHeaderTimeout time.Duration // the request line and headers
	ReadTimeout       time.Duration // the whole request, body included
	WriteTimeout      time.Duration // the reply
	IdleTimeout       time.Duration // between requests on a kept-alive connection
	MaxConnections    int           // accepted at once; more wait in the kernel's backlog
}

// DefaultLimits suit an API whose requests are small forms answered in milliseconds.
var DefaultLimits = Limits{ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
	WriteTimeout: 60 * time.Second, IdleTimeout: 60 * time.Second, MaxConnections: 1024}

// maxHeaderBytes is what Go's server reads of a request line and headers before it
// answers a bare 431 itself; the handler answers anything over maxRequestHeader with
// a JSON error first, so only a request past this much more generous bound sees that.
const (
	maxHeaderBytes   = 1 << 20
	maxRequestHeader = 64 << 10
	maxRequestBody   = 1 << 20
)

// NewHTTPServer is an HTTP server for handler with the limits.
func NewHTTPServer(handler http.Handler, l Limits) *http.Server {
	return &http.Server{Handler: handler, ReadHeaderTimeout: l.ReadHeaderTimeout, ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: maxHeaderBytes}
}

// LimitListener bounds the connections accepted at once.
func LimitListener(ln net.Listener, l Limits) net.Listener {
	if l.MaxConnections <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, l.MaxConnections)
}
