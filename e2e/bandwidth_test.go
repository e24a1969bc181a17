package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// linuxDefaultCongestion is the TCP congestion control the flows use: Linux's default
// (CUBIC), the one most senders through a gateway run. A machine's own default can
// differ (this development machine's is BBR, whose policer detection paces a flow at
// the policed rate and so hides how a policer treats a loss-based sender).
const linuxDefaultCongestion = "cubic"

// mbps is a transfer's rate in Mbit/s.
func mbps(tr testbed.Transfer) float64 {
	return float64(tr.Bytes) * 8 / tr.Elapsed.Seconds() / 1e6
}

// TestBandwidthLimit: an EIP's Bandwidth is enforced in both directions on a single
// TCP flow (CUBIC), which still gets within 10% of it at 20 and at 200 Mbit/s (the
// policer's bucket holds 250 ms of traffic, dataplane.BurstFor), at XDP and at TC,
// measured by iperf3; ModifyEipAddressAttribute changes it before its reply, for a flow already
// running too (reached within a second, no stall); UDP sent at 3x the limit arrives
// at no more than 1.1x it while a second EIP is untouched; what the policer drops is
// counted for the EIP; DescribeEipMonitorData then gives back the traffic that passed.
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
	alloc := d.must(t, "allocate-eip-address", "--bandwidth", "20")
	id, eip := alloc["AllocationId"].(string), alloc["EipAddress"].(string)
	d.must(t, "associate-eip-address", "--allocation-id", id, "--instance-id", "i-vm1")
	// out: the instance sends to the internet host, which connects to the EIP; in:
	// the internet host sends to the instance, which connects out.
	var outBytes, inBytes int64
	out := func(port int, measure, omit time.Duration, udp float64) testbed.IperfResult {
		t.Helper()
		r := runIperf(t, testbed.Iperf{Server: d.VM1, Listen: testbed.VM1Addr, Client: d.Inet1, Target: eip, Port: port,
			Duration: measure, Omit: omit, UDPBitrate: udp, Congestion: linuxDefaultCongestion})
		outBytes += r.Total
		return r
	}
	in := func(port int, measure, omit time.Duration) testbed.IperfResult {
		t.Helper()
		r := runIperf(t, testbed.Iperf{Server: d.Inet1, Listen: testbed.Inet1Addr, Client: d.VM1, Target: testbed.Inet1Addr,
			Port: port, Duration: measure, Omit: omit, Congestion: linuxDefaultCongestion})
		inBytes += r.Total
		return r
	}
	// One TCP flow each way, its first second (slow start, the bucket's first burst)
	// left out. Over a policer the flow alternates bursts at the link's rate with
	// pauses where it lost a window's tail; the bucket holds the pause's refill. With
	// CUBIC both rates stay within 10% (188-206 Mbit/s at 200 over five runs of this
	// test, XDP and TC; with this machine's BBR default, 11 of 92 flows got less than 180).
	for i, rate := range []float64{20, 200} {
		if rate != 20 {
			d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", fmt.Sprint(rate))
		}
		for _, c := range []struct {
			dir string
			r   testbed.IperfResult
		}{{"out", out(7501+2*i, 6*time.Second, time.Second, 0)}, {"in", in(7502+2*i, 6*time.Second, time.Second)}} {
			got := c.r.Bits / 1e6
			t.Logf("at %.0f Mbit/s, one TCP flow %s (%s): %.1f Mbit/s", rate, c.dir, c.r.SenderCongestion, got)
			if got > 1.1*rate || got < 0.9*rate {
				t.Errorf("at %.0f Mbit/s, one TCP flow %s: %.1f Mbit/s, outside %.0f-%.0f", rate, c.dir, got, 0.9*rate, 1.1*rate)
			}
		}
	}
	metrics := d.metrics(t)
	if v := metricValue(metrics, fmt.Sprintf(`eipgw_eip_dropped_packets_total{eip=%q,direction="out"}`, eip)); v == "" || v == "0" {
		t.Errorf("no outbound drops counted for %s over its bandwidth", eip)
	}

	// A flow running while the limit goes from 20 to 50 Mbit/s: at 50 within a second
	// of the reply, and never a second without data. It runs 8 s, so that the span
	// after the change is over 4 s, as the steady flows above are measured: over 2.4 s
	// a loss of one TCP flow at the policer took it to 44.6 Mbit/s once in CI.
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "20")
	running := make(chan testbed.IperfResult, 1)
	go func() { running <- out(7511, 8*time.Second, 0, 0) }()
	time.Sleep(2500 * time.Millisecond)
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "50")
	replied := time.Now()
	r := <-running
	// The receiver's intervals start with the test, after the client started and
	// connected (r.Started is before both): in their time the reply came a little
	// before at. So the span before the change ends half a second short of at, and
	// none of it ran at the new rate (one CI run that ended it at at measured 25.2
	// Mbit/s "before" against a bound of 23.1).
	at := replied.Sub(r.Started).Seconds()
	before, after := r.Rate(1, at-0.5), r.Rate(at+1, 8)
	// Over a span of s seconds a token bucket lets through its rate plus what it held
	// at the start, at most one burst (an idle moment refills it).
	most := func(bits, s float64) float64 { return bits + 8*float64(dataplane.BurstFor(uint64(bits)))/s }
	t.Logf("20 then 50 Mbit/s (reply %.1f s in): %.1f before, %.1f from a second after the reply; longest stall %.1f s",
		at, before/1e6, after/1e6, r.LongestStall())
	if before > most(20e6, at-1.5) || after < 0.9*50e6 || after > most(50e6, 7-at) || r.LongestStall() > 1 {
		t.Errorf("a flow across a change from 20 to 50 Mbit/s: %.1f before, %.1f after, stalled %.1f s",
			before/1e6, after/1e6, r.LongestStall())
	}

	// Held: UDP sent at 3x the limit arrives at no more than 1.1x it (past the first
	// burst), while a second EIP of another instance, at 100 Mbit/s, carries a TCP flow
	// within 10% of its own limit.
	d.must(t, "modify-eip-address-attribute", "--allocation-id", id, "--bandwidth", "20")
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	alloc2 := d.must(t, "allocate-eip-address", "--bandwidth", "100")
	d.must(t, "associate-eip-address", "--allocation-id", alloc2["AllocationId"].(string), "--instance-id", "i-vm2")
	other := make(chan testbed.IperfResult, 1)
	go func() {
		other <- runIperf(t, testbed.Iperf{Server: d.VM2, Listen: testbed.VM2Addr, Client: d.Inet2,
			Target: alloc2["EipAddress"].(string), Port: 7521, Duration: 4 * time.Second, Omit: time.Second, Congestion: linuxDefaultCongestion})
	}()
	udp := out(7522, 4*time.Second, time.Second, 60e6)
	t.Logf("UDP at 60 Mbit/s through a 20 Mbit/s EIP: %.1f Mbit/s arrived", udp.Bits/1e6)
	if udp.Bits > 1.1*20e6 || udp.Bits < 0.8*20e6 {
		t.Errorf("UDP at 3x a 20 Mbit/s limit: %.1f Mbit/s arrived", udp.Bits/1e6)
	}
	tr2 := <-other
	t.Logf("meanwhile through the 100 Mbit/s EIP: %.1f Mbit/s", tr2.Bits/1e6)
	if tr2.Bits < 90e6 || tr2.Bits > 110e6 {
		t.Errorf("a second EIP while the first is held: %.1f Mbit/s", tr2.Bits/1e6)
	}
	if hook != "xdp" {
		return
	}

	// eipd samples the counters at each minute: once the next one has passed, the
	// minutes since the start hold what passed: at least what arrived, as IP bytes a
	// little more (headers; the ACKs of the other direction).
	time.Sleep(time.Until(time.Now().Truncate(time.Minute).Add(time.Minute + 3*time.Second)))
	mon := d.must(t, "describe-eip-monitor-data", "--allocation-id", id,
		"--start-time", started.Truncate(time.Minute).Format("2006-01-02T15:04:05Z"),
		"--end-time", time.Now().UTC().Format("2006-01-02T15:04:05Z"))
	var rx, tx, packets, dropped float64
	for _, p := range mon["EipMonitorDatas"].(map[string]any)["EipMonitorData"].([]any) {
		m := p.(map[string]any)
		rx, tx, packets = rx+m["EipRX"].(float64), tx+m["EipTX"].(float64), packets+m["EipPackets"].(float64)
		dropped += m["EipDroppedBytes"].(float64)
	}
	o, i := float64(outBytes), float64(inBytes)
	t.Logf("monitor data: RX %.0f, TX %.0f bytes, %.0f packets, %.0f bytes dropped; iperf3 received %.0f out, %.0f in",
		rx, tx, packets, dropped, o, i)
	// The UDP test alone sent 40 Mbit/s more than the EIP's 20 for five seconds.
	if dropped < 0.8*40e6/8*5 {
		t.Errorf("monitor data: %.0f bytes dropped over the bandwidth, want at least the UDP excess", dropped)
	}
	if tx < o || tx > 1.2*o || rx < i || rx > 1.2*i+0.05*o || packets < (o+i)/1500 {
		t.Errorf("monitor data: RX %.0f (arrived %.0f), TX %.0f (arrived %.0f), %.0f packets", rx, i, tx, o, packets)
	}
}

// runIperf runs an iperf3 test; if it cannot, the test fails (from any goroutine) and
// the result is empty.
func runIperf(t *testing.T, p testbed.Iperf) testbed.IperfResult {
	t.Helper()
	r, err := p.Run()
	if err != nil {
		t.Error(err)
	}
	return r
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
// together: each sends UDP at the package's whole rate at once, and what arrives
// past the first second is within 10% of 30; ModifyCommonBandwidthPackageSpec to 60
// takes effect before its reply; ModifyCommonBandwidthPackageIpBandwidth caps one EIP
// at 10 of the 60, and UDP sent through it at 30 arrives at 10 within 10%. UDP,
// because it keeps sending into the shared bucket whatever the other flow does, so
// the sum is the policer's alone: two TCP flows through one tail-dropping bucket share
// it unevenly (one backs off for seconds).
func TestBandwidthPackage(t *testing.T) {
	d := newDaemon(t, "xdp")
	d.start(t, true)
	d.registerVM(t, "i-vm1", d.VM1, testbed.VM1Addr)
	d.registerVM(t, "i-vm2", d.VM2, testbed.VM2Addr)
	pkg := d.must(t, "create-common-bandwidth-package", "--bandwidth", "30")["BandwidthPackageId"].(string)
	var eips, ids []string
	for _, vm := range []string{"i-vm1", "i-vm2"} {
		alloc := d.must(t, "allocate-eip-address", "--bandwidth", "100")
		d.must(t, "associate-eip-address", "--allocation-id", alloc["AllocationId"].(string), "--instance-id", vm)
		d.must(t, "add-common-bandwidth-package-ip", "--bandwidth-package-id", pkg, "--ip-instance-id", alloc["AllocationId"].(string))
		eips, ids = append(eips, alloc["EipAddress"].(string)), append(ids, alloc["AllocationId"].(string))
	}
	together := func(mbit float64, port int) {
		t.Helper()
		send := func(server *testbed.Host, listen string, client *testbed.Host, eip string, port int) <-chan testbed.IperfResult {
			done := make(chan testbed.IperfResult, 1)
			go func() {
				done <- runIperf(t, testbed.Iperf{Server: server, Listen: listen, Client: client, Target: eip, Port: port,
					Duration: 4 * time.Second, Omit: time.Second, UDPBitrate: mbit * 1e6})
			}()
			return done
		}
		a := send(d.VM1, testbed.VM1Addr, d.Inet1, eips[0], port)
		b := send(d.VM2, testbed.VM2Addr, d.Inet2, eips[1], port+1)
		ra, rb := <-a, <-b
		sum := (ra.Bits + rb.Bits) / 1e6
		t.Logf("two EIPs in a %.0f Mbit/s package, each sending UDP at %.0f: %.1f and %.1f Mbit/s arrived, %.1f together",
			mbit, mbit, ra.Bits/1e6, rb.Bits/1e6, sum)
		if sum > 1.1*mbit || sum < 0.9*mbit {
			t.Errorf("two EIPs in a %.0f Mbit/s package carried %.1f Mbit/s together", mbit, sum)
		}
	}
	together(30, 7521)
	d.must(t, "modify-common-bandwidth-package-spec", "--bandwidth-package-id", pkg, "--bandwidth", "60")
	together(60, 7523)

	d.must(t, "modify-common-bandwidth-package-ip-bandwidth", "--bandwidth-package-id", pkg, "--eip-id", ids[0], "--bandwidth", "10")
	capped := runIperf(t, testbed.Iperf{Server: d.VM1, Listen: testbed.VM1Addr, Client: d.Inet1, Target: eips[0], Port: 7525,
		Duration: 4 * time.Second, Omit: time.Second, UDPBitrate: 30e6})
	t.Logf("an EIP capped at 10 Mbit/s in a 60 Mbit/s package, sending UDP at 30: %.1f Mbit/s arrived", capped.Bits/1e6)
	if got := capped.Bits / 1e6; got > 11 || got < 9 {
		t.Errorf("an EIP capped at 10 Mbit/s in its package carried %.1f Mbit/s", got)
	}
}
