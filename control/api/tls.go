package api

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"
)

// Certificate is the API's TLS certificate, read from files and read again on
// Reload (eipd reloads on SIGHUP): a renewed certificate is served to new
// connections without a restart, and a reload that fails keeps the one in use.
type Certificate struct {
	CertFile, KeyFile string

	mu   sync.RWMutex
	cert *tls.Certificate
}

// Reload reads the certificate and key files.
func (c *Certificate) Reload() error {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s and key %s: %w", c.CertFile, c.KeyFile, err)
	}
	c.mu.Lock()
	c.cert = &cert
	c.mu.Unlock()
	return nil
}

// TLSConfig serves the current certificate, TLS 1.2 and later only.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c.mu.RLock()
			defer c.mu.RUnlock()
			if c.cert == nil {
				return nil, fmt.Errorf("no TLS certificate loaded")
			}
			return c.cert, nil
		},
	}
}

// NewHTTPClient is an HTTP client for the API that trusts, besides the system's
// roots, the PEM certificates in caFile (a gateway's own CA or self-signed
// certificate); with caFile empty, the system's roots only.
func NewHTTPClient(caFile string) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport, Timeout: 30 * time.Second}, nil
}
