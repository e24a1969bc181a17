package dataplane

import (
	"os"
	"testing"

	"github.com/eipgw/eipgw/internal/ethtool"
	"github.com/vishvananda/netlink"
)

// TestGuardRestoresPins: removing the whole pin directory detaches nothing while the
// owner runs; Check finds every missing pin and puts it back, after which a reader
// opens the dataplane again. A deleted clsact filter is attached anew.
func TestGuardRestoresPins(t *testing.T) {
	l := newLab(t)
	must(t, l.host.Do(func() error {
		if _, err := l.dp.Attach("uplink", RoleUplink, HookXDP); err != nil {
			return err
		}
		_, err := l.dp.Attach("vpc", RoleVPC, HookClsact)
		return err
	}))
	check := func(repair bool) []Problem {
		var ps []Problem
		must(t, l.host.Do(func() error { ps = l.dp.Check(repair); return nil }))
		return ps
	}
	if problems := check(false); len(problems) != 0 {
		t.Fatalf("a fresh dataplane has problems: %v", problems)
	}
	// XDP cannot see a tag the NIC strips: attaching there turns that off.
	must(t, l.host.Do(func() error {
		on, err := ethtool.Flag("uplink", ethtool.FlagRXVLAN)
		if err == nil && on {
			t.Error("receive VLAN offload is still on where XDP is attached")
		}
		return err
	}))
	must(t, os.RemoveAll(l.dp.PinDir()))
	xdpAttached := func() bool {
		var attached bool
		must(t, l.host.Do(func() error {
			nl, err := netlink.LinkByName("uplink")
			if err != nil {
				return err
			}
			attached = nl.Attrs().Xdp != nil && nl.Attrs().Xdp.Attached
			return nil
		}))
		return attached
	}
	if !xdpAttached() {
		t.Fatal("removing the pins detached XDP")
	}
	found := check(false)
	if len(found) == 0 {
		t.Fatal("Check found nothing missing after rm -rf of the pins")
	}
	restored := check(true)
	for _, p := range restored {
		if !p.Restored {
			t.Errorf("not restored: %v", p)
		}
	}
	after := check(false)
	if len(after) != 0 {
		t.Fatalf("after repair: %v", after)
	}
	reader, err := Open(Config{PinDir: l.dp.PinDir(), MaxBindings: 1024, ReadOnly: true})
	if err != nil {
		t.Fatalf("a reader cannot open the restored pins: %v", err)
	}
	bs, err := reader.Bindings()
	reader.Close()
	if err != nil || len(bs) == 0 {
		t.Errorf("the restored pins lost the bindings: %v, %v", bs, err)
	}
	if atts, err := l.dp.Attachments(); err != nil || len(atts) != 2 {
		t.Errorf("attachments after repair: %v, %v", atts, err)
	}

	// The clsact filter deleted behind the owner's back: attached anew.
	must(t, l.host.Do(func() error {
		nl, err := netlink.LinkByName("vpc")
		if err != nil {
			return err
		}
		return netlink.FilterDel(&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: nl.Attrs().Index,
			Parent: netlink.HANDLE_MIN_INGRESS, Handle: clsactFilterHandle, Protocol: 0x0003, Priority: clsactFilterPriority}})
	}))
	gone := check(true)
	if len(gone) != 1 || gone[0].What != "attachment" || !gone[0].Restored {
		t.Fatalf("after the filter was deleted: %v", gone)
	}
	if after = check(false); len(after) != 0 {
		t.Fatalf("after reattaching: %v", after)
	}
}
