package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Etcd is an etcd server (Debian's etcd-server package) running in a host, with its
// data in a directory of its own.
type Etcd struct {
	Host *Host
	// Endpoint is where clients reach it (http://addr:port).
	Endpoint string
	addr     string
	dir      string
	cmd      *exec.Cmd
}

// EtcdBinary is the server the tests start.
const EtcdBinary = "etcd"

// StartEtcd runs etcd in h, serving clients on addr (ip:port, an address of h), its
// data in a new directory under dir. Its transaction and request limits are raised
// for a gateway's start (a reconcile pass settles every pending association at once).
func StartEtcd(h *Host, addr, dir string) (*Etcd, error) {
	if _, err := exec.LookPath(EtcdBinary); err != nil {
		return nil, fmt.Errorf("etcd server (Debian's etcd-server): %w", err)
	}
	data, err := os.MkdirTemp(dir, "etcd-")
	if err != nil {
		return nil, err
	}
	e := &Etcd{Host: h, Endpoint: "http://" + addr, addr: addr, dir: data}
	if err := e.start(); err != nil {
		os.RemoveAll(data)
		return nil, err
	}
	return e, nil
}

func (e *Etcd) start() error {
	host, _, err := net.SplitHostPort(e.addr)
	if err != nil {
		return err
	}
	e.cmd = exec.Command(EtcdBinary, "--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.Endpoint, "--advertise-client-urls", e.Endpoint,
		"--listen-peer-urls", "http://"+net.JoinHostPort(host, "2380"), "--initial-advertise-peer-urls", "http://"+net.JoinHostPort(host, "2380"),
		"--initial-cluster", "test=http://"+net.JoinHostPort(host, "2380"),
		"--max-txn-ops", "100000", "--max-request-bytes", "33554432", "--log-level", "warn")
	log, err := os.Create(filepath.Join(e.dir, "etcd.log"))
	if err != nil {
		return err
	}
	e.cmd.Stdout, e.cmd.Stderr = log, log
	if err := e.Host.Start(e.cmd); err != nil {
		log.Close()
		return err
	}
	log.Close()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if e.healthy() {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	raw, _ := os.ReadFile(filepath.Join(e.dir, "etcd.log"))
	return fmt.Errorf("etcd was not healthy on %s within 15 s:\n%s", e.addr, raw)
}

// healthy tells whether etcd answers its health check: it has elected itself leader
// and serves requests. It accepts connections before that, and a client's first
// request then waits for the election, past a test's one-second timeout (a store's
// open failed so in CI).
func (e *Etcd) healthy() bool {
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return e.Host.Dial("tcp", e.addr, 200*time.Millisecond)
		}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(e.Endpoint + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return err == nil && resp.StatusCode == http.StatusOK && bytes.Contains(body, []byte(`"health":"true"`))
}

// Stop stops the server (SIGTERM, then SIGKILL), keeping its data for Restart.
func (e *Etcd) Stop() error {
	if e.cmd == nil || e.cmd.Process == nil {
		return nil
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-done
	}
	e.cmd = nil
	return nil
}

// Restart starts the stopped server again over the same data.
func (e *Etcd) Restart() error {
	if e.cmd != nil {
		return errors.New("etcd: still running")
	}
	return e.start()
}

// Close stops the server and removes its data.
func (e *Etcd) Close() error {
	err := e.Stop()
	return errors.Join(err, os.RemoveAll(e.dir))
}

// EtcdForTest starts etcd on 127.0.0.1:2379 in a namespace of its own, for a test's
// clients that dial from inside it (dial); both go when the test ends.
func EtcdForTest(t testing.TB) (srv *Etcd, dial func(ctx context.Context, addr string) (net.Conn, error)) {
	t.Helper()
	RequireEtcd(t)
	h, err := NewHost(fmt.Sprintf("etcd-t%d", time.Now().UnixNano()%1000000))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if srv, err = StartEtcd(h, "127.0.0.1:2379", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv, func(ctx context.Context, addr string) (net.Conn, error) { return h.Dial("tcp", addr, time.Second) }
}
