package e2e

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

// pattern is a deterministic byte stream, so both ends can check every byte.
func pattern(seed int64) io.Reader { return rand.New(rand.NewSource(seed)) }

type transfer struct {
	bytes      int64
	sum        [32]byte
	remoteAddr string // what the receiver saw as the sender's address
	err        error
}

// tcpTransfer sends size bytes from client to server over TCP and returns what the
// receiving side saw. Every step has a deadline.
func tcpTransfer(t *testing.T, server *testbed.Host, listen string, client *testbed.Host, dial string, size int64) (transfer, [32]byte) {
	t.Helper()
	l, err := server.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan transfer, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- transfer{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		tr := transfer{bytes: n, remoteAddr: c.RemoteAddr().(*net.TCPAddr).IP.String(), err: err}
		copy(tr.sum[:], h.Sum(nil))
		got <- tr
	}()
	c, err := client.Dial("tcp", dial, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", dial, client.Name, err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(c, h), io.LimitReader(pattern(size), size)); err != nil {
		t.Fatalf("send: %v", err)
	}
	c.(*net.TCPConn).CloseWrite()
	var sent [32]byte
	copy(sent[:], h.Sum(nil))
	select {
	case tr := <-got:
		c.Close()
		return tr, sent
	case <-time.After(35 * time.Second):
		t.Fatal("transfer did not finish in time")
	}
	return transfer{}, sent
}

// udpExchange sends one datagram from client to server and a reply back, and returns
// the address each side saw the other at.
func udpExchange(t *testing.T, server *testbed.Host, listen string, client *testbed.Host, dial string, msg []byte) (serverSaw, clientSaw string) {
	t.Helper()
	srv, err := server.ListenPacket("udp4", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := client.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	dst, err := net.ResolveUDPAddr("udp4", dial)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	_ = srv.SetDeadline(deadline)
	_ = cli.SetDeadline(deadline)
	if _, err := cli.WriteTo(msg, dst); err != nil {
		t.Fatalf("udp send: %v", err)
	}
	buf := make([]byte, 65536)
	n, from, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatalf("udp receive on %s: %v", server.Name, err)
	}
	if !bytes.Equal(buf[:n], msg) {
		t.Fatalf("udp datagram changed on the way: got %d bytes, sent %d", n, len(msg))
	}
	reply := append([]byte("re:"), msg[:8]...)
	if _, err := srv.WriteTo(reply, from); err != nil {
		t.Fatalf("udp reply: %v", err)
	}
	n, back, err := cli.ReadFrom(buf)
	if err != nil {
		t.Fatalf("udp reply receive on %s: %v", client.Name, err)
	}
	if !bytes.Equal(buf[:n], reply) {
		t.Fatalf("udp reply changed on the way")
	}
	return from.(*net.UDPAddr).IP.String(), back.(*net.UDPAddr).IP.String()
}

// udpToClosedPort sends a datagram on a connected socket to a port nobody listens on
// and returns the error the next read gets: ECONNREFUSED when the ICMP port
// unreachable came back and matched the socket.
func udpToClosedPort(t *testing.T, client *testbed.Host, dial string) error {
	t.Helper()
	c, err := client.Dial("udp4", dial, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("anyone?")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 64))
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
