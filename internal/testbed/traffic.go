package testbed

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand"
	"net"
	"time"
)

// Pattern is a deterministic byte stream, so both ends of a transfer can check every
// byte without keeping it.
func Pattern(seed int64) io.Reader { return rand.New(rand.NewSource(seed)) }

// Transfer is what the receiving end of a TCP transfer saw.
type Transfer struct {
	Bytes      int64
	Intact     bool          // the SHA-256 of what arrived equals that of what was sent
	RemoteAddr string        // the sender's address as the receiver saw it
	Elapsed    time.Duration // from the dial to the receiver's last byte
}

// TCPTransfer sends size bytes of Pattern from client to server over one TCP
// connection. Every step has a deadline.
func TCPTransfer(server *Host, listen string, client *Host, dial string, size int64) (Transfer, error) {
	l, err := server.Listen("tcp", listen)
	if err != nil {
		return Transfer{}, err
	}
	defer l.Close()
	type result struct {
		tr  Transfer
		sum []byte
		err error
	}
	got := make(chan result, 1)
	start := time.Now()
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- result{tr: Transfer{Bytes: n, RemoteAddr: c.RemoteAddr().(*net.TCPAddr).IP.String(), Elapsed: time.Since(start)},
			sum: h.Sum(nil), err: err}
	}()
	c, err := client.Dial("tcp", dial, 5*time.Second)
	if err != nil {
		return Transfer{}, fmt.Errorf("dial %s from %s: %w", dial, client.Name, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(c, h), io.LimitReader(Pattern(size), size)); err != nil {
		return Transfer{}, fmt.Errorf("send to %s: %w", dial, err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return Transfer{}, err
	}
	select {
	case r := <-got:
		if r.err != nil {
			return r.tr, fmt.Errorf("receive on %s: %w", server.Name, r.err)
		}
		r.tr.Intact = r.tr.Bytes == size && bytes.Equal(r.sum, h.Sum(nil))
		return r.tr, nil
	case <-time.After(35 * time.Second):
		return Transfer{}, fmt.Errorf("transfer to %s did not finish in time", dial)
	}
}

// UDPExchange sends msg from client to server and a short reply back, checks both
// arrive unchanged, and returns the address each side saw the other at.
func UDPExchange(server *Host, listen string, client *Host, dial string, msg []byte) (serverSaw, clientSaw string, err error) {
	srv, err := server.ListenPacket("udp4", listen)
	if err != nil {
		return "", "", err
	}
	defer srv.Close()
	cli, err := client.ListenPacket("udp4", ":0")
	if err != nil {
		return "", "", err
	}
	defer cli.Close()
	dst, err := net.ResolveUDPAddr("udp4", dial)
	if err != nil {
		return "", "", err
	}
	deadline := time.Now().Add(5 * time.Second)
	_ = srv.SetDeadline(deadline)
	_ = cli.SetDeadline(deadline)
	if _, err := cli.WriteTo(msg, dst); err != nil {
		return "", "", fmt.Errorf("udp send to %s: %w", dial, err)
	}
	buf := make([]byte, 65536)
	n, from, err := srv.ReadFrom(buf)
	if err != nil {
		return "", "", fmt.Errorf("udp receive on %s: %w", server.Name, err)
	}
	if !bytes.Equal(buf[:n], msg) {
		return "", "", fmt.Errorf("udp datagram changed on the way: %d bytes arrived of %d", n, len(msg))
	}
	reply := append([]byte("re:"), msg[:min(8, len(msg))]...)
	if _, err := srv.WriteTo(reply, from); err != nil {
		return "", "", fmt.Errorf("udp reply: %w", err)
	}
	n, back, err := cli.ReadFrom(buf)
	if err != nil {
		return "", "", fmt.Errorf("udp reply receive on %s: %w", client.Name, err)
	}
	if !bytes.Equal(buf[:n], reply) {
		return "", "", fmt.Errorf("udp reply changed on the way")
	}
	return from.(*net.UDPAddr).IP.String(), back.(*net.UDPAddr).IP.String(), nil
}
