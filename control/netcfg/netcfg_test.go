package netcfg

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/eipgw/eipgw/internal/testbed"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// snapshot is everything netcfg may touch, as text, to compare before and after.
func snapshot(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	var lines []string
	links, _ := h.LinkList()
	for _, l := range links {
		addrs, _ := h.AddrList(l, unix.AF_INET)
		for _, a := range addrs {
			lines = append(lines, fmt.Sprintf("addr %s %s", l.Attrs().Name, a.IPNet))
		}
	}
	routes, _ := h.RouteListFiltered(unix.AF_INET, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route table=%d dst=%v gw=%v dev=%d", r.Table, r.Dst, r.Gw, r.LinkIndex))
	}
	rules, _ := h.RuleList(unix.AF_INET)
	for _, r := range rules {
		lines = append(lines, fmt.Sprintf("rule prio=%d src=%v table=%d", r.Priority, r.Src, r.Table))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// instance builds a VM namespace with a primary ENI (eth0) and a secondary (eth1),
// both on a switch namespace, as a cloud instance has them.
func instance(t *testing.T) *testbed.Host {
	t.Helper()
	testbed.Require(t)
	vm, err := testbed.NewHost(fmt.Sprintf("eipgw-netcfg-%d", unix.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	sw, err := testbed.NewHost(fmt.Sprintf("eipgw-netcfg-sw-%d", unix.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sw.Close() })
	for _, s := range []func() error{
		func() error { return testbed.Veth(vm, "eth0", sw, "p0") },
		func() error { return testbed.Veth(vm, "eth1", sw, "p1") },
		func() error { return vm.Addr("eth0", "10.0.1.11/16") },
		func() error { return vm.Addr("eth1", "10.0.1.31/16") },
		func() error { return vm.Route("default", "10.0.0.1", "eth0") },
	} {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	return vm
}

func plan(mode string, eips ...string) Plan {
	p := Plan{Interface: "eth1", Mode: mode, PrivateAddr: netip.MustParsePrefix("10.0.1.31/16"),
		EIPGateway: netip.MustParseAddr("10.0.0.1"), Primary: "eth0", PrimaryGateway: netip.MustParseAddr("10.0.0.1"),
		Table: 100, RulePriority: 1000}
	for _, e := range eips {
		p.EIPs = append(p.EIPs, netip.MustParseAddr(e))
	}
	return p
}

func TestBindedPlanAndUndo(t *testing.T) {
	vm := instance(t)
	h := vm.Netlink()
	before := snapshot(t, h)
	p := plan(ModeBinded, "203.0.113.7")
	if err := Apply(h, p); err != nil {
		t.Fatal(err)
	}
	if err := Apply(h, p); err != nil {
		t.Fatalf("applying twice: %v", err)
	}
	got := snapshot(t, h)
	for _, want := range []string{
		"addr eth1 203.0.113.7/32",
		"route table=254 dst=100.64.0.0/10 gw=10.0.0.1",
		"route table=100 dst=0.0.0.0/0 gw=10.0.0.1",
		"rule prio=1000 src=203.0.113.7/32 table=100",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("after Apply, missing %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "addr eth1 10.0.1.31/16") {
		t.Errorf("BINDED mode kept the private address:\n%s", got)
	}
	if strings.Count(got, "rule prio=1000") != 1 {
		t.Errorf("applying twice duplicated the rule:\n%s", got)
	}
	// The instance reaches 100.64/10 through its primary ENI, and the EIP's own
	// traffic leaves through the secondary.
	for dst, wantDev := range map[string]string{"100.100.100.100": "eth0"} {
		routes, err := h.RouteGet(netip.MustParseAddr(dst).AsSlice())
		if err != nil || len(routes) == 0 {
			t.Fatalf("route to %s: %v", dst, err)
		}
		l, _ := h.LinkByIndex(routes[0].LinkIndex)
		if l.Attrs().Name != wantDev {
			t.Errorf("%s goes out of %s, want %s", dst, l.Attrs().Name, wantDev)
		}
	}
	routes, err := h.RouteGetWithOptions(netip.MustParseAddr("198.51.100.10").AsSlice(),
		&netlink.RouteGetOptions{SrcAddr: netip.MustParseAddr("203.0.113.7").AsSlice()})
	if err != nil || len(routes) == 0 {
		t.Fatalf("route from the EIP: %v", err)
	}
	if l, _ := h.LinkByIndex(routes[0].LinkIndex); l.Attrs().Name != "eth1" {
		t.Errorf("traffic from the EIP leaves through %s, want eth1", l.Attrs().Name)
	}
	if err := Undo(h, p); err != nil {
		t.Fatal(err)
	}
	if err := Undo(h, p); err != nil {
		t.Fatalf("undoing twice: %v", err)
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("Undo did not restore the interfaces exactly:\nbefore\n%s\nafter\n%s", before, after)
	}
}

func TestMultiPlanKeepsThePrivateAddress(t *testing.T) {
	vm := instance(t)
	h := vm.Netlink()
	before := snapshot(t, h)
	p := plan(ModeMulti, "203.0.113.21", "203.0.113.22", "203.0.113.23")
	if err := Apply(h, p); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, h)
	for _, want := range []string{"addr eth1 10.0.1.31/16", "addr eth1 203.0.113.21/32", "addr eth1 203.0.113.23/32",
		"rule prio=1000 src=203.0.113.22/32 table=100"} {
		if !strings.Contains(got, want) {
			t.Errorf("after Apply, missing %q:\n%s", want, got)
		}
	}
	if err := Undo(h, p); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, h); after != before {
		t.Errorf("Undo did not restore the interfaces exactly:\nbefore\n%s\nafter\n%s", before, after)
	}
}

func TestPlanChecks(t *testing.T) {
	for name, p := range map[string]Plan{
		"same interfaces":    func() Plan { p := plan(ModeBinded, "203.0.113.7"); p.Primary = "eth1"; return p }(),
		"two EIPs in BINDED": plan(ModeBinded, "203.0.113.7", "203.0.113.8"),
		"unknown mode":       plan("NAT", "203.0.113.7"),
		"eleven EIPs":        plan(ModeMulti, "203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5", "203.0.113.6", "203.0.113.7", "203.0.113.8", "203.0.113.9", "203.0.113.10", "203.0.113.11"),
		"table out of range": func() Plan { p := plan(ModeBinded, "203.0.113.7"); p.Table = 254; return p }(),
		"no gateway":         func() Plan { p := plan(ModeBinded, "203.0.113.7"); p.EIPGateway = netip.Addr{}; return p }(),
	} {
		if err := p.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestGatewayRoutes(t *testing.T) {
	vm := instance(t)
	h := vm.Netlink()
	// A route somebody else made must survive.
	if err := vm.Route("203.0.113.99/32", "", "eth1"); err != nil {
		t.Fatal(err)
	}
	g := GatewayRoutes{Handle: h, Interface: "eth1"}
	a, b := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.8")
	if err := g.Sync([]netip.Addr{a, b}); err != nil {
		t.Fatal(err)
	}
	got := snapshot(t, h)
	if !strings.Contains(got, "dst=203.0.113.7/32") || !strings.Contains(got, "dst=203.0.113.8/32") {
		t.Errorf("after Sync(a, b):\n%s", got)
	}
	if err := g.Sync([]netip.Addr{b}); err != nil {
		t.Fatal(err)
	}
	got = snapshot(t, h)
	if strings.Contains(got, "dst=203.0.113.7/32") || !strings.Contains(got, "dst=203.0.113.8/32") || !strings.Contains(got, "dst=203.0.113.99/32") {
		t.Errorf("after Sync(b):\n%s", got)
	}
	if err := g.Sync(nil); err != nil {
		t.Fatal(err)
	}
	if got = snapshot(t, h); strings.Contains(got, "dst=203.0.113.8/32") || !strings.Contains(got, "dst=203.0.113.99/32") {
		t.Errorf("after Sync():\n%s", got)
	}
}
