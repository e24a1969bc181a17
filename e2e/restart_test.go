package e2e

import (
	"crypto/sha256"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startServe runs `eipdp serve` in the gateway and waits until it serves.
func (g *gateway) startServe(t *testing.T) (*exec.Cmd, *testbed.OutputBuffer) {
	t.Helper()
	out := &testbed.OutputBuffer{}
	cmd := exec.Command(bin("eipdp"), "--pin-dir", g.pinDir, "serve",
		"--uplink", testbed.GWUplink, "--vpc", testbed.GWVPC, "--hook", g.hook, "--interval", "200ms")
	cmd.Stdout, cmd.Stderr = out, out
	if err := g.GW.Start(cmd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "eipdp serve to attach", 10*time.Second, func() bool { return strings.Contains(out.String(), "serving") })
	return cmd, out
}

// TestRestartKeepsTrafficFlowing kills the process that loaded the dataplane with
// SIGKILL in the middle of a TCP stream through the EIP, checks that traffic still
// flows with no process at all, and starts it again: it must adopt the pins, and the
// stream must finish intact on its one connection.
func TestRestartKeepsTrafficFlowing(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) { testRestart(t, hook) })
	}
}

func testRestart(t *testing.T, hook string) {
	g := newGateway(t, hook, true)
	g.eipdp(t, "bind", eip, testbed.VM1Addr, g.mac(t, g.VM1))
	first, _ := g.startServe(t)

	l, err := g.Inet1.Listen("tcp", testbed.Inet1Addr+":7001")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var received atomic.Int64
	type result struct {
		sum    [32]byte
		remote string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			h.Write(buf[:n])
			received.Add(int64(n))
			if err == io.EOF {
				break
			}
			if err != nil {
				done <- result{err: err}
				return
			}
		}
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.remote = c.RemoteAddr().(*net.TCPAddr).IP.String()
		done <- r
	}()

	conn, err := g.VM1.Dial("tcp", testbed.Inet1Addr+":7001", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	// A paced stream, bounded in count: 400 chunks of 16 KiB, one every 10 ms.
	sent := sha256.New()
	src := pattern(7)
	writeErr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 16<<10)
		for i := 0; i < 400; i++ {
			_, _ = io.ReadFull(src, chunk)
			sent.Write(chunk)
			if _, err := conn.Write(chunk); err != nil {
				writeErr <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		writeErr <- conn.(*net.TCPConn).CloseWrite()
	}()

	waitFor(t, "the stream to start", 5*time.Second, func() bool { return received.Load() > 256<<10 })
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	before := g.counters(t).EIPs[eip]

	// Nobody holds the dataplane now: the pinned links keep it forwarding.
	atKill := received.Load()
	waitFor(t, "traffic with no loader process", 5*time.Second, func() bool { return received.Load() > atKill+256<<10 })

	_, out := g.startServe(t)
	if !strings.Contains(out.String(), "adopted pins: true") {
		t.Errorf("the restarted process did not adopt the pins:\n%s", out.String())
	}
	if err := <-writeErr; err != nil {
		t.Fatalf("sender: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("receiver: %v (the connection did not survive the restart)", r.err)
	}
	var want [32]byte
	copy(want[:], sent.Sum(nil))
	if received.Load() != 400*16<<10 || r.sum != want {
		t.Errorf("received %d bytes, sha256 match %v; sent %d", received.Load(), r.sum == want, 400*16<<10)
	}
	if r.remote != eip {
		t.Errorf("inet host saw %s, want the EIP", r.remote)
	}
	after := g.counters(t).EIPs[eip]
	if after.OutBytes <= before.OutBytes {
		t.Errorf("EIP counters did not carry on across the restart: before %+v, after %+v", before, after)
	}
}
