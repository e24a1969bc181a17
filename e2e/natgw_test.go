package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// udpEcho answers every datagram on h at addr with what it got, until the test ends.
func udpEcho(t *testing.T, h *testbed.Host, addr string) {
	t.Helper()
	c, err := h.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo(buf[:n], from)
		}
	}()
}

// udpFlow is one connected UDP socket on an instance: one NAT mapping.
type udpFlow struct{ conn net.Conn }

func openFlow(h *testbed.Host, dial string) (*udpFlow, error) {
	c, err := h.Dial("udp4", dial, time.Second)
	if err != nil {
		return nil, err
	}
	return &udpFlow{conn: c}, nil
}

// echo sends a datagram and waits for it to come back; an ICMP error the gateway
// sent for it surfaces as the read's error.
func (f *udpFlow) echo(msg string) error {
	_ = f.conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := f.conn.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := f.conn.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != msg {
		return fmt.Errorf("echo %q came back as %q", msg, buf[:n])
	}
	return nil
}

func (d *daemon) natSessions(t *testing.T, filter ...string) []map[string]any {
	t.Helper()
	m := d.must(t, append([]string{"describe-nat-gateway-sessions", "--nat-gateway-id", "ngw-1", "--page-size", "100"}, filter...)...)
	var out []map[string]any
	for _, s := range m["Sessions"].(map[string]any)["Session"].([]any) {
		out = append(out, s.(map[string]any))
	}
	return out
}

// refusedErr tells a refused flow's error: the gateway's ICMP 3/13 (communication
// administratively prohibited) reaches a connected UDP socket as EHOSTUNREACH.
func refusedErr(err error) bool {
	return errors.Is(err, syscall.EHOSTUNREACH)
}

// TestNatGateway: three instances share a NAT gateway with two EIPs; the mapping is
// endpoint-independent as a STUN client sees it; a source is held to its port
// quota and the pool to its ports, with ICMP 3/13 for refused flows while established
// ones keep working; a forward entry publishes an HTTP server to the internet and,
// hairpinned, to another instance.
func TestNatGateway(t *testing.T) {
	d := newDaemonWith(t, "xdp", func(s *eipd.LocalSetup) {
		s.EIPGateway = testbed.GWVPCAddr // also the source of ICMP 3/13
		s.Nat = eipd.NatSettings{PortRange: "20000-20099", MaxPortsPerSource: 50, MaxSessionsPerSource: 80}
	})
	d.start(t, true)
	for i, vm := range []struct {
		h    *testbed.Host
		addr string
	}{{d.VM1, testbed.VM1Addr}, {d.VM2, testbed.VM2Addr}, {d.VM3, testbed.VM3Addr}} {
		d.registerVM(t, fmt.Sprintf("i-vm%d", i+1), vm.h, vm.addr)
	}
	d.must(t, "create-nat-gateway", "--nat-gateway-id", "ngw-1", "--vpc-id", "vpc-1")
	idA, eipA := d.allocate(t)
	idB, eipB := d.allocate(t)
	for _, id := range []string{idA, idB} {
		d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "ngw-1", "--instance-type", "Nat")
	}
	snat := d.must(t, "create-snat-entry", "--snat-table-id", "stb-1", "--source-cidr", "10.0.0.0/16",
		"--snat-ip", eipA+","+eipB)["SnatEntryId"].(string)
	ours := func(addr string) bool {
		ip, _, _ := strings.Cut(addr, ":")
		return ip == eipA || ip == eipB
	}

	// Every instance reaches both internet hosts over TCP, UDP and ping.
	vms := []*testbed.Host{d.VM1, d.VM2, d.VM3}
	inets := []struct {
		h    *testbed.Host
		addr string
	}{{d.Inet1, testbed.Inet1Addr}, {d.Inet2, testbed.Inet2Addr}}
	for i, vm := range vms {
		for j, in := range inets {
			port := 7200 + 10*i + j
			tr := tcpTransfer(t, in.h, fmt.Sprintf("%s:%d", in.addr, port), vm, fmt.Sprintf("%s:%d", in.addr, port), 1<<20)
			if !tr.Intact || !ours(tr.RemoteAddr) {
				t.Errorf("%s -> %s TCP: %+v", vm.Name, in.addr, tr)
			}
			saw, _ := udpExchange(t, in.h, fmt.Sprintf("%s:%d", in.addr, port), vm, fmt.Sprintf("%s:%d", in.addr, port), []byte("hello"))
			if !ours(saw) {
				t.Errorf("%s -> %s UDP seen from %s", vm.Name, in.addr, saw)
			}
			if out, err := vm.Run(10*time.Second, "ping", "-c", "2", "-W", "2", in.addr); err != nil {
				t.Errorf("%s ping %s: %v\n%s", vm.Name, in.addr, err, out)
			}
		}
	}

	// STUN: one socket, two servers at two addresses, one mapped address.
	for _, in := range inets {
		srv, err := testbed.ServeStun(in.h, in.addr+":3478")
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Close()
	}
	stunSock, err := d.VM1.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	m1, err1 := testbed.StunMappedAddress(stunSock, testbed.Inet1Addr+":3478")
	m2, err2 := testbed.StunMappedAddress(stunSock, testbed.Inet2Addr+":3478")
	stunSock.Close()
	if err1 != nil || err2 != nil {
		t.Fatalf("STUN: %v %v", err1, err2)
	}
	if m1 != m2 || !ours(m1.String()) {
		t.Errorf("STUN mapped addresses %v and %v: the mapping is not endpoint-independent", m1, m2)
	}
	found := false
	for _, s := range d.natSessions(t, "--internal-ip", testbed.VM1Addr, "--ip-protocol", "udp") {
		if s["ExternalIp"] == m1.Addr().String() && int(s["ExternalPort"].(float64)) == int(m1.Port()) && s["RemotePort"].(float64) == 3478 {
			found = true
		}
	}
	if !found {
		t.Errorf("eipctl does not list the STUN session on %v", m1)
	}
	usage := d.must(t, "describe-nat-gateway-port-usage", "--nat-gateway-id", "ngw-1")
	if n := len(usage["PortUsages"].(map[string]any)["PortUsage"].([]any)); n != 2 {
		t.Errorf("port usage for %d EIPs: %v", n, usage)
	}

	// Fragments out of order, both ways (RFC 4787 REQ-14): the last fragment first.
	// Each datagram arrives whole, from the EIP outbound and to the VM inbound.
	t.Run("fragments out of order", func(t *testing.T) {
		vmSock, err := d.VM1.ListenPacket("udp4", ":7301")
		if err != nil {
			t.Fatal(err)
		}
		defer vmSock.Close()
		inetSock, err := d.Inet1.ListenPacket("udp4", testbed.Inet1Addr+":7301")
		if err != nil {
			t.Fatal(err)
		}
		defer inetSock.Close()
		sendReversed := func(h *testbed.Host, from, to netip.AddrPort, id uint16, payload []byte) {
			t.Helper()
			dgram, err := testbed.UDPDatagram(from, to, id, payload)
			if err != nil {
				t.Fatal(err)
			}
			frags, err := testbed.FragmentIPv4(dgram, 1480)
			if err != nil {
				t.Fatal(err)
			}
			for i := len(frags) - 1; i >= 0; i-- {
				if err := h.SendIPv4(frags[i], to.Addr()); err != nil {
					t.Fatal(err)
				}
			}
		}
		receive := func(c net.PacketConn) ([]byte, net.Addr) {
			t.Helper()
			buf := make([]byte, 8192)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				t.Fatalf("the fragmented datagram never arrived whole: %v", err)
			}
			return buf[:n], from
		}
		out := bytes.Repeat([]byte("outbound fragments "), 200) // 3,800 bytes: three fragments
		sendReversed(d.VM1, netip.MustParseAddrPort(testbed.VM1Addr+":7301"), netip.MustParseAddrPort(testbed.Inet1Addr+":7301"), 0x4242, out)
		got, from := receive(inetSock)
		if !bytes.Equal(got, out) || !ours(from.String()) {
			t.Fatalf("inet1 got %d bytes (intact: %v) from %v", len(got), bytes.Equal(got, out), from)
		}
		back := bytes.Repeat([]byte("inbound fragments "), 200)
		sendReversed(d.Inet1, netip.MustParseAddrPort(testbed.Inet1Addr+":7301"), netip.MustParseAddrPort(from.String()), 0x4343, back)
		got, from = receive(vmSock)
		if !bytes.Equal(got, back) || from.String() != testbed.Inet1Addr+":7301" {
			t.Fatalf("vm1 got %d bytes (intact: %v) from %v", len(got), bytes.Equal(got, back), from)
		}
		rc := metricValue(d.metrics(t), `eipgw_dataplane_packets_total{verdict="held",reason="held_fragment"}`)
		if rc != "4" {
			t.Errorf("held fragments counted: %s, want 4 (two each way)", rc)
		}
	})

	// Deleting the entry purges its sessions.
	d.must(t, "delete-snat-entry", "--snat-table-id", "stb-1", "--snat-entry-id", snat)
	if left := d.natSessions(t); len(left) != 0 {
		t.Fatalf("%d sessions left after the SNAT entry went", len(left))
	}

	// Quota: one instance floods new flows; at 50 ports it is refused with ICMP 3/13
	// (EHOSTUNREACH at the socket) while another instance still opens flows.
	udpEcho(t, d.Inet1, testbed.Inet1Addr+":9000")
	echoAddr := testbed.Inet1Addr + ":9000"
	snat = d.must(t, "create-snat-entry", "--snat-table-id", "stb-1", "--source-cidr", "10.0.0.0/16",
		"--snat-ip", eipA)["SnatEntryId"].(string)
	var held []*udpFlow
	defer func() {
		for _, f := range held {
			f.conn.Close()
		}
	}()
	refused := 0
	for i := 0; i < 60; i++ {
		f, err := openFlow(d.VM1, echoAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.echo(fmt.Sprintf("vm1 flow %d", i)); err != nil {
			f.conn.Close()
			if !refusedErr(err) {
				t.Errorf("flow %d failed with %v, want a refusal", i, err)
			}
			refused++
			continue
		}
		held = append(held, f)
	}
	if len(held) != 50 || refused != 10 {
		t.Errorf("vm1 opened %d flows and was refused %d, want 50 and 10", len(held), refused)
	}
	metrics := d.metrics(t)
	if v := metricValue(metrics, `eipgw_nat_refusals_total{cause="port_quota"}`); v != "10" {
		t.Errorf("port quota refusals counted: %q", v)
	}
	// The pool: vm2 takes the other 50 ports of EIP A; flow 101 (vm3) is refused.
	for i := 0; i < 50; i++ {
		f, err := openFlow(d.VM2, echoAddr)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.echo(fmt.Sprintf("vm2 flow %d", i)); err != nil {
			t.Fatalf("vm2 flow %d (port %d of 100): %v", i, 51+i, err)
		}
		held = append(held, f)
	}
	f101, err := openFlow(d.VM3, echoAddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := f101.echo("flow 101"); !refusedErr(err) {
		t.Errorf("flow 101 with every port taken: %v, want a refusal", err)
	}
	f101.conn.Close()
	if v := metricValue(d.metrics(t), `eipgw_nat_refusals_total{cause="ports_exhausted"}`); v != "1" {
		t.Errorf("exhaustion refusals counted: %q", v)
	}
	for i, f := range held {
		if err := f.echo(fmt.Sprintf("again %d", i)); err != nil {
			t.Errorf("established flow %d stopped working: %v", i, err)
		}
	}
	// Port use is a gauge of the collector's last pass (every nat.collect_interval,
	// 1 s here), not a scan per scrape.
	portsLine := fmt.Sprintf(`eipgw_nat_ports_in_use{eip=%q,protocol="udp"}`, eipA)
	waitFor(t, "the collector to count 100 UDP ports in use on "+eipA, 5*time.Second, func() bool {
		return metricValue(d.metrics(t), portsLine) == "100"
	})
	for _, f := range held {
		f.conn.Close()
	}
	held = nil
	d.must(t, "delete-snat-entry", "--snat-table-id", "stb-1", "--snat-entry-id", snat)
	d.must(t, "create-snat-entry", "--snat-table-id", "stb-1", "--source-cidr", "10.0.0.0/16", "--snat-ip", eipA)

	// DNAT: EIP B:8080 publishes VM1's HTTP server, to the internet and hairpinned.
	ln, err := d.VM1.Listen("tcp", testbed.VM1Addr+":80")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.RemoteAddr)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fwd := d.must(t, "create-forward-entry", "--forward-table-id", "ftb-1", "--external-ip", eipB, "--external-port", "8080",
		"--internal-ip", testbed.VM1Addr, "--internal-port", "80", "--ip-protocol", "TCP")["ForwardEntryId"].(string)
	get := func(from *testbed.Host) string {
		t.Helper()
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			DialContext: func(_ context.Context, network, addr string) (net.Conn, error) {
				return from.Dial(network, addr, 5*time.Second)
			}}}
		resp, err := client.Get("http://" + eipB + ":8080/")
		if err != nil {
			t.Fatalf("%s GET through the forward entry: %v", from.Name, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	if saw := get(d.Inet1); !strings.HasPrefix(saw, testbed.Inet1Addr+":") {
		t.Errorf("the server saw the internet client as %s", saw)
	}
	if saw := get(d.VM2); !strings.HasPrefix(saw, eipA+":") {
		t.Errorf("hairpinned, the server saw VM2 as %s, want its external address %s", saw, eipA)
	}
	if ss := d.natSessions(t, "--external-ip", eipB); len(ss) == 0 {
		t.Error("no DNAT sessions listed on EIP B")
	}
	// An EIP in use by an entry cannot be disassociated; once the entry is gone it
	// can, and its sessions are gone with it.
	if _, errText := d.ctl(t, "unassociate-eip-address", "--allocation-id", idB, "--instance-id", "ngw-1", "--instance-type", "Nat"); !strings.Contains(errText, "DependencyViolation") {
		t.Errorf("disassociating an EIP used by a forward entry: %q", errText)
	}
	d.must(t, "delete-forward-entry", "--forward-table-id", "ftb-1", "--forward-entry-id", fwd)
	d.must(t, "unassociate-eip-address", "--allocation-id", idB, "--instance-id", "ngw-1", "--instance-type", "Nat")
	if ss := d.natSessions(t, "--external-ip", eipB); len(ss) != 0 {
		t.Errorf("%d sessions on EIP B after it left the gateway", len(ss))
	}
	if _, err := d.Inet1.Dial("tcp", eipB+":8080", time.Second); err == nil {
		t.Error("the forward entry still answers after deletion")
	}

}
