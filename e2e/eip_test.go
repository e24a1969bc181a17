package e2e

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/testbed"
)

const eip = "203.0.113.5"

// TestEIPTraffic sends real traffic between an inet host and a VM through its EIP, at
// every hook (XDP; TC through tcx; TC through the clsact fallback for older kernels),
// with the endpoints' checksum offload on and off.
func TestEIPTraffic(t *testing.T) {
	for _, hook := range []string{"xdp", "tc", "clsact"} {
		for _, offload := range []bool{true, false} {
			name := hook + "/tx-checksum-off"
			if offload {
				name = hook + "/tx-checksum-on"
			}
			t.Run(name, func(t *testing.T) { testEIPTraffic(t, hook, offload) })
		}
	}
}

func testEIPTraffic(t *testing.T, hook string, offload bool) {
	g := newGateway(t, hook, offload)
	g.attach(t)
	g.eipdp(t, "bind", eip, testbed.VM1Addr, g.mac(t, g.VM1))

	t.Run("ping both ways", func(t *testing.T) {
		if _, err := g.Inet1.Run(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", eip); err != nil {
			t.Error(err)
		}
		if _, err := g.VM1.Run(10*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", testbed.Inet1Addr); err != nil {
			t.Error(err)
		}
	})

	const size = 10 << 20
	t.Run("tcp 10MB from vm to inet", func(t *testing.T) {
		got := tcpTransfer(t, g.Inet1, testbed.Inet1Addr+":5001", g.VM1, testbed.Inet1Addr+":5001", size)
		if !got.Intact {
			t.Fatalf("received %d bytes of %d, or changed", got.Bytes, size)
		}
		if got.RemoteAddr != eip {
			t.Errorf("inet host saw the VM as %s, want the EIP %s", got.RemoteAddr, eip)
		}
	})
	t.Run("tcp 10MB from inet to eip", func(t *testing.T) {
		got := tcpTransfer(t, g.VM1, ":5002", g.Inet1, eip+":5002", size)
		if !got.Intact {
			t.Fatalf("received %d bytes of %d, or changed", got.Bytes, size)
		}
		if got.RemoteAddr != testbed.Inet1Addr {
			t.Errorf("VM saw the inet host as %s, want its real address %s", got.RemoteAddr, testbed.Inet1Addr)
		}
	})
	t.Run("udp both ways", func(t *testing.T) {
		msg := []byte("hello through the EIP, 1234567890")
		srvSaw, cliSaw := udpExchange(t, g.Inet1, testbed.Inet1Addr+":6001", g.VM1, testbed.Inet1Addr+":6001", msg)
		if srvSaw != eip || cliSaw != testbed.Inet1Addr {
			t.Errorf("vm->inet: inet saw %s (want %s), vm saw reply from %s (want %s)", srvSaw, eip, cliSaw, testbed.Inet1Addr)
		}
		srvSaw, cliSaw = udpExchange(t, g.VM1, ":6002", g.Inet2, eip+":6002", msg)
		if srvSaw != testbed.Inet2Addr || cliSaw != eip {
			t.Errorf("inet->eip: vm saw %s (want %s), inet saw reply from %s (want %s)", srvSaw, testbed.Inet2Addr, cliSaw, eip)
		}
	})
	t.Run("udp 4KiB datagram fragmented both ways", func(t *testing.T) {
		msg := make([]byte, 4096)
		_, _ = pattern(4).Read(msg)
		udpExchange(t, g.VM1, ":6003", g.Inet1, eip+":6003", msg)
		udpExchange(t, g.Inet1, testbed.Inet1Addr+":6004", g.VM1, testbed.Inet1Addr+":6004", msg)
	})
	t.Run("port unreachable comes back translated", func(t *testing.T) {
		err := udpToClosedPort(t, g.VM1, testbed.Inet1Addr+":6999")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("read after sending to a closed port: %v, want ECONNREFUSED from a translated ICMP port unreachable", err)
		}
		err = udpToClosedPort(t, g.Inet1, eip+":6999")
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("inet host to a closed port on the EIP: %v, want ECONNREFUSED", err)
		}
	})
	t.Run("ttl expiry answered on the way", func(t *testing.T) {
		// From the VM: hop 1 is the gateway's kernel (TTL 1 passed to it), hop 2
		// the router, whose time exceeded is addressed to the EIP and translated.
		out, err := g.VM1.Run(30*time.Second, "tracepath", "-n", "-m", "5", testbed.Inet1Addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{testbed.GWVPCAddr, testbed.RouterGWAddr, testbed.Inet1Addr} {
			if !strings.Contains(string(out), want) {
				t.Errorf("tracepath from the VM does not show %s:\n%s", want, out)
			}
		}
		if !strings.Contains(string(out), "reached") {
			t.Errorf("tracepath from the VM did not reach the inet host:\n%s", out)
		}
		// From the internet: the router, then the gateway (TTL 1 at the uplink),
		// then the EIP itself.
		out, err = g.Inet1.Run(30*time.Second, "tracepath", "-n", "-m", "5", eip)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{testbed.RouterInetAddr, testbed.GWUplinkAddr, eip, "reached"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("tracepath to the EIP does not show %s:\n%s", want, out)
			}
		}
	})

	c := g.counters(t)
	e, ok := c.EIPs[eip]
	if !ok || e.InPackets == 0 || e.OutPackets == 0 || e.InBytes < size || e.OutBytes < size {
		t.Errorf("EIP counters do not show the traffic: %v", c)
	}
	if c.Reasons["pass_ttl_expiring"] == 0 {
		t.Errorf("no TTL expiry was counted after tracepath: %v", c)
	}
	for r, n := range c.Reasons {
		if strings.HasPrefix(r, "drop_") {
			t.Errorf("well-formed traffic was dropped: %s=%d", r, n)
		}
	}
}
