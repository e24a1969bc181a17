package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// The guard keeps what the owning process attached and pinned in place. The process
// holds its own references to the maps and links, so removing the pins (rm -rf of
// the pin directory, a bpffs remount) detaches nothing; Check finds what is missing,
// pins it again, and attaches anew an interface whose program is gone (an interface
// recreated, a filter deleted).

// attachment is what Attach put on an interface.
type attachment struct {
	role Role
	hook Hook
}

// hold keeps l as the process's reference to the link pinned at pin.
func (d *Dataplane) hold(pin string, l link.Link) {
	d.guard.Lock()
	defer d.guard.Unlock()
	if d.links == nil {
		d.links = map[string]link.Link{}
	}
	if old := d.links[pin]; old != nil && old != l {
		old.Close()
	}
	d.links[pin] = l
}

// release drops the process's reference to the link pinned at pin, so that removing
// the pin detaches it.
func (d *Dataplane) release(pin string) {
	d.guard.Lock()
	defer d.guard.Unlock()
	if l := d.links[pin]; l != nil {
		l.Close()
		delete(d.links, pin)
	}
}

// Problem is one thing the guard found out of place.
type Problem struct {
	What     string // "map pin", "link pin", "attachment"
	Name     string // the map, pin or interface
	Restored bool   // put back by this check
	Err      error  // why it could not be put back
}

func (p Problem) String() string {
	s := p.What + " " + p.Name + " missing"
	switch {
	case p.Restored:
		s += ", restored"
	case p.Err != nil:
		s += ": " + p.Err.Error()
	}
	return s
}

// Check compares the pins and attachments with what this process holds and wants.
// With repair it puts back what is missing; it returns what it found either way. A
// read-only handle has nothing to check.
func (d *Dataplane) Check(repair bool) []Problem {
	if d.cfg.ReadOnly {
		return nil
	}
	d.guard.Lock()
	defer d.guard.Unlock()
	var out []Problem
	if _, err := os.Stat(filepath.Join(d.cfg.PinDir, linksDir)); err != nil {
		out = append(out, Problem{What: "pin directory", Name: d.cfg.PinDir, Restored: repair})
		if repair {
			if err := os.MkdirAll(filepath.Join(d.cfg.PinDir, linksDir), 0o700); err != nil {
				out[0].Restored, out[0].Err = false, err
				return out
			}
			// The old directory's lock went with it: take the new one's.
			if lock, err := lockDir(d.cfg.PinDir, true); err == nil {
				if d.lock != nil {
					d.lock.Close()
				}
				d.lock = lock
			}
		}
	}
	names := make([]string, 0, len(d.heldMaps))
	for name := range d.heldMaps {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		path := filepath.Join(d.cfg.PinDir, name)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		p := Problem{What: "map pin", Name: name}
		if repair {
			p.Err = repin(d.heldMaps[name], path)
			p.Restored = p.Err == nil
		}
		out = append(out, p)
	}
	ifaces := make([]string, 0, len(d.wants))
	for ifname := range d.wants {
		ifaces = append(ifaces, ifname)
	}
	sort.Strings(ifaces)
	for _, ifname := range ifaces {
		out = append(out, d.checkAttachment(ifname, d.wants[ifname], repair)...)
	}
	return out
}

// repin pins a held map again at path, whose pin was removed.
func repin(m *ebpf.Map, path string) error {
	// The handle still believes it is pinned there; forget that (the file is gone, so
	// nothing is removed) and pin it anew.
	if err := m.Unpin(); err != nil {
		return err
	}
	return m.Pin(path)
}

// checkAttachment looks at one interface: the program still runs there, and its links
// are pinned.
func (d *Dataplane) checkAttachment(ifname string, want attachment, repair bool) []Problem {
	var out []Problem
	prog, err := d.program(want.role, want.hook)
	if err != nil {
		return []Problem{{What: "attachment", Name: ifname, Err: err}}
	}
	running, err := d.runs(ifname, want, prog)
	if err != nil || !running {
		p := Problem{What: "attachment", Name: ifname + pinSeparator + string(want.hook)}
		if repair {
			p.Err = d.reattach(ifname, want)
			p.Restored = p.Err == nil
		}
		return append(out, p)
	}
	pins := []string{d.linkPin(ifname, want.hook)}
	if want.hook == HookXDP {
		pins = append(pins, d.linkPin(ifname, companionPinHook))
		if iface, err := net.InterfaceByName(ifname); err == nil {
			if p := d.checkInterfaceMAC(iface, repair); p != nil {
				out = append(out, *p)
			}
		}
	}
	for _, pin := range pins {
		if _, err := os.Stat(pin); err == nil {
			continue
		}
		p := Problem{What: "link pin", Name: filepath.Base(pin)}
		if repair {
			p.Err = d.repinLink(pin, want)
			p.Restored = p.Err == nil
		}
		out = append(out, p)
	}
	return out
}

// runs tells whether prog is attached to the interface at the hook.
func (d *Dataplane) runs(ifname string, want attachment, prog *ebpf.Program) (bool, error) {
	info, err := prog.Info()
	if err != nil {
		return false, err
	}
	id, _ := info.ID()
	nl, err := netlink.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	switch want.hook {
	case HookXDP:
		x := nl.Attrs().Xdp
		if x == nil || !x.Attached || x.ProgId != uint32(id) {
			return false, nil
		}
		return d.linkAttached(d.linkPin(ifname, companionPinHook), nl.Attrs().Index), nil
	case HookTCX:
		return d.linkAttached(d.linkPin(ifname, HookTCX), nl.Attrs().Index), nil
	case HookClsact:
		filters, err := netlink.FilterList(nl, netlink.HANDLE_MIN_INGRESS)
		if err != nil {
			return false, err
		}
		for _, f := range filters {
			if bf, ok := f.(*netlink.BpfFilter); ok && bf.Handle == clsactFilterHandle && bf.Id == int(id) {
				return true, nil
			}
		}
		return false, nil
	}
	return false, fmt.Errorf("unknown hook %q", want.hook)
}

// linkAttached tells whether the held link of pin is attached to ifindex.
func (d *Dataplane) linkAttached(pin string, ifindex int) bool {
	l := d.links[pin]
	if l == nil {
		return false
	}
	info, err := l.Info()
	if err != nil {
		return false
	}
	if x := info.XDP(); x != nil {
		return int(x.Ifindex) == ifindex
	}
	if t := info.TCX(); t != nil {
		return int(t.Ifindex) == ifindex
	}
	return false
}

// repinLink pins the held link of an attachment again.
func (d *Dataplane) repinLink(pin string, want attachment) error {
	if want.hook == HookClsact {
		// The filter holds the program; its pin is a clone's.
		prog, err := d.program(want.role, want.hook)
		if err != nil {
			return err
		}
		return pinProgram(prog, pin)
	}
	l := d.links[pin]
	if l == nil {
		return errors.New("no link held")
	}
	if err := l.Unpin(); err != nil {
		return err
	}
	return l.Pin(pin)
}

// reattach puts the role's program back on the interface, as Attach would, dropping
// what is left of the old attachment first.
func (d *Dataplane) reattach(ifname string, want attachment) error {
	for _, h := range []Hook{want.hook, companionPinHook} {
		pin := d.linkPin(ifname, h)
		if l := d.links[pin]; l != nil {
			l.Close()
			delete(d.links, pin)
		}
		_ = os.Remove(pin)
	}
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	// attach takes the guard's lock through hold: release it meanwhile.
	d.guard.Unlock()
	defer d.guard.Lock()
	return d.attach(iface, want.role, want.hook)
}
