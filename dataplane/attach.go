package dataplane

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/eipgw/eipgw/internal/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Role says which side of the gateway an interface faces, and so which direction
// its ingress traffic is translated in.
type Role string

const (
	// RoleUplink faces the internet: packets to EIPs arrive here (DNAT).
	RoleUplink Role = "uplink"
	// RoleVPC faces the instances: packets from private addresses arrive here (SNAT).
	RoleVPC Role = "vpc"
)

// Hook is where on an interface's ingress path the program runs.
type Hook string

const (
	// HookXDP runs in the driver (native XDP, or generic where the driver has none).
	HookXDP Hook = "xdp"
	// HookTCX runs at TC ingress through a tcx link (kernel 6.6 and later).
	HookTCX Hook = "tcx"
	// HookClsact runs at TC ingress as a clsact/bpf filter, for older kernels.
	HookClsact Hook = "clsact"
	// HookTC is TCX where the kernel has it, clsact otherwise.
	HookTC Hook = "tc"
)

// ParseRole and ParseHook turn configuration strings into values, with an error
// naming the choices.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleUplink, RoleVPC:
		return r, nil
	}
	return "", fmt.Errorf("unknown interface role %q (want uplink or vpc)", s)
}

func ParseHook(s string) (Hook, error) {
	switch h := Hook(s); h {
	case HookXDP, HookTCX, HookClsact, HookTC:
		return h, nil
	}
	return "", fmt.Errorf("unknown hook %q (want xdp, tc, tcx or clsact)", s)
}

// clsactFilterHandle and priority identify our filter among others on the interface.
const pinSeparator = ":"

// companionPinHook names the pin of the XDP program's TC companion ("eth0:xdp-tc"); it
// is not a hook of its own and comes and goes with the XDP attachment.
const companionPinHook = Hook("xdp-tc")

const (
	clsactFilterHandle   = 0xe1b
	clsactFilterPriority = 1
)

func (d *Dataplane) program(role Role, hook Hook) (*ebpf.Program, error) {
	xdp := hook == HookXDP
	switch {
	case role == RoleUplink && xdp:
		return d.programFor(&d.objs.XdpUplink, natProgXdpUplink)
	case role == RoleVPC && xdp:
		return d.programFor(&d.objs.XdpVpc, natProgXdpVpc)
	case role == RoleUplink:
		return d.programFor(&d.objs.TcUplink, natProgTcUplink)
	case role == RoleVPC:
		return d.programFor(&d.objs.TcVpc, natProgTcVpc)
	}
	return nil, fmt.Errorf("no program for role %q", role)
}

// fragmentCompanion is the TC program that runs beside an XDP program: XDP sends one
// packet per packet, so it passes up the fragments that must be held, or released
// with their held followers (bpf/lib/dispatch.h, fragment_companion).
func (d *Dataplane) fragmentCompanion(role Role) (*ebpf.Program, error) {
	switch role {
	case RoleUplink:
		return d.programFor(&d.objs.TcUplinkFragments, natProgTcUplinkFragments)
	case RoleVPC:
		return d.programFor(&d.objs.TcVpcFragments, natProgTcVpcFragments)
	}
	return nil, fmt.Errorf("no program for role %q", role)
}

// linkPin is where an interface's attachment is pinned: the bpf_link for XDP and
// TCX, the program itself for a clsact filter (filters have no link to pin).
func (d *Dataplane) linkPin(ifname string, hook Hook) string {
	// ':' cannot occur in an interface name, and bpffs refuses '.'.
	return filepath.Join(d.cfg.PinDir, linksDir, ifname+pinSeparator+string(hook))
}

// Attach runs the role's program on the interface's ingress at the hook. If the
// interface already has our program at that hook (from this or an earlier process),
// the program is replaced in place through its link, so no packet misses the fast
// path. If it has it at another hook, the new hook is attached before the old one is
// removed. Attach returns the hook actually used (HookTC resolves to TCX or clsact).
func (d *Dataplane) Attach(ifname string, role Role, hook Hook) (Hook, error) {
	if d.cfg.ReadOnly {
		return "", fmt.Errorf("attach to %s: %w", ifname, ErrReadOnly)
	}
	iface, err := net.InterfaceByName(ifname)
	if err != nil {
		return "", fmt.Errorf("attach to %s: %w", ifname, err)
	}
	if hook == HookTC {
		hook = HookTCX
		if err := d.attach(iface, role, hook); errors.Is(err, ebpf.ErrNotSupported) {
			hook = HookClsact
		} else {
			return hook, d.want(ifname, role, hook, d.dropOtherHooks(ifname, hook, err))
		}
	}
	return hook, d.want(ifname, role, hook, d.dropOtherHooks(ifname, hook, d.attach(iface, role, hook)))
}

// want records a successful attachment, for the guard to keep in place.
func (d *Dataplane) want(ifname string, role Role, hook Hook, err error) error {
	if err != nil {
		return err
	}
	d.guard.Lock()
	defer d.guard.Unlock()
	if d.wants == nil {
		d.wants = map[string]attachment{}
	}
	d.wants[ifname] = attachment{role: role, hook: hook}
	return nil
}

func (d *Dataplane) dropOtherHooks(ifname string, keep Hook, attachErr error) error {
	if attachErr != nil {
		return attachErr
	}
	for _, h := range []Hook{HookXDP, companionPinHook, HookTCX, HookClsact} {
		if h == keep || (h == companionPinHook && keep == HookXDP) {
			continue
		}
		pin := d.linkPin(ifname, h)
		d.release(pin)
		if _, err := os.Stat(pin); err == nil {
			if err := detachPinned(pin); err != nil {
				return fmt.Errorf("attach to %s: remove %s attachment: %w", ifname, h, err)
			}
		}
	}
	return nil
}

func (d *Dataplane) attach(iface *net.Interface, role Role, hook Hook) error {
	prog, err := d.program(role, hook)
	if err != nil {
		return err
	}
	pin := d.linkPin(iface.Name, hook)
	if hook == HookClsact {
		return d.attachClsact(iface, prog, pin)
	}
	if hook == HookXDP {
		// An XDP program sees a VLAN tag only in the frame: a tag the NIC stripped
		// into the descriptor would let a tagged frame be translated and sent on
		// untagged. Where the driver cannot stop stripping, XDP is refused.
		if err := ethtool.SetFlag(iface.Name, ethtool.FlagRXVLAN, false); err != nil {
			return fmt.Errorf("attach to %s at xdp: turn off receive VLAN offload (or attach at tc): %w", iface.Name, err)
		}
		// Which frames are sent to this interface, the program learns from its MAC.
		if err := d.setInterfaceMAC(iface.Index, iface.HardwareAddr); err != nil {
			return fmt.Errorf("attach to %s at xdp: %w", iface.Name, err)
		}
		// The companion first: until it runs, XDP's held fragments would reach the
		// kernel untranslated.
		companion, err := d.fragmentCompanion(role)
		if err != nil {
			return err
		}
		if err := d.attachLink(iface, companion, HookTCX, d.linkPin(iface.Name, companionPinHook)); err != nil {
			return fmt.Errorf("%w (XDP needs its TC companion for fragments; tcx needs kernel 6.6)", err)
		}
	}
	return d.attachLink(iface, prog, hook, pin)
}

// attachLink attaches prog through a pinned bpf_link, or replaces the program of the
// link already pinned there.
func (d *Dataplane) attachLink(iface *net.Interface, prog *ebpf.Program, hook Hook, pin string) error {
	if existing, err := link.LoadPinnedLink(pin, nil); err == nil {
		if err := existing.Update(prog); err != nil {
			existing.Close()
			return fmt.Errorf("attach to %s: replace %s program: %w", iface.Name, hook, err)
		}
		d.hold(pin, existing)
		return nil
	}
	var l link.Link
	var err error
	switch hook {
	case HookXDP:
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index})
	case HookTCX:
		l, err = link.AttachTCX(link.TCXOptions{Program: prog, Interface: iface.Index, Attach: ebpf.AttachTCXIngress})
	default:
		return fmt.Errorf("attach to %s: unknown hook %q", iface.Name, hook)
	}
	if err != nil {
		return fmt.Errorf("attach to %s at %s: %w", iface.Name, hook, err)
	}
	if err := l.Pin(pin); err != nil {
		_ = l.Unpin()
		l.Close()
		return fmt.Errorf("attach to %s: pin link: %w", iface.Name, err)
	}
	d.hold(pin, l)
	return nil
}

func (d *Dataplane) attachClsact(iface *net.Interface, prog *ebpf.Program, pin string) error {
	qdisc := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: iface.Index, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("attach to %s: add clsact qdisc: %w", iface.Name, err)
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: iface.Index,
			Parent:    netlink.HANDLE_MIN_INGRESS,
			Handle:    clsactFilterHandle,
			Protocol:  unix.ETH_P_ALL,
			Priority:  clsactFilterPriority,
		},
		Fd:           prog.FD(),
		Name:         "eipgw",
		DirectAction: true,
	}
	if err := netlink.FilterReplace(filter); err != nil {
		return fmt.Errorf("attach to %s: replace clsact filter: %w", iface.Name, err)
	}
	// The filter holds the program; the pin records the attachment for Detach and
	// Remove. Replace an older pin.
	_ = os.Remove(pin)
	if err := pinProgram(prog, pin); err != nil {
		return fmt.Errorf("attach to %s: pin program: %w", iface.Name, err)
	}
	return nil
}

// pinProgram pins a clone of prog at pin: pinning the one handle twice would move its
// first pin.
func pinProgram(prog *ebpf.Program, pin string) error {
	clone, err := prog.Clone()
	if err != nil {
		return err
	}
	defer clone.Close()
	return clone.Pin(pin)
}

// Detach removes our program from the interface, whatever the hook.
func (d *Dataplane) Detach(ifname string) error {
	if d.cfg.ReadOnly {
		return fmt.Errorf("detach from %s: %w", ifname, ErrReadOnly)
	}
	found := false
	d.guard.Lock()
	delete(d.wants, ifname)
	d.guard.Unlock()
	for _, h := range []Hook{HookXDP, companionPinHook, HookTCX, HookClsact} {
		pin := d.linkPin(ifname, h)
		d.release(pin)
		if _, err := os.Stat(pin); err != nil {
			continue
		}
		found = true
		if err := detachPinned(pin); err != nil {
			return fmt.Errorf("detach from %s: %w", ifname, err)
		}
	}
	if !found {
		return fmt.Errorf("detach from %s: not attached", ifname)
	}
	if iface, err := net.InterfaceByName(ifname); err == nil {
		if err := d.forgetInterfaceMAC(iface.Index); err != nil {
			return fmt.Errorf("detach from %s: %w", ifname, err)
		}
	}
	return nil
}

// Attachment is one interface with our program on it.
type Attachment struct {
	Interface string
	Hook      Hook
}

// Attachments lists the pinned attachments.
func (d *Dataplane) Attachments() ([]Attachment, error) {
	entries, err := os.ReadDir(filepath.Join(d.cfg.PinDir, linksDir))
	if err != nil {
		return nil, fmt.Errorf("list attachments: %w", err)
	}
	var out []Attachment
	for _, e := range entries {
		i := strings.LastIndexByte(e.Name(), pinSeparator[0])
		if i < 0 || Hook(e.Name()[i+1:]) == companionPinHook {
			continue
		}
		out = append(out, Attachment{Interface: e.Name()[:i], Hook: Hook(e.Name()[i+1:])})
	}
	return out, nil
}

// detachPinned undoes one pinned attachment: a link is unpinned and closed (which
// detaches it); a clsact program pin also has its filter deleted.
func detachPinned(pin string) error {
	name := filepath.Base(pin)
	i := strings.LastIndexByte(name, pinSeparator[0])
	if i < 0 {
		return fmt.Errorf("unexpected pin %s", pin)
	}
	ifname, hook := name[:i], Hook(name[i+1:])
	if hook == HookClsact {
		if iface, err := net.InterfaceByName(ifname); err == nil {
			filter := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{
				LinkIndex: iface.Index, Parent: netlink.HANDLE_MIN_INGRESS,
				Handle: clsactFilterHandle, Protocol: unix.ETH_P_ALL, Priority: clsactFilterPriority,
			}}
			if err := netlink.FilterDel(filter); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("delete clsact filter on %s: %w", ifname, err)
			}
		}
		return os.Remove(pin)
	}
	l, err := link.LoadPinnedLink(pin, nil)
	if err != nil {
		// The interface is gone and took the link with it: only the pin is left.
		return os.Remove(pin)
	}
	defer l.Close()
	if err := l.Unpin(); err != nil {
		return fmt.Errorf("unpin %s: %w", pin, err)
	}
	return nil
}
