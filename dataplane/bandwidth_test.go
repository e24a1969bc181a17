package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
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
	if !maps.Equal(got, expect) {
		t.Fatalf("changes %v, want %v", got, expect)
	}
	must(t, l.dp.SetBandwidths(got))
	if got, err := l.dp.BandwidthChanges(want); err != nil || len(got) != 0 {
		t.Fatalf("after setting them: %v, %v", got, err)
	}
	if bits, err := l.dp.Bandwidth(eipSmallMTU); err != nil || bits != 5_000_000 {
		t.Fatalf("set through the memory mapping: %d, %v", bits, err)
	}
	if err := l.dp.SetBandwidths(map[netip.Addr]uint64{absent: 1}); !errors.Is(err, ErrNotBound) {
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
