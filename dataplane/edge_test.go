package dataplane

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/gopacket/layers"
)

// TestBindingSender: the outbound half of a binding carries a MAC registered with the
// private address; any other registered MAC (a HaVip's other holder) is let through by
// a lookup; a source that goes stops being translated at once; an all-zero MAC is
// never taken for "no sender known".
func TestBindingSender(t *testing.T) {
	l := newLab(t)
	vpcMAC := l.vpc.HardwareAddr
	macOther := net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x99}
	macZero := net.HardwareAddr{0, 0, 0, 0, 0, 0}
	frame := func(src net.HardwareAddr) []byte {
		return serialize(t, eth(src, vpcMAC), ip4(privVM1, labInet, layers.IPProtocolUDP, 64), udp(40000, 53), payload(8))
	}
	step := func(name string, src net.HardwareAddr, want verdict, reasons map[Reason]uint64) {
		t.Helper()
		for _, hook := range []Hook{HookXDP, HookTC} {
			before := l.snapshot(t)
			ret, _ := l.run(t, l.program(t, RoleVPC, hook), hook, l.vpc, frame(src))
			after := l.snapshot(t)
			if ret != hookVerdict(hook, want) {
				t.Errorf("%s at %s: verdict %d, want %s; reasons moved %v", name, hook, ret, want, diffReasons(before, after))
			}
			for r := Reason(0); r < ReasonMax; r++ {
				if got := after.reasons[r] - before.reasons[r]; got != reasons[r] {
					t.Errorf("%s at %s: reason %s moved by %d, want %d", name, hook, r, got, reasons[r])
				}
			}
		}
	}
	sender := func(priv netip.Addr) net.HardwareAddr {
		t.Helper()
		var b natBinding
		key, _ := beKey(priv)
		must(t, l.dp.objs.OutboundBindings.Lookup(key, &b))
		return net.HardwareAddr(b.SenderMac[:])
	}
	if got := sender(privVM1); got.String() != macVM1.String() {
		t.Fatalf("the binding carries sender %v, want %v", got, macVM1)
	}
	step("the registered sender", macVM1, verdictRedirect, nil)
	spoofed := map[Reason]uint64{ReasonDropSpoofedSource: 1}
	step("another MAC", macOther, verdictDrop, spoofed)
	must(t, l.dp.SetSource(Source{Addr: privVM1, MAC: macOther}))
	step("a second registered MAC", macOther, verdictRedirect, nil)
	must(t, l.dp.DeleteSource(Source{Addr: privVM1, MAC: macVM1}))
	if got := sender(privVM1); got.String() != macOther.String() {
		t.Errorf("after its source went, the binding carries sender %v, want %v", got, macOther)
	}
	step("a sender whose source went", macVM1, verdictDrop, spoofed)
	must(t, l.dp.DeleteSource(Source{Addr: privVM1, MAC: macOther}))
	if got := sender(privVM1); got.String() != macZero.String() {
		t.Errorf("with no source left the binding carries sender %v", got)
	}
	step("no registered sender, all-zero MAC", macZero, verdictDrop, spoofed)
	// A binding made after its source carries it from the start.
	must(t, l.dp.SetSource(Source{Addr: netip.MustParseAddr("10.0.1.50"), MAC: macOther}))
	must(t, l.dp.SetBinding(netip.MustParseAddr("203.0.113.50"), netip.MustParseAddr("10.0.1.50")))
	if got := sender(netip.MustParseAddr("10.0.1.50")); got.String() != macOther.String() {
		t.Errorf("a new binding carries sender %v, want %v", got, macOther)
	}
}

// TestAddSources: sources added in batches are listed (sorted) like ones set one by
// one, a bound address's binding takes its sender from them, and frames from them
// are translated.
func TestAddSources(t *testing.T) {
	l := newLab(t)
	vpcMAC := l.vpc.HardwareAddr
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0x02, 0x01}
	bound := netip.MustParseAddr("10.0.2.1")
	must(t, l.dp.SetBinding(netip.MustParseAddr("203.0.113.60"), bound))
	var ss []Source
	for a := bound; len(ss) < 5000; a = a.Next() {
		ss = append(ss, Source{Addr: a, MAC: mac})
	}
	before, err := l.dp.Sources()
	must(t, err)
	must(t, l.dp.AddSources(ss))
	have, err := l.dp.Sources()
	must(t, err)
	if len(have) != len(before)+len(ss) || !slices.IsSortedFunc(have, Source.Compare) {
		t.Fatalf("%d sources listed, want %d, sorted", len(have), len(before)+len(ss))
	}
	for _, s := range ss {
		if _, found := slices.BinarySearchFunc(have, s, Source.Compare); !found {
			t.Fatalf("%v is not listed", s)
		}
	}
	var b natBinding
	must(t, l.dp.objs.OutboundBindings.Lookup(mustKey(t, bound), &b))
	if got := net.HardwareAddr(b.SenderMac[:]); got.String() != mac.String() {
		t.Errorf("the bound address's binding carries sender %v, want %v", got, mac)
	}
	for _, hook := range []Hook{HookXDP, HookTC} {
		frame := serialize(t, eth(mac, vpcMAC), ip4(bound, labInet, layers.IPProtocolUDP, 64), udp(40000, 53), payload(8))
		before := l.snapshot(t)
		if ret, _ := l.run(t, l.program(t, RoleVPC, hook), hook, l.vpc, frame); ret != hookVerdict(hook, verdictRedirect) {
			t.Errorf("a frame from an added source at %s: verdict %d; reasons moved %v", hook, ret, diffReasons(before, l.snapshot(t)))
		}
	}
	// Adding them again changes nothing.
	must(t, l.dp.AddSources(ss[:10]))
	if again, _ := l.dp.Sources(); len(again) != len(have) {
		t.Errorf("adding known sources again: %d listed, want %d", len(again), len(have))
	}
}
