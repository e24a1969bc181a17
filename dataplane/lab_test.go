package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/eipgw/eipgw/internal/progrun"
	"github.com/eipgw/eipgw/internal/testbed"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The lab is one namespace with the gateway's two interfaces, routes and permanent
// neighbours, so that bpf_fib_lookup inside BPF_PROG_TEST_RUN gives fixed answers.
var (
	labInet     = netip.MustParseAddr("198.51.100.10")
	labRouterIP = netip.MustParseAddr("198.51.100.253")
	labHop      = netip.MustParseAddr("198.51.100.1") // a router further out, sends ICMP errors

	// A bound EIP whose instance's MAC is known: the redirect path.
	eipVM1  = netip.MustParseAddr("203.0.113.10")
	privVM1 = netip.MustParseAddr("10.0.1.11")
	// Bound, but nothing has resolved the instance's MAC yet.
	eipNoNeigh  = netip.MustParseAddr("203.0.113.12")
	privNoNeigh = netip.MustParseAddr("10.0.1.12")
	// Bound to an instance behind a link with a 1000-byte MTU.
	eipSmallMTU  = netip.MustParseAddr("203.0.113.19")
	privSmallMTU = netip.MustParseAddr("10.0.9.9")
	// Bound to an address whose route is unreachable.
	eipUnreachable  = netip.MustParseAddr("203.0.113.18")
	privUnreachable = netip.MustParseAddr("10.0.8.8")

	// A registered instance without an EIP.
	privNoEIP = netip.MustParseAddr("10.0.1.78")

	macRouter = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	macVM1    = net.HardwareAddr{0x02, 0, 0, 0, 0x01, 0x11}
	macVM9    = net.HardwareAddr{0x02, 0, 0, 0, 0x09, 0x09}
	macRemote = net.HardwareAddr{0x02, 0, 0, 0, 0xaa, 0xaa} // source MAC of frames fed in

	// A cut-through EIP on a secondary ENI: the gateway reaches it on the VPC side.
	eipCut = netip.MustParseAddr("203.0.113.30")
	macCut = net.HardwareAddr{0x02, 0, 0, 0, 0x03, 0x30}
)

type lab struct {
	host        *testbed.Host
	dp          *Dataplane
	uplink, vpc *netlink.LinkAttrs
	types       *btf.Spec // for the test-run contexts
}

func newLab(t testing.TB) *lab { return newLabSized(t, 1024) }

// newLabSized is newLab with room for maxBindings bindings.
func newLabSized(t testing.TB, maxBindings uint32) *lab {
	t.Helper()
	return newLabWith(t, Config{MaxBindings: maxBindings})
}

// newLabWith is newLab with the dataplane's capacities from cfg (its PinDir is the lab's).
func newLabWith(t testing.TB, cfg Config) *lab {
	t.Helper()
	testbed.Require(t)
	host, err := testbed.NewHost(fmt.Sprintf("eipgw-lab-%d", unix.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close() })
	steps := []func() error{
		func() error { return testbed.Veth(host, "uplink", host, "uplink-peer") },
		func() error { return testbed.Veth(host, "vpc", host, "vpc-peer") },
		func() error { return host.Addr("uplink", "198.51.100.254/30") },
		func() error { return host.Addr("vpc", "10.0.0.1/16") },
		func() error { return host.Route("default", labRouterIP.String(), "") },
		func() error { return host.Neigh("uplink", labRouterIP, macRouter) },
		func() error { return host.Neigh("vpc", privVM1, macVM1) },
		func() error { return testbed.Veth(host, "small", host, "small-peer") },
		func() error { return host.SetMTU("small", 1000) },
		func() error { return host.Addr("small", "10.0.9.1/24") },
		func() error { return host.Neigh("small", privSmallMTU, macVM9) },
		func() error { return host.Sysctl("net/ipv4/ip_forward", "1") },
		func() error { return host.Route(eipCut.String()+"/32", "", "vpc") },
		func() error { return host.Neigh("vpc", eipCut, macCut) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	l := &lab{host: host}
	if l.uplink, err = host.Link("uplink"); err != nil {
		t.Fatal(err)
	}
	if l.vpc, err = host.Link("vpc"); err != nil {
		t.Fatal(err)
	}
	nl := host.Netlink()
	_, unreach, _ := net.ParseCIDR("10.0.8.0/24")
	if err := nl.RouteAdd(&netlink.Route{Dst: unreach, Type: unix.RTN_UNREACHABLE}); err != nil {
		t.Fatal(err)
	}

	fs, err := testbed.MountBPFFS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	cfg.PinDir = filepath.Join(fs.Dir, "eipgw")
	l.dp, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.dp.Close() })
	for eip, priv := range map[netip.Addr]netip.Addr{
		eipVM1: privVM1, eipNoNeigh: privNoNeigh, eipSmallMTU: privSmallMTU, eipUnreachable: privUnreachable,
	} {
		if err := l.dp.SetBinding(eip, priv); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.dp.SetCutThrough(eipCut, macCut); err != nil {
		t.Fatal(err)
	}
	// The instance behind eipVM1 sends from its own MAC; nothing else is registered.
	if err := l.dp.SetSource(Source{Addr: privVM1, MAC: macVM1}); err != nil {
		t.Fatal(err)
	}
	if err := l.dp.SetSource(Source{Addr: privNoEIP, MAC: macVM9}); err != nil {
		t.Fatal(err)
	}
	// The programs run on the lab's interfaces as Attach would have them: knowing
	// their MACs.
	for _, name := range []string{"uplink", "vpc", "small"} {
		attrs, err := host.Link(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.dp.setInterfaceMAC(attrs.Index, attrs.HardwareAddr); err != nil {
			t.Fatal(err)
		}
	}
	edge := DefaultEdgeConfig()
	edge.EIPPools = []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}
	if err := l.dp.SetEdgeConfig(edge); err != nil {
		t.Fatal(err)
	}
	spec, err := loadNat()
	if err != nil {
		t.Fatal(err)
	}
	l.types = spec.Types
	return l
}

// run feeds one frame to a program as if it arrived on ingress, inside the lab.
func (l *lab) run(t testing.TB, prog *ebpf.Program, hook Hook, ingress *netlink.LinkAttrs, frame []byte) (uint32, []byte) {
	t.Helper()
	opts, err := l.runOptions(hook, ingress, frame)
	if err != nil {
		t.Fatal(err)
	}
	var ret uint32
	err = l.host.Do(func() error {
		var err error
		ret, err = prog.Run(opts)
		return err
	})
	if err != nil {
		t.Fatalf("BPF_PROG_TEST_RUN: %v", err)
	}
	return ret, opts.DataOut
}

// onLoopback readies frame for Program.Benchmark, which takes no context: its runs
// arrive on the namespace's lo. The copy returned is addressed to lo's MAC (all zero),
// which the TC programs read the kernel's verdict on and the XDP programs are told,
// as Attach tells them an interface's.
func (l *lab) onLoopback(tb testing.TB, frame []byte) []byte {
	tb.Helper()
	lo, err := l.host.Link("lo")
	if err != nil {
		tb.Fatal(err)
	}
	if err := l.dp.setInterfaceMAC(lo.Index, make(net.HardwareAddr, 6)); err != nil {
		tb.Fatal(err)
	}
	out := append([]byte(nil), frame...)
	copy(out[:6], make([]byte, 6))
	return out
}

// runOptions is a BPF_PROG_TEST_RUN of frame arriving on ingress at hook.
func (l *lab) runOptions(hook Hook, ingress *netlink.LinkAttrs, frame []byte) (*ebpf.RunOptions, error) {
	opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+512)}
	var err error
	if hook == HookXDP {
		opts.Context, err = progrun.XDPContext(l.types, uint32(ingress.Index), len(frame))
	} else {
		opts.Context, err = progrun.SKBContext(l.types, uint32(ingress.Index))
	}
	return opts, err
}

func (l *lab) program(t testing.TB, role Role, hook Hook) *ebpf.Program {
	t.Helper()
	p, err := l.dp.program(role, hook)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (l *lab) ingress(role Role) *netlink.LinkAttrs {
	if role == RoleUplink {
		return l.uplink
	}
	return l.vpc
}

type countersSnapshot struct {
	reasons ReasonCounts
	eips    map[netip.Addr]EIPCounters
}

func (l *lab) snapshot(t testing.TB) countersSnapshot {
	t.Helper()
	rc, err := l.dp.ReasonCounts()
	if err != nil {
		t.Fatal(err)
	}
	s := countersSnapshot{reasons: rc, eips: map[netip.Addr]EIPCounters{}}
	eips, err := l.dp.CountedEIPs()
	if err != nil {
		t.Fatal(err)
	}
	for _, eip := range eips {
		c, err := l.dp.Counters(eip)
		if err != nil {
			t.Fatal(err)
		}
		s.eips[eip] = c
	}
	return s
}
