package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// mbps is a transfer's rate in Mbit/s.
func mbps(tr testbed.Transfer) float64 {
	return float64(tr.Bytes) * 8 / tr.Elapsed.Seconds() / 1e6
}

// TestBandwidthLimit: an EIP's Bandwidth is enforced in both directions on a single
// TCP flow, which still gets close to it (the policer's bucket holds 250 ms of
// traffic, dataplane.BurstFor), at XDP and at TC; ModifyEipAddressAttribute changes it
// before its reply, for a flow already running too; what the policer drops is counted
// for the EIP; DescribeEipMonitorData then gives back the traffic sent.
func TestBandwidthLimit(t *testing.T) {
	for _, hook := range []string{"xdp", "tc"} {
		t.Run(hook, func(t *testing.T) { bandwidthLimit(t, hook) })
	}
}

func bandwidthLimit(t *testing.T, hook string) {
	d := newDaemon(t, hook)
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	started := time.Now().UTC()
	alloc := d.must(t, "allocate-eip-address", "--bandwidth", "10")
	id, eip := alloc["AllocationId"].(string), alloc["EipAddress"].(string)
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1")

	out := tcpTransfer(t, d.Inet1, testbed.Inet1Addr+":7501", d.VM1, testbed.Inet1Addr+":7501", 4<<20)
	in := tcpTransfer(t, d.VM1, ":7502", d.Inet1, eip+":7502", 4<<20)
	for _, c := range []struct {
		dir string
		tr  testbed.Transfer
	}{{"out", out}, {"in", in}} {
		t.Logf("at 10 Mbit/s, %s: %.1f Mbit/s", c.dir, mbps(c.tr))
		if !c.tr.Intact || mbps(c.tr) > 11.5 || mbps(c.tr) < 8 {
			t.Errorf("at 10 Mbit/s, one TCP flow %s: %.1f Mbit/s (intact %v)", c.dir, mbps(c.tr), c.tr.Intact)
		}
	}
	metrics := d.metrics(t)
	if !strings.Contains(metrics, fmt.Sprintf("eipgw_eip_dropped_packets_total{eip=%q,direction=\"out\"}", eip)) ||
		strings.Contains(metrics, fmt.Sprintf("eipgw_eip_dropped_packets_total{eip=%q,direction=\"out\"} 0\n", eip)) {
		t.Errorf("no outbound drops counted for %s over its bandwidth", eip)
	}

	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "40")
	out = tcpTransfer(t, d.Inet1, testbed.Inet1Addr+":7503", d.VM1, testbed.Inet1Addr+":7503", 12<<20)
	t.Logf("at 40 Mbit/s, out: %.1f Mbit/s", mbps(out))
	if !out.Intact || mbps(out) > 46 || mbps(out) < 32 {
		t.Errorf("at 40 Mbit/s, one TCP flow out: %.1f Mbit/s", mbps(out))
	}

	// A flow running while the limit goes from 10 to 80 Mbit/s speeds up: 8 MiB at
	// 10 Mbit/s alone would take 6.7 s.
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "10")
	done := tcpTransferAsync(t, d.Inet1, testbed.Inet1Addr+":7504", d.VM1, testbed.Inet1Addr+":7504", 8<<20)
	time.Sleep(time.Second)
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "80")
	tr := <-done
	t.Logf("10 then 80 Mbit/s: 8 MiB in %v", tr.Elapsed)
	if !tr.Intact || tr.Elapsed > 4*time.Second {
		t.Errorf("a flow across a change from 10 to 80 Mbit/s: %v, intact %v", tr.Elapsed, tr.Intact)
	}

	// Held: UDP sent at 3x the limit arrives at no more than 1.1x it, while a second
	// EIP of another instance, at 100 Mbit/s, carries a TCP flow untouched.
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "10")
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	alloc2 := d.must(t, "allocate-eip-address", "--bandwidth", "100")
	d.must(t, "associate-eip-address", "--allocation-id", alloc2["AllocationId"].(string), "--instance-id", "i-vm2")
	other := tcpTransferAsync(t, d.Inet2, testbed.Inet2Addr+":7505", d.VM2, testbed.Inet2Addr+":7505", 24<<20)
	// Past the bucket's first burst (full after an idle second), at the rate.
	const flood = 3 * time.Second
	arrived := udpFlood(t, d.Inet1, testbed.Inet1Addr+":7506", d.VM1, 30e6, flood)
	delivered := float64(arrived-int64(dataplane.BurstFor(10e6))) * 8 / flood.Seconds() / 1e6
	t.Logf("UDP at 30 Mbit/s through a 10 Mbit/s EIP: %d bytes, %.1f Mbit/s past the first burst", arrived, delivered)
	if delivered > 11 || delivered < 7 {
		t.Errorf("UDP at 3x a 10 Mbit/s limit: %.1f Mbit/s delivered past the first burst", delivered)
	}
	tr2 := <-other
	t.Logf("meanwhile through the 100 Mbit/s EIP: %.1f Mbit/s", mbps(tr2))
	if !tr2.Intact || mbps(tr2) < 80 {
		t.Errorf("a second EIP while the first is held: %.1f Mbit/s (intact %v)", mbps(tr2), tr2.Intact)
	}
	if hook != "xdp" {
		return
	}

	// eipd samples the counters at each minute: once the next one has passed, the
	// minutes since the start hold what was sent: 24 MiB out, 4 MiB in, as IP bytes
	// (a little more: headers, and the ACKs of the other direction).
	time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 3*time.Second)))
	mon := d.must(t, "describe-eip-monitor-data", "--allocation-id", id,
		"--start-time", started.Truncate(time.Minute).Format("2006-01-02T15:04:05Z"),
		"--end-time", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	var rx, tx, packets float64
	for _, p := range mon["EipMonitorDatas"].(map[string]any)["EipMonitorData"].([]any) {
		m := p.(map[string]any)
		rx, tx, packets = rx+m["EipRX"].(float64), tx+m["EipTX"].(float64), packets+m["EipPackets"].(float64)
	}
	const outBytes, inBytes = (4 + 12 + 8) << 20, 4 << 20
	t.Logf("monitor data: RX %.0f, TX %.0f bytes, %.0f packets", rx, tx, packets)
	if tx < outBytes || tx > 1.2*outBytes || rx < inBytes || rx > 1.2*inBytes || packets < (outBytes+inBytes)/1500 {
		t.Errorf("monitor data: RX %.0f (sent %d), TX %.0f (sent %d), %.0f packets", rx, inBytes, tx, outBytes, packets)
	}
}

// tcpTransferAsync is testbed.TCPTransfer in the background: its result arrives on the
// channel (zero, the error reported, if it failed).
func tcpTransferAsync(t *testing.T, server *testbed.Host, listen string, client *testbed.Host, dial string, size int64) <-chan testbed.Transfer {
	done := make(chan testbed.Transfer, 1)
	go func() {
		tr, err := testbed.TCPTransfer(server, listen, client, dial, size)
		if err != nil {
			t.Error(err)
		}
		done <- tr
	}()
	return done
}

// udpFlood sends 1,200-byte datagrams from client to listen (on server) at rate bits
// a second for d, and returns the IP bytes that arrived. Bounded: at most rate*d
// worth of datagrams, and the receiver stops 500 ms after the sender.
func udpFlood(t *testing.T, server *testbed.Host, listen string, client *testbed.Host, rate float64, d time.Duration) int64 {
	t.Helper()
	const size = 1200
	pc, err := server.ListenPacket("udp4", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	received := make(chan int64, 1)
	go func() {
		var n int64
		buf := make([]byte, 2048)
		_ = pc.SetReadDeadline(time.Now().Add(d + 500*time.Millisecond))
		for {
			m, _, err := pc.ReadFrom(buf)
			if err != nil {
				break
			}
			n += int64(m + 28) // IP bytes, as the limit counts them
		}
		received <- n
	}()
	c, err := client.Dial("udp4", listen, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	total := int(rate * d.Seconds() / 8 / (size + 28))
	start := time.Now()
	payload := make([]byte, size)
	for i := 0; i < total; i++ {
		// Paced: datagram i leaves no earlier than its share of d.
		if ahead := time.Duration(float64(i)/float64(total)*float64(d)) - time.Since(start); ahead > time.Millisecond {
			time.Sleep(ahead)
		}
		_, _ = c.Write(payload)
	}
	return <-received
}

// TestBandwidthLimitNatGateway: a NAT gateway's EIP is held to its Bandwidth like any
// other: one SNAT TCP flow through a 10 Mbit/s EIP.
func TestBandwidthLimitNatGateway(t *testing.T) {
	d := newDaemonWith(t, "xdp", func(s *eipd.LocalSetup) { s.EIPGateway = testbed.GWVPCAddr })
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	d.must(t, "create-nat-gateway", "--nat-gateway-id", "ngw-1", "--vpc-id", "vpc-1")
	alloc := d.must(t, "allocate-eip-address", "--bandwidth", "10")
	id, eip := alloc["AllocationId"].(string), alloc["EipAddress"].(string)
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "ngw-1", "--instance-type", "Nat")
	d.must(t, "create-snat-entry", "--snat-table-id", "stb-1", "--source-cidr", testbed.VM1Addr+"/32", "--snat-ip", eip)
	tr := tcpTransfer(t, d.Inet1, testbed.Inet1Addr+":7511", d.VM1, testbed.Inet1Addr+":7511", 4<<20)
	t.Logf("SNAT through a 10 Mbit/s NAT gateway EIP: %.1f Mbit/s", mbps(tr))
	if !tr.Intact || tr.RemoteAddr != eip || mbps(tr) > 11.5 || mbps(tr) < 8 {
		t.Errorf("SNAT through a 10 Mbit/s EIP: %.1f Mbit/s from %s (intact %v)", mbps(tr), tr.RemoteAddr, tr.Intact)
	}
}

// TestBandwidthPackage: two EIPs of two instances, each at 100 Mbit/s of its own,
// added to a 30 Mbit/s shared bandwidth (CommonBandwidthPackage) carry 30 Mbit/s
// together, one TCP flow each at the same time; ModifyCommonBandwidthPackageSpec to
// 60 takes effect before its reply.
func TestBandwidthPackage(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	pkg := d.must(t, "create-common-bandwidth-package", "--bandwidth", "30")["BandwidthPackageId"].(string)
	for _, vm := range []string{"i-vm1", "i-vm2"} {
		id := d.must(t, "allocate-eip-address", "--bandwidth", "100")["AllocationId"].(string)
		d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", vm)
		d.must(t, "add-common-bandwidth-package-ip", "--bandwidth-package-id", pkg, "--ip-instance-id", id)
	}
	// Both EIPs send at once; what arrives past the package's one first burst is
	// held to its rate.
	together := func(mbit int, size int64, port int) {
		t.Helper()
		start := time.Now()
		a := tcpTransferAsync(t, d.Inet1, fmt.Sprintf("%s:%d", testbed.Inet1Addr, port), d.VM1,
			fmt.Sprintf("%s:%d", testbed.Inet1Addr, port), size)
		b := tcpTransferAsync(t, d.Inet2, fmt.Sprintf("%s:%d", testbed.Inet2Addr, port+1), d.VM2,
			fmt.Sprintf("%s:%d", testbed.Inet2Addr, port+1), size)
		ta, tb := <-a, <-b
		elapsed := time.Since(start)
		sum := float64(ta.Bytes+tb.Bytes-int64(dataplane.BurstFor(uint64(mbit)*1e6))) * 8 / elapsed.Seconds() / 1e6
		t.Logf("two EIPs in a %d Mbit/s package: %.1f and %.1f Mbit/s each, %.1f together past the first burst",
			mbit, mbps(ta), mbps(tb), sum)
		if !ta.Intact || !tb.Intact || sum > 1.1*float64(mbit) || sum < 0.75*float64(mbit) {
			t.Errorf("two EIPs in a %d Mbit/s package carried %.1f Mbit/s together (intact %v %v)", mbit, sum, ta.Intact, tb.Intact)
		}
	}
	together(30, 8<<20, 7521)
	d.must(t, "modify-common-bandwidth-package-spec", "--bandwidth-package-id", pkg, "--bandwidth", "60")
	together(60, 16<<20, 7523)
}
