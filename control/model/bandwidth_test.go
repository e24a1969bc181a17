package model

import (
	"net/netip"
	"testing"
)

// TestBandwidthIndex: every associated EIP's Bandwidth is in the index the
// reconciler reads, in bits per second, kept by associations, changes of Bandwidth
// and disassociations; a state file without the index gets it built once.
func TestBandwidthIndex(t *testing.T) {
	w := newWorld(t)
	w.instance("i-1", "10.0.1.11")
	w.instance("i-2", "10.0.1.12")
	a, ipA := w.allocate("admin")
	b, ipB := w.allocate("admin", "Bandwidth", "30")
	w.allocate("admin") // not associated: not in the index
	w.ok("admin", "AssociateEipAddress", "AllocationId", a, "InstanceId", "i-1")
	w.ok("admin", "AssociateEipAddress", "AllocationId", b, "InstanceId", "i-2")
	w.settle()
	w.ok("admin", "ModifyEipAddressAttribute", "AllocationId", a, "Bandwidth", "100")
	want := map[netip.Addr]uint64{netip.MustParseAddr(ipA): 100_000_000, netip.MustParseAddr(ipB): 30_000_000}
	check := func(when string, want map[netip.Addr]uint64) {
		t.Helper()
		limits, err := DesiredBandwidths(w.tx)
		got := map[netip.Addr]uint64{}
		for _, l := range limits {
			got[l.EIP] = l.Bits
		}
		if err != nil || len(got) != len(want) || len(limits) != len(want) {
			t.Fatalf("%s: %v, %v", when, limits, err)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %v is %d bit/s, want %d", when, k, got[k], v)
			}
		}
	}
	check("associated", want)
	if got, err := BandwidthsOf(w.tx, []netip.Addr{netip.MustParseAddr(ipB)}); err != nil || got[netip.MustParseAddr(ipB)].Bits != 30_000_000 {
		t.Errorf("BandwidthsOf: %v, %v", got, err)
	}
	// An old state file: no index; built once, then left alone.
	for _, ip := range []string{ipA, ipB} {
		if err := w.tx.Delete(kindEIPBandwidth, ip); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := EnsureBandwidthIndex(w.tx); err != nil || n != 2 {
		t.Fatalf("building the index: %d, %v", n, err)
	}
	check("rebuilt", want)
	if n, err := EnsureBandwidthIndex(w.tx); err != nil || n != 0 {
		t.Fatalf("the index exists: %d, %v", n, err)
	}
	w.ok("admin", "UnassociateEipAddress", "AllocationId", b, "InstanceId", "i-2")
	check("being disassociated", map[netip.Addr]uint64{netip.MustParseAddr(ipA): 100_000_000})
}
