package dataplane

import (
	"bytes"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
)

// interface_macs tells the XDP programs each interface's MAC, so that a frame sent to
// another host (flooded by a bridge) or to an Ethernet group address goes to the
// kernel, counted as pass_other_host, instead of being translated (bpf/lib/edge.h,
// frame_to_us). The slots are open addressing on the ifindex: an interface lives in
// one of interfaceProbes slots from ifindex % interfaceSlots. TC needs none of it: the
// kernel's skb->pkt_type says the same there.
const (
	interfaceSlots  = uint32(natInterfaceSlotsLayoutINTERFACE_SLOTS)
	interfaceProbes = uint32(natInterfaceSlotsLayoutINTERFACE_PROBES)
)

// setInterfaceMAC records ifindex's MAC for the XDP programs: in its own slot if it
// has one, else in the first free one of its probes (a slot of an interface that no
// longer exists counts as free).
func (d *Dataplane) setInterfaceMAC(ifindex int, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("interface %d: MAC %q is not Ethernet", ifindex, mac)
	}
	entry := natInterfaceMac{Ifindex: uint32(ifindex)}
	copy(entry.Mac[:], mac)
	probe, err := d.probeInterface(uint32(ifindex))
	if err != nil {
		return fmt.Errorf("interface %d: %w", ifindex, err)
	}
	slot, ok := probe.slot(probe.held), probe.holds
	if !ok {
		slot, ok = probe.free()
	}
	if !ok {
		return fmt.Errorf("interface %d: every slot it may take holds a live interface", ifindex)
	}
	if err := d.objs.InterfaceMacs.Put(slot, &entry); err != nil {
		return fmt.Errorf("interface %d: record MAC: %w", ifindex, err)
	}
	return nil
}

// forgetInterfaceMAC empties ifindex's slot, if it has one. The slots after it stay
// where they are: the programs look at every probe.
func (d *Dataplane) forgetInterfaceMAC(ifindex int) error {
	probe, err := d.probeInterface(uint32(ifindex))
	if err != nil || !probe.holds {
		return err
	}
	if err := d.objs.InterfaceMacs.Put(probe.slot(probe.held), &natInterfaceMac{}); err != nil {
		return fmt.Errorf("interface %d: forget MAC: %w", ifindex, err)
	}
	return nil
}

// interfaceMAC is the MAC recorded for ifindex, nil if none.
func (d *Dataplane) interfaceMAC(ifindex int) (net.HardwareAddr, error) {
	probe, err := d.probeInterface(uint32(ifindex))
	if err != nil || !probe.holds {
		return nil, err
	}
	return net.HardwareAddr(probe.entries[probe.held].Mac[:]), nil
}

// interfaceProbe is what the slots an ifindex may live in hold.
type interfaceProbe struct {
	first   uint32 // the first slot; the others follow it, wrapping
	entries [interfaceProbes]natInterfaceMac
	held    uint32 // the probe (index in entries) that holds the ifindex, when holds
	holds   bool
}

// probeInterface reads the slots ifindex may live in.
func (d *Dataplane) probeInterface(ifindex uint32) (interfaceProbe, error) {
	p := interfaceProbe{first: ifindex % interfaceSlots}
	for i := range interfaceProbes {
		slot := p.slot(i)
		if err := d.objs.InterfaceMacs.Lookup(slot, &p.entries[i]); err != nil {
			return p, fmt.Errorf("read interface slot %d: %w", slot, err)
		}
		if !p.holds && ifindex != 0 && p.entries[i].Ifindex == ifindex {
			p.held, p.holds = i, true
		}
	}
	return p, nil
}

func (p *interfaceProbe) slot(i uint32) uint32 { return (p.first + i) % interfaceSlots }

// free is the first slot that is empty or holds an interface that no longer exists.
func (p *interfaceProbe) free() (uint32, bool) {
	for i, e := range p.entries {
		if e.Ifindex == 0 || !linkExists(e.Ifindex) {
			return p.slot(uint32(i)), true
		}
	}
	return 0, false
}

func linkExists(ifindex uint32) bool {
	_, err := netlink.LinkByIndex(int(ifindex))
	return err == nil
}

// checkInterfaceMAC compares what the programs hold for iface with its MAC now (an
// operator may change it); with repair, it records the current one.
func (d *Dataplane) checkInterfaceMAC(iface *net.Interface, repair bool) *Problem {
	held, err := d.interfaceMAC(iface.Index)
	if err == nil && bytes.Equal(held, iface.HardwareAddr) {
		return nil
	}
	p := &Problem{What: "interface MAC", Name: iface.Name, Err: err}
	if err == nil && repair {
		p.Err = d.setInterfaceMAC(iface.Index, iface.HardwareAddr)
		p.Restored = p.Err == nil
	}
	return p
}
