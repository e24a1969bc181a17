package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/testbed"
	"golang.org/x/sys/unix"
)

// The benchmark's network: the generator stands for the instances (it sends from
// private addresses), the sink for the internet; the gateway is in between.
//
//	[gen eth0] --- vpc [gw] uplink --- [sink eth0 198.51.100.253]
//
// The DNAT cases run the other way: the sink's host sends from internet clients to
// EIPs, and gen's interface counts what arrives (the sink program runs on both ends).
const (
	genCPU        = 0 // the generator's syscall thread
	gatewayCPU    = 1 // the gateway's receive work (threaded NAPI of its vpc interface)
	sinkAddr      = "198.51.100.253"
	gwUplinkCIDR  = "198.51.100.254/30"
	gwVPCCIDR     = "10.0.0.1/16"
	flowDst       = "198.51.100.99" // routed to the sink
	flowDstPort   = 9
	srcBase       = "10.0.1.1" // first source host
	eipBase       = "203.0.113.1"
	manyHosts     = 50
	manyPorts     = 256 // 50 x 256 = 12,800 flows
	portBase      = 10000
	translatedNet = "203.0.113.0/24"
	privateNet    = "10.0.0.0/8"
	// Inbound (DNAT) traffic: clientHosts x clientPorts internet clients, each to
	// one of inboundEIPs EIPs (eipBase on), published at port flowDstPort.
	clientBase  = "198.51.100.128"
	inboundEIPs = 16
)

type bed struct {
	gen, gw, sink *testbed.Host
	genIf         *net.Interface // inside gen: the generator's veth
	gwVPC, gwUp   int            // ifindexes inside gw
	gwVPCMAC      net.HardwareAddr
	gwUpMAC       net.HardwareAddr
	sinkMAC       net.HardwareAddr
	sinkIf        int // the sink's interface, inside sink
	objs          trafficObjects
	types         *btf.Spec
	// eipgw's dataplanes by session-table capacity, each opened by the first case
	// that needs its capacity, on its own pin directory.
	dps map[int]*eipgwDataplane
	// capacity is the session-table capacity of the case being set up: twice its peak.
	capacity    int
	bpffs       *testbed.BPFFS
	sinkLink    link.Link
	genSinkLink link.Link // the sink program on gen's interface, for inbound cases
	genMAC      net.HardwareAddr
	sysfs       string
	// afterSetup, when set, runs between a window's setup and its traffic.
	afterSetup func() error
	// restoreConntrack puts the kernel's conntrack sizing back as it was.
	restoreConntrack func()
}

// eipgwDataplane is one of eipgw's dataplanes with its next-hop watcher.
type eipgwDataplane struct {
	dp       *dataplane.Dataplane
	stopHops func()
}

// tableCapacity sizes both the kernel's conntrack and eipgw's session tables for a
// case, by one rule: twice the case's peak, its number of flows (each flow is one
// session; the new-connection cases open up to 250,000 a window, the established
// ones hold 12,800), so neither table is more than half full, and neither is
// measured at a footprint the case does not need; at least 1,024.
func (c benchCase) tableCapacity() int { return max(2*int(c.Flows.count()), 1024) }

// conntrackSizing names the kernel's two conntrack sizes, both global (a namespace
// other than the first cannot write them).
var conntrackSizing = []string{"/proc/sys/net/netfilter/nf_conntrack_max", "/sys/module/nf_conntrack/parameters/hashsize"}

// sizeConntrack sets conntrack's table size and hash buckets to n.
func sizeConntrack(n int) error {
	for _, f := range conntrackSizing {
		if err := os.WriteFile(f, []byte(strconv.Itoa(n)), 0o644); err != nil {
			return fmt.Errorf("conntrack sizing: %w", err)
		}
	}
	return nil
}

// saveConntrackSizing returns what puts conntrack's sizing back as it is now.
func saveConntrackSizing() (restore func(), err error) {
	files := conntrackSizing
	var old []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("conntrack sizing: %w", err)
		}
		old = append(old, strings.TrimSpace(string(b)))
	}
	return func() {
		for i, f := range files {
			_ = os.WriteFile(f, []byte(old[i]), 0o644)
		}
	}, nil
}

func newBed(prefix string) (_ *bed, err error) {
	b := &bed{}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	for _, h := range []struct {
		p    **testbed.Host
		name string
	}{{&b.gen, "gen"}, {&b.gw, "gw"}, {&b.sink, "sink"}} {
		if *h.p, err = testbed.NewHost(prefix + "-" + h.name); err != nil {
			return nil, err
		}
	}
	steps := []func() error{
		func() error { return testbed.Veth(b.gen, "eth0", b.gw, "vpc") },
		func() error { return testbed.Veth(b.gw, "uplink", b.sink, "eth0") },
		func() error { return b.gw.Addr("vpc", gwVPCCIDR) },
		func() error { return b.gw.Addr("uplink", gwUplinkCIDR) },
		func() error { return b.sink.Addr("eth0", sinkAddr+"/30") },
		func() error { return b.gw.Route("default", sinkAddr, "") },
		func() error { return b.gw.Sysctl("net/ipv4/ip_forward", "1") },
		func() error { return b.gw.Sysctl("net/ipv4/conf/all/rp_filter", "0") },
		func() error { return b.gw.Sysctl("net/ipv4/conf/vpc/rp_filter", "0") },
		func() error { return b.gw.Sysctl("net/ipv4/conf/uplink/rp_filter", "0") },
		// Inbound without NAT (kernel-forwarding-in) sends to the EIPs as they are.
		func() error { return b.gw.Route(translatedNet, "", "vpc") },
		// Frames that XDP_TX into the gateway's veth need NAPI there when no XDP
		// program is attached (the kernel cases).
		func() error { return b.gw.SetGRO("vpc", true) },
		// The same for replies the sink's side sends (the flowtable case).
		func() error { return b.gw.SetGRO("uplink", true) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	attrs := func(h *testbed.Host, name string) (int, net.HardwareAddr, error) {
		a, err := h.Link(name)
		if err != nil {
			return 0, nil, err
		}
		return a.Index, a.HardwareAddr, nil
	}
	if b.gwVPC, b.gwVPCMAC, err = attrs(b.gw, "vpc"); err != nil {
		return nil, err
	}
	if b.gwUp, b.gwUpMAC, err = attrs(b.gw, "uplink"); err != nil {
		return nil, err
	}
	if b.sinkIf, b.sinkMAC, err = attrs(b.sink, "eth0"); err != nil {
		return nil, err
	}
	genIdx, genMAC, err := attrs(b.gen, "eth0")
	if err != nil {
		return nil, err
	}
	b.genIf = &net.Interface{Index: genIdx, HardwareAddr: genMAC, Name: "eth0"}
	b.genMAC = genMAC
	// The gateway knows the sink's MAC from the start, so no case pays for ARP; the
	// same for where inbound traffic goes: the EIPs as they are, and the private
	// hosts they translate to.
	if err := b.gw.Neigh("uplink", netip.MustParseAddr(sinkAddr), b.sinkMAC); err != nil {
		return nil, err
	}
	for priv, eip := range inboundTargets() {
		for _, a := range []netip.Addr{priv, eip} {
			if err := b.gw.Neigh("vpc", a, genMAC); err != nil {
				return nil, err
			}
		}
	}
	if err := b.loadPrograms(); err != nil {
		return nil, err
	}
	if b.restoreConntrack, err = saveConntrackSizing(); err != nil {
		return nil, err
	}
	if err := b.placeGatewayNAPI(); err != nil {
		return nil, err
	}
	return b, nil
}

func ipBE(s string) uint32 {
	a := netip.MustParseAddr(s).As4()
	return binary.NativeEndian.Uint32(a[:])
}

func prefixBE(cidr string) (net, mask uint32) {
	p := netip.MustParsePrefix(cidr)
	a := p.Masked().Addr().As4()
	m := uint32(0xffffffff) << (32 - p.Bits())
	var mb [4]byte
	binary.BigEndian.PutUint32(mb[:], m)
	return binary.NativeEndian.Uint32(a[:]), binary.NativeEndian.Uint32(mb[:])
}

func (b *bed) loadPrograms() error {
	spec, err := loadTraffic()
	if err != nil {
		return err
	}
	tn, tm := prefixBE(translatedNet)
	un, um := prefixBE(privateNet)
	floor := func(src, dst net.HardwareAddr, egress int) trafficFloorConfig {
		var f trafficFloorConfig
		copy(f.SrcMac[:], src)
		copy(f.DstMac[:], dst)
		f.EgressIfindex = uint32(egress)
		return f
	}
	for name, v := range map[string]any{
		"sink_cfg":      trafficSinkConfig{EipNet: tn, EipMask: tm, PrivateNet: un, PrivateMask: um, SampleEvery: 64},
		"floor_out_cfg": floor(b.gwUpMAC, b.sinkMAC, b.gwUp),
		"floor_in_cfg":  floor(b.gwVPCMAC, b.genMAC, b.gwVPC),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
	}
	b.types = spec.Types
	if err := spec.LoadAndAssign(&b.objs, nil); err != nil {
		return fmt.Errorf("load bench programs: %w", err)
	}
	sinkIdx, _, err := func() (int, net.HardwareAddr, error) {
		a, err := b.sink.Link("eth0")
		if err != nil {
			return 0, nil, err
		}
		return a.Index, a.HardwareAddr, nil
	}()
	if err != nil {
		return err
	}
	if err := b.sink.Do(func() error {
		var err error
		b.sinkLink, err = link.AttachXDP(link.XDPOptions{Program: b.objs.Sink, Interface: sinkIdx})
		return err
	}); err != nil {
		return err
	}
	return b.gen.Do(func() error {
		var err error
		b.genSinkLink, err = link.AttachXDP(link.XDPOptions{Program: b.objs.Sink, Interface: b.genIf.Index})
		return err
	})
}

// placeGatewayNAPI makes the gateway's receive work a kernel thread of its own (threaded
// NAPI) and pins it to gatewayCPU, away from the generator. The device's sysfs is only
// visible to a sysfs mounted from inside the gateway's namespace.
func (b *bed) placeGatewayNAPI() error {
	dir, err := os.MkdirTemp("", "eipgw-bench-sysfs-")
	if err != nil {
		return err
	}
	if err := b.gw.Do(func() error { return unix.Mount("sysfs", dir, "sysfs", 0, "") }); err != nil {
		os.Remove(dir)
		return fmt.Errorf("mount the gateway's sysfs: %w", err)
	}
	b.sysfs = dir
	for _, ifname := range []string{"vpc", "uplink"} {
		if err := pinNAPI(dir, ifname); err != nil {
			return err
		}
	}
	return nil
}

// pinNAPI makes one interface's receive work a thread and pins it to gatewayCPU.
func pinNAPI(sysfs, ifname string) error {
	if err := os.WriteFile(filepath.Join(sysfs, "class/net", ifname, "threaded"), []byte("1"), 0o644); err != nil {
		return fmt.Errorf("threaded NAPI on the gateway's %s: %w", ifname, err)
	}
	// The thread is named napi/<ifname>-<id>; it appears once the device has polled.
	deadline := time.Now().Add(2 * time.Second)
	for {
		pids, err := napiThreads(ifname)
		if err != nil {
			return err
		}
		if len(pids) > 0 {
			for _, pid := range pids {
				var set unix.CPUSet
				set.Set(gatewayCPU)
				if err := unix.SchedSetaffinity(pid, &set); err != nil {
					return fmt.Errorf("pin napi thread %d: %w", pid, err)
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no NAPI thread for the gateway's %s interface appeared", ifname)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// napiThreads finds kernel threads napi/<ifname>-*. Names are not unique across
// namespaces, so the bench's interface names are unusual only within its own run;
// pinning another run's thread too would do no harm.
func napiThreads(ifname string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), "napi/"+ifname+"-") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// attachXDP attaches a program to the gateway's interface with that index.
func (b *bed) attachXDP(prog *ebpf.Program, ifindex int) (link.Link, error) {
	var l link.Link
	err := b.gw.Do(func() error {
		var err error
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex})
		return err
	})
	return l, err
}

func (b *bed) close() {
	for _, e := range b.dps {
		e.stopHops()
		e.dp.Close() // Remove refuses a dataplane that is still held
		_ = dataplane.Remove(e.dp.PinDir())
	}
	if b.restoreConntrack != nil {
		b.restoreConntrack()
	}
	if b.bpffs != nil {
		b.bpffs.Close()
	}
	for _, l := range []link.Link{b.sinkLink, b.genSinkLink} {
		if l != nil {
			l.Close()
		}
	}
	b.objs.Close()
	if b.sysfs != "" {
		_ = unix.Unmount(b.sysfs, unix.MNT_DETACH)
		os.Remove(b.sysfs)
	}
	for _, h := range []*testbed.Host{b.sink, b.gw, b.gen} {
		if h != nil {
			h.Close()
		}
	}
}
