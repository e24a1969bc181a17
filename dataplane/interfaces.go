package dataplane

import (
	"bytes"
	"errors"
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

// errInterfaceSlots says every slot an ifindex may live in holds a live interface.
var errInterfaceSlots = errors.New("no free interface slot for this ifindex")

// setInterfaceMAC records ifindex's MAC for the XDP programs: its own slot if it has
// one, else the first free one of its probes (a slot of an interface that no longer
// exists counts as free).
func (d *Dataplane) setInterfaceMAC(ifindex int, mac net.HardwareAddr) error {
	if len(mac) != 6 {
		return fmt.Errorf("interface %d: MAC %q is not Ethernet", ifindex, mac)
	}
	entry := natInterfaceMac{Ifindex: uint32(ifindex)}
	copy(entry.Mac[:], mac)
	slot, err := d.interfaceSlot(uint32(ifindex), true)
	if err != nil {
		return fmt.Errorf("interface %d: %w", ifindex, err)
	}
	if err := d.objs.InterfaceMacs.Put(slot, &entry); err != nil {
		return fmt.Errorf("interface %d: record MAC: %w", ifindex, err)
	}
	return nil
}

// forgetInterfaceMAC empties ifindex's slot, if it has one. The slots after it stay
// where they are: the programs look at every probe.
func (d *Dataplane) forgetInterfaceMAC(ifindex int) error {
	slot, err := d.interfaceSlot(uint32(ifindex), false)
	if errors.Is(err, errInterfaceSlots) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("interface %d: %w", ifindex, err)
	}
	if err := d.objs.InterfaceMacs.Put(slot, &natInterfaceMac{}); err != nil {
		return fmt.Errorf("interface %d: forget MAC: %w", ifindex, err)
	}
	return nil
}

// interfaceMAC is the MAC recorded for ifindex, nil if none.
func (d *Dataplane) interfaceMAC(ifindex int) (net.HardwareAddr, error) {
	slot, err := d.interfaceSlot(uint32(ifindex), false)
	if errors.Is(err, errInterfaceSlots) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("interface %d: %w", ifindex, err)
	}
	var entry natInterfaceMac
	if err := d.objs.InterfaceMacs.Lookup(slot, &entry); err != nil {
		return nil, fmt.Errorf("interface %d: read MAC: %w", ifindex, err)
	}
	return net.HardwareAddr(entry.Mac[:]), nil
}

// interfaceSlot finds ifindex's slot; with claim, a free one when it has none.
func (d *Dataplane) interfaceSlot(ifindex uint32, claim bool) (uint32, error) {
	free, found := uint32(0), false
	for i := range interfaceProbes {
		slot := (ifindex + i) % interfaceSlots
		var entry natInterfaceMac
		if err := d.objs.InterfaceMacs.Lookup(slot, &entry); err != nil {
			return 0, fmt.Errorf("read interface slot %d: %w", slot, err)
		}
		if entry.Ifindex == ifindex && ifindex != 0 {
			return slot, nil
		}
		if !found && claim && (entry.Ifindex == 0 || !linkExists(entry.Ifindex)) {
			free, found = slot, true
		}
	}
	if found {
		return free, nil
	}
	return 0, errInterfaceSlots
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
