package api

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// writeCert writes a self-signed certificate for 127.0.0.1 named cn, and its key,
// and returns the certificate's PEM.
func writeCert(t *testing.T, certFile, keyFile, cn string) []byte {
	t.Helper()
	if err := WriteSelfSigned(certFile, keyFile, cn, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	return pem
}

// TestHTTPS: the API over TLS answers signed requests of both methods from clients
// that trust its certificate, refuses plain HTTP and TLS 1.1, and serves a renewed
// certificate after Reload; a reload of broken files keeps the one in use.
func TestHTTPS(t *testing.T) {
	a := newTestAPI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeCert(t, certFile, keyFile, "first")
	cert := &Certificate{CertFile: certFile, KeyFile: keyFile}
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: a.srv.Config.Handler}
	go srv.Serve(Listener(ln, DefaultLimits, cert.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, first, 0o644); err != nil {
		t.Fatal(err)
	}
	hc, err := NewHTTPClient(caFile)
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "https://" + ln.Addr().String()
	for _, method := range []string{SignatureV3, SignatureHMACSHA1} {
		c := &Client{Endpoint: endpoint, AccessKeyID: "testid", AccessSecret: "testsecret", RegionID: "eipgw-1", Signature: method, HTTP: hc}
		if _, err := c.Call("DescribeEipAddresses", nil); err != nil {
			t.Errorf("%s over HTTPS: %v", method, err)
		}
	}
	// Plain HTTP to the TLS listener gets no API answer.
	if resp, err := http.Post("http://"+ln.Addr().String()+"/", "application/x-www-form-urlencoded", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP to the TLS listener was answered 200")
		}
	}
	// Go's own error replies are JSON inside TLS too.
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("GARBAGE\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if !bytes.Contains(reply, []byte("application/json")) || !bytes.Contains(reply, []byte(`"Code"`)) {
		t.Errorf("a malformed request over TLS got %q", reply)
	}
	// TLS 1.1 is refused.
	old := &tls.Config{MaxVersion: tls.VersionTLS11, InsecureSkipVerify: true}
	if conn, err := tls.Dial("tcp", ln.Addr().String(), old); err == nil {
		conn.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
	served := func() string {
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	writeCert(t, certFile, keyFile, "renewed")
	if got := served(); got != "first" {
		t.Errorf("before the reload the listener serves %q", got)
	}
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := served(); got != "renewed" {
		t.Errorf("after the reload the listener serves %q", got)
	}
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte("x"), 10), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cert.Reload(); err == nil {
		t.Error("a reload of a broken key succeeded")
	}
	if got := served(); got != "renewed" {
		t.Errorf("after a failed reload the listener serves %q", got)
	}
}
