package api

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
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
// answers 431 itself (made JSON by Listener); the handler answers anything over
// maxRequestHeader with its own JSON error first.
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

// Listener bounds the connections accepted at once, serves TLS with tlsConfig (nil:
// plain HTTP), and makes the error replies that Go's server writes by itself (before
// any handler runs: a request line and headers past its limit, a malformed request)
// JSON with a Code, like every other reply: inside TLS, where they are still plain
// text.
func Listener(ln net.Listener, l Limits, tlsConfig *tls.Config) net.Listener {
	if l.MaxConnections > 0 {
		ln = netutil.LimitListener(ln, l.MaxConnections)
	}
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	return jsonErrorsListener{ln}
}

type jsonErrorsListener struct{ net.Listener }

func (l jsonErrorsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return jsonErrorsConn{c}, nil
}

// jsonErrorsConn rewrites net/http's canned error replies, which it writes whole in one
// write and alone recognise by their headers (text/plain, then Connection: close).
type jsonErrorsConn struct{ net.Conn }

const cannedErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c jsonErrorsConn) Write(p []byte) (int, error) {
	status, _, ok := bytes.Cut(p, []byte(cannedErrorHeaders))
	if !ok || !bytes.HasPrefix(status, []byte("HTTP/1.1 ")) {
		return c.Conn.Write(p)
	}
	line := string(status[len("HTTP/1.1 "):]) // "431 Request Header Fields Too Large[: detail]"
	code, text, _ := strings.Cut(line, " ")
	statusCode, err := strconv.Atoi(code)
	if err != nil {
		return c.Conn.Write(p)
	}
	name, detail, _ := strings.Cut(text, ": ")
	message := name + "."
	if detail != "" {
		message = name + ": " + detail + "."
	}
	body, _ := json.Marshal(map[string]string{"Code": strings.ReplaceAll(name, " ", ""), "Message": message,
		"RequestId": requestID()})
	reply := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		statusCode, http.StatusText(statusCode), len(body), body)
	if _, err := c.Conn.Write([]byte(reply)); err != nil {
		return 0, err
	}
	return len(p), nil
}
