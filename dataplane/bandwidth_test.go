package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/desired"
	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestBandwidthPolicer: an EIP's bandwidth, at XDP and at TC, on a frozen clock: a
// full bucket's worth of packets passes at once, the next is dropped and counted (per
// EIP, in packets and bytes, and as drop_over_bandwidth), credit comes back at the set
// rate, each direction has its own bucket, and 0 lifts the limit.
func TestBandwidthPolicer(t *testing.T) {
	l := newLab(t)
	const (
		bits    = 8_000_000 // 1,000,000 bytes a second
		ipBytes = 1000
	)
	burst := BurstFor(bits)
	if burst != 250_000 {
		t.Fatalf("the burst at 8 Mbit/s is %d bytes, want 250 ms of traffic", burst)
	}
	inbound := serialize(t, eth(macRouter, l.uplink.HardwareAddr), ip4(labInet, eipVM1, layers.IPProtocolUDP, 64),
		udp(40000, 53), payload(ipBytes-28))
	outbound := serialize(t, eth(macVM1, l.vpc.HardwareAddr), ip4(privVM1, labInet, layers.IPProtocolUDP, 64),
		udp(53, 40000), payload(ipBytes-28))
	must(t, l.dp.SetBandwidth(eipVM1, bits))
	if got, err := l.dp.Bandwidth(eipVM1); err != nil || got != bits {
		t.Fatalf("bandwidth read back: %d, %v", got, err)
	}
	t.Cleanup(func() { _ = l.dp.freezeSessionClock(0) })
	for i, hook := range []Hook{HookXDP, HookTC} {
		// Each hook starts a second after the last: both buckets are full again.
		start := time.Duration(1000+10*i) * time.Second
		must(t, l.dp.freezeSessionClock(start))
		// Sends frame until it is refused (at most limit times) and says how many
		// passed, all on CPU 0: the policer keeps credit per CPU.
		passes := func(role Role, frame []byte, limit int) int {
			t.Helper()
			n, err := l.passesOnOneCPU(l.program(t, role, hook), hook, l.ingress(role), frame, hookVerdict(hook, verdictRedirect), limit)
			must(t, err)
			return n
		}
		before, counters := l.snapshot(t), mustCounters(t, l, eipVM1)
		passed := passes(RoleUplink, inbound, int(burst))
		if passed != int(burst/ipBytes) {
			t.Errorf("%s: %d packets of %d bytes passed a %d-byte bucket", hook, passed, ipBytes, burst)
		}
		after := mustCounters(t, l, eipVM1)
		if after.InPackets-counters.InPackets != uint64(passed) || after.InDroppedPackets-counters.InDroppedPackets != 1 ||
			after.InDroppedBytes-counters.InDroppedBytes != ipBytes {
			t.Errorf("%s: counters moved %+v -> %+v", hook, counters, after)
		}
		if moved := diffReasons(before, l.snapshot(t)); moved[ReasonDropOverBandwidth.String()] != 1 {
			t.Errorf("%s: reasons moved %v, want one drop_over_bandwidth", hook, moved)
		}
		// The other direction has its own bucket.
		if ret, _ := l.run(t, l.program(t, RoleVPC, hook), hook, l.vpc, outbound); ret != hookVerdict(hook, verdictRedirect) {
			t.Errorf("%s: outbound refused while only inbound is over: %d", hook, ret)
		}
		// 10 ms later there is room for 10 more: credit comes back at the rate.
		must(t, l.dp.freezeSessionClock(start+10*time.Millisecond))
		if refilled := passes(RoleUplink, inbound, int(burst)); refilled != 10 {
			t.Errorf("%s: 10 ms at 1,000,000 bytes a second let %d packets of %d bytes through, want 10", hook, refilled, ipBytes)
		}
	}
	// No limit: everything passes.
	must(t, l.dp.SetBandwidth(eipVM1, 0))
	for i := 0; i < 200; i++ {
		ret, _ := l.run(t, l.program(t, RoleUplink, HookXDP), HookXDP, l.uplink, inbound)
		if ret != hookVerdict(HookXDP, verdictRedirect) {
			t.Fatalf("packet %d refused with the limit lifted: %d", i, ret)
		}
	}
	if _, err := l.dp.Bandwidth(netip.MustParseAddr("203.0.113.99")); err == nil {
		t.Error("the bandwidth of an EIP bound to nothing was read")
	}
}

func mustCounters(t *testing.T, l *lab, eip netip.Addr) EIPCounters {
	t.Helper()
	c, err := l.dp.Counters(eip)
	must(t, err)
	return c
}

// TestBandwidthChanges: the comparison a reconcile pass makes: an EIP with another
// limit than wanted, an EIP limited but not named (lifted), and an EIP the dataplane
// does not carry (left out); none when they match.
func TestBandwidthChanges(t *testing.T) {
	l := newLab(t)
	must(t, l.dp.SetBandwidth(eipVM1, 10_000_000))
	must(t, l.dp.SetBandwidth(eipNoNeigh, 20_000_000))
	absent := netip.MustParseAddr("203.0.113.250")
	want := []desired.Limit{{EIP: eipVM1, Bits: 30_000_000}, {EIP: eipSmallMTU, Bits: 5_000_000}, {EIP: absent, Bits: 1_000_000}}
	got, err := l.dp.BandwidthChanges(want)
	must(t, err)
	expect := map[netip.Addr]uint64{eipVM1: 30_000_000, eipSmallMTU: 5_000_000, eipNoNeigh: 0}
	if byEIP := limitsByEIP(got); len(got) != len(expect) || !maps.Equal(byEIP, expect) {
		t.Fatalf("changes %v, want %v", got, expect)
	}
	must(t, l.dp.SetBandwidths(got))
	if got, err := l.dp.BandwidthChanges(want); err != nil || len(got) != 0 {
		t.Fatalf("after setting them: %v, %v", got, err)
	}
	if bits, err := l.dp.Bandwidth(eipSmallMTU); err != nil || bits != 5_000_000 {
		t.Fatalf("set through the memory mapping: %d, %v", bits, err)
	}
	if err := l.dp.SetBandwidths([]desired.Limit{{EIP: absent, Bits: 1}}); !errors.Is(err, ErrNotBound) {
		t.Fatalf("limiting an EIP the dataplane does not carry: %v", err)
	}
}

// passesOnOneCPU runs frame through prog until the verdict is not pass (at most limit
// times, the refused run included) and returns how many got pass, every run on CPU 0.
func (l *lab) passesOnOneCPU(prog *ebpf.Program, hook Hook, ingress *netlink.LinkAttrs, frame []byte, pass uint32, limit int) (int, error) {
	opts, err := l.runOptions(hook, ingress, frame)
	if err != nil {
		return 0, err
	}
	n := 0
	err = l.host.Do(func() error {
		var cpu0 unix.CPUSet
		cpu0.Set(0)
		if err := unix.SchedSetaffinity(0, &cpu0); err != nil {
			return err
		}
		for i := 0; i <= limit; i++ {
			ret, err := prog.Run(opts)
			if err != nil {
				return err
			}
			if ret != pass {
				return nil
			}
			n++
		}
		return fmt.Errorf("%d runs passed, none refused", n)
	})
	return n, err
}

// limitsByEIP is each limit's bits by EIP.
func limitsByEIP(limits []desired.Limit) map[netip.Addr]uint64 {
	out := map[netip.Addr]uint64{}
	for _, l := range limits {
		out[l.EIP] = l.Bits
	}
	return out
}

// TestSharedBandwidth: EIPs of one shared bandwidth (a bandwidth package) draw on one
// bucket, on a frozen clock: what one takes, the other cannot have, and credit comes
// back at the shared rate for both; an EIP with a limit of its own is untouched; a
// reopened dataplane (a restarted eipd) finds the shared bucket again and changes
// nothing; an EIP that leaves gets its own bucket.
func TestSharedBandwidth(t *testing.T) {
	l := newLab(t)
	const (
		bits    = 8_000_000 // 1,000,000 bytes a second: a 250,000-byte bucket
		ipBytes = 1000
	)
	shared := []desired.Limit{{EIP: eipVM1, Bits: bits, Shared: "cbwp-1"}, {EIP: eipNoNeigh, Bits: bits, Shared: "cbwp-1"}}
	own := desired.Limit{EIP: eipSmallMTU, Bits: bits}
	want := append(slices.Clone(shared), own)
	start := 1000 * time.Second
	// eipVM1's packets are redirected to the instance; eipNoNeigh's, translated, go to
	// the kernel to resolve its neighbour: either way, not dropped.
	passes := inboundPolicing(t, l, want, start)
	redirect, pass := hookVerdict(HookXDP, verdictRedirect), hookVerdict(HookXDP, verdictPass)
	if n := passes(eipVM1, redirect); n != 250 {
		t.Fatalf("%d packets of %d bytes through a full 250,000-byte shared bucket, want 250", n, ipBytes)
	}
	if n := passes(eipNoNeigh, pass); n != 0 {
		t.Errorf("the other EIP of the shared bandwidth passed %d packets from the bucket the first emptied", n)
	}
	if n := passes(eipSmallMTU, redirect); n < 250 {
		t.Errorf("an EIP with its own limit passed %d packets, want a full bucket's 250", n)
	}
	// 10 ms at the shared rate: 10 packets, whichever EIP sends them.
	must(t, l.dp.freezeSessionClock(start+10*time.Millisecond))
	if a, b := passes(eipNoNeigh, pass), passes(eipVM1, redirect); a+b != 10 || a != 10 {
		t.Errorf("10 ms of shared credit: %d packets through one EIP, then %d through the other; want 10 and 0", a, b)
	}
	if changes, err := l.dp.BandwidthChanges(want); err != nil || len(changes) != 0 {
		t.Fatalf("changes with every limit set: %v, %v", changes, err)
	}

	// A restarted eipd: the same limits need no change, and the bucket is still empty.
	cfg := l.dp.cfg
	must(t, l.dp.Close())
	l.dp = mustOpen(t, cfg)
	if changes, err := l.dp.BandwidthChanges(want); err != nil || len(changes) != 0 {
		t.Fatalf("changes after a reopen: %v, %v", changes, err)
	}
	if n := passes(eipVM1, redirect); n != 0 {
		t.Errorf("after a reopen, %d packets passed the empty shared bucket", n)
	}

	// eipNoNeigh leaves the package: its own bucket, full; eipVM1 keeps the shared one.
	alone := []desired.Limit{shared[0], {EIP: eipNoNeigh, Bits: bits}, own}
	changes, err := l.dp.BandwidthChanges(alone)
	if err != nil || len(changes) != 1 || changes[0] != alone[1] {
		t.Fatalf("changes when an EIP leaves the shared bandwidth: %v, %v", changes, err)
	}
	must(t, l.dp.SetBandwidths(changes))
	if n := passes(eipNoNeigh, pass); n != 250 {
		t.Errorf("an EIP out of the shared bandwidth passed %d packets, want its own full bucket's 250", n)
	}
	if n := passes(eipVM1, redirect); n != 0 {
		t.Errorf("the EIP left in the shared bandwidth passed %d packets from its empty bucket", n)
	}
}

// TestCappedInSharedBandwidth: an EIP of a shared bandwidth held to a cap of its own
// (desired.Limit.Cap) takes from its cap and from the shared bucket; the other EIP is
// held only by what the shared bucket has left; a packet the shared bucket refuses
// gives the cap's credit back, so it spends neither; a changed or lifted cap is a
// change, and a restart needs none.
func TestCappedInSharedBandwidth(t *testing.T) {
	l := newLab(t)
	const (
		bits    = 8_000_000 // 1,000,000 bytes a second: a 250,000-byte bucket
		capBits = 4_000_000 // 500,000 bytes a second: a 125,000-byte bucket
		ipBytes = 1000
	)
	want := []desired.Limit{{EIP: eipVM1, Bits: bits, Shared: "cbwp-1", Cap: capBits}, {EIP: eipNoNeigh, Bits: bits, Shared: "cbwp-1"}}
	start := 1000 * time.Second
	passes := inboundPolicing(t, l, want, start)
	redirect, pass := hookVerdict(HookXDP, verdictRedirect), hookVerdict(HookXDP, verdictPass)
	if n := passes(eipVM1, redirect); n != 125 {
		t.Fatalf("the capped EIP passed %d packets of %d bytes from a full 125,000-byte cap, want 125", n, ipBytes)
	}
	if n := passes(eipNoNeigh, pass); n != 125 {
		t.Errorf("the other EIP passed %d packets, want the 125 the shared bucket had left", n)
	}
	// 10 ms: the shared bucket gets 10 packets, the cap 5. The other EIP takes the
	// shared ones; the capped EIP's packets are then refused by the shared bucket, and
	// its cap keeps what they would have spent.
	must(t, l.dp.freezeSessionClock(start+10*time.Millisecond))
	if a, b := passes(eipNoNeigh, pass), passes(eipVM1, redirect); a != 10 || b != 0 {
		t.Errorf("10 ms: %d packets through the other EIP and %d through the capped one; want 10 and 0", a, b)
	}
	must(t, l.dp.freezeSessionClock(start+20*time.Millisecond))
	if n := passes(eipVM1, redirect); n != 10 {
		t.Errorf("20 ms: the capped EIP passed %d packets, want 10 (its cap's 5 kept from the refused packets and 5 more)", n)
	}
	if changes, err := l.dp.BandwidthChanges(want); err != nil || len(changes) != 0 {
		t.Fatalf("changes with every limit set: %v, %v", changes, err)
	}
	cfg := l.dp.cfg
	must(t, l.dp.Close())
	l.dp = mustOpen(t, cfg)
	if changes, err := l.dp.BandwidthChanges(want); err != nil || len(changes) != 0 {
		t.Fatalf("changes after a reopen: %v, %v", changes, err)
	}
	for _, c := range []struct {
		name string
		cap  uint64
	}{{"another cap", 2_000_000}, {"no cap", 0}} {
		next := slices.Clone(want)
		next[0].Cap = c.cap
		changes, err := l.dp.BandwidthChanges(next)
		if err != nil || len(changes) != 1 || changes[0] != next[0] {
			t.Fatalf("%s: changes %v, %v", c.name, changes, err)
		}
		must(t, l.dp.SetBandwidths(changes))
		if changes, err := l.dp.BandwidthChanges(next); err != nil || len(changes) != 0 {
			t.Fatalf("%s set: changes %v, %v", c.name, changes, err)
		}
	}
	// Uncapped, at 30 ms: the capped EIP's old cap no longer holds it, only the
	// shared bucket's 10 packets.
	must(t, l.dp.freezeSessionClock(start+30*time.Millisecond))
	if n := passes(eipVM1, redirect); n != 10 {
		t.Errorf("cap lifted: %d packets, want the shared bucket's 10", n)
	}
}

// inboundPolicing sets limits on l and freezes the policers' clock at start (thawed
// when the test ends), and returns how many 1,000-byte inbound UDP packets to an EIP
// pass, on one CPU, before the first that does not get verdict.
func inboundPolicing(t *testing.T, l *lab, limits []desired.Limit, start time.Duration) func(eip netip.Addr, verdict uint32) int {
	t.Helper()
	must(t, l.dp.SetBandwidths(limits))
	t.Cleanup(func() { _ = l.dp.freezeSessionClock(0) })
	must(t, l.dp.freezeSessionClock(start))
	return func(eip netip.Addr, verdict uint32) int {
		t.Helper()
		frame := serialize(t, eth(macRouter, l.uplink.HardwareAddr), ip4(labInet, eip, layers.IPProtocolUDP, 64),
			udp(40000, 53), payload(1000-28))
		n, err := l.passesOnOneCPU(l.program(t, RoleUplink, HookXDP), HookXDP, l.uplink, frame, verdict, 1000)
		must(t, err)
		return n
	}
}
