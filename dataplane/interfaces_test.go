package dataplane

import (
	"net"
	"testing"

	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
)

// TestXDPKnowsItsInterfaceMAC: at XDP a frame is translated only when sent to the MAC
// Attach recorded for its interface. An operator's MAC change is found by the guard
// and repaired; Detach forgets the interface; a slot shared by two ifindexes is found
// by probing, also after the first one goes.
func TestXDPKnowsItsInterfaceMAC(t *testing.T) {
	l := newLab(t)
	prog := l.program(t, RoleUplink, HookXDP)
	to := func(dst net.HardwareAddr) []byte {
		return serialize(t, eth(macRemote, dst), ip4(labInet, eipVM1, layers.IPProtocolUDP, 64), udp(53, 40000), payload(8))
	}
	// sent runs a frame to dst in on the uplink and says whether it was translated;
	// a frame that was not must be counted as another host's.
	sent := func(dst net.HardwareAddr) bool {
		t.Helper()
		before := l.snapshot(t)
		ret, _ := l.run(t, prog, HookXDP, l.uplink, to(dst))
		moved := diffReasons(before, l.snapshot(t))
		switch ret {
		case hookVerdict(HookXDP, verdictRedirect):
			return true
		case hookVerdict(HookXDP, verdictPass):
			if moved[ReasonPassOtherHost.String()] != 1 || len(moved) != 1 {
				t.Fatalf("a frame to %s passed, reasons moved %v, want pass_other_host", dst, moved)
			}
			return false
		}
		t.Fatalf("a frame to %s: verdict %d, reasons moved %v", dst, ret, moved)
		return false
	}
	check := func(repair bool) []Problem {
		var ps []Problem
		must(t, l.host.Do(func() error { ps = l.dp.Check(repair); return nil }))
		return ps
	}

	// What the lab recorded goes; Attach records it again.
	must(t, l.dp.forgetInterfaceMAC(l.uplink.Index))
	if sent(l.uplink.HardwareAddr) {
		t.Fatal("translated on an interface whose MAC the programs do not know")
	}
	must(t, l.host.Do(func() error { _, err := l.dp.Attach("uplink", RoleUplink, HookXDP); return err }))
	if !sent(l.uplink.HardwareAddr) {
		t.Fatal("not translated to the interface's MAC after Attach")
	}

	// The operator gives the uplink another MAC.
	newMAC := net.HardwareAddr{0x02, 0, 0, 0, 0x77, 0x01}
	must(t, l.host.Do(func() error {
		link, err := netlink.LinkByName("uplink")
		if err != nil {
			return err
		}
		return netlink.LinkSetHardwareAddr(link, newMAC)
	}))
	if sent(newMAC) {
		t.Fatal("translated to the new MAC before the programs knew it")
	}
	found := check(false)
	if len(found) != 1 || found[0].What != "interface MAC" || found[0].Name != "uplink" {
		t.Fatalf("Check found %v, want the uplink's interface MAC", found)
	}
	if restored := check(true); len(restored) != 1 || !restored[0].Restored {
		t.Fatalf("Check(repair) gave %v", restored)
	}
	if !sent(newMAC) || sent(l.uplink.HardwareAddr) {
		t.Fatal("after the repair, frames to the new MAC and only those must be translated")
	}
	if found := check(false); len(found) != 0 {
		t.Fatalf("problems after the repair: %v", found)
	}

	// Two ifindexes on one slot: the uplink one further, found by probing, also after
	// the slot before it is emptied.
	home := uint32(l.uplink.Index) % interfaceSlots
	other := natInterfaceMac{Ifindex: uint32(l.uplink.Index) + interfaceSlots}
	copy(other.Mac[:], newMAC)
	mine := natInterfaceMac{Ifindex: uint32(l.uplink.Index)}
	copy(mine.Mac[:], newMAC)
	must(t, l.dp.objs.InterfaceMacs.Put(home, &other))
	must(t, l.dp.objs.InterfaceMacs.Put((home+1)%interfaceSlots, &mine))
	if !sent(newMAC) {
		t.Fatal("not translated with the interface in its second probe slot")
	}
	must(t, l.dp.objs.InterfaceMacs.Put(home, &natInterfaceMac{}))
	if !sent(newMAC) {
		t.Fatal("not translated after the slot before the interface's was emptied")
	}

	must(t, l.host.Do(func() error { return l.dp.Detach("uplink") }))
	if mac, err := l.dp.interfaceMAC(l.uplink.Index); err != nil || mac != nil {
		t.Fatalf("after Detach the programs still know the uplink's MAC: %v, %v", mac, err)
	}
}
