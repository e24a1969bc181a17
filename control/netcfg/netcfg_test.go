package netcfg

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

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
	saved := applyIn(t, vm, p)
	if again := applyIn(t, vm, p); again == nil {
		t.Fatal("applying twice recorded nothing")
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
	undoIn(t, vm, p, saved)
	undoIn(t, vm, p, saved)
	if after := snapshot(t, h); after != before {
		t.Errorf("Undo did not restore the interfaces exactly:\nbefore\n%s\nafter\n%s", before, after)
	}
}

func TestMultiPlanKeepsThePrivateAddress(t *testing.T) {
	vm := instance(t)
	h := vm.Netlink()
	before := snapshot(t, h)
	p := plan(ModeMulti, "203.0.113.21", "203.0.113.22", "203.0.113.23")
	saved := applyIn(t, vm, p)
	got := snapshot(t, h)
	for _, want := range []string{"addr eth1 10.0.1.31/16", "addr eth1 203.0.113.21/32", "addr eth1 203.0.113.23/32",
		"rule prio=1000 src=203.0.113.22/32 table=100"} {
		if !strings.Contains(got, want) {
			t.Errorf("after Apply, missing %q:\n%s", want, got)
		}
	}
	undoIn(t, vm, p, saved)
	if after := snapshot(t, h); after != before {
		t.Errorf("Undo did not restore the interfaces exactly:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// applyIn runs Apply in the instance's namespace.
func applyIn(t *testing.T, vm *testbed.Host, p Plan) *Saved {
	t.Helper()
	var saved *Saved
	if err := vm.Do(func() error {
		var err error
		saved, err = Apply(vm.Netlink(), p)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return saved
}

func undoIn(t *testing.T, vm *testbed.Host, p Plan, saved *Saved) {
	t.Helper()
	if err := vm.Do(func() error { return Undo(vm.Netlink(), p, saved) }); err != nil {
		t.Fatal(err)
	}
}

// ipState is what iproute2 reports of every address, route (all tables) and rule,
// with every attribute: an undo must give back exactly this.
func ipState(t *testing.T, vm *testbed.Host) string {
	t.Helper()
	var out []string
	for _, args := range [][]string{{"-j", "-d", "addr", "show"}, {"-j", "-d", "route", "show", "table", "all"}, {"-j", "-d", "rule", "show"}} {
		b, err := vm.Run(5*time.Second, "ip", args...)
		if err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, b)
		}
		out = append(out, string(b))
	}
	// Address lifetimes count down; a permanent address says "forever" either way.
	return strings.Join(out, "\n")
}

// TestUndoIsExact: the private address had no broadcast, noprefixroute and metric 50,
// a route used it as its source, and a rule named it; BINDED mode removes it (and the
// kernel the route with it). Undo gives back exactly that, as iproute2 reports it.
func TestUndoIsExact(t *testing.T) {
	vm := instance(t)
	for _, args := range [][]string{
		{"addr", "del", "10.0.1.31/16", "dev", "eth1"},
		{"addr", "add", "10.0.1.31/16", "dev", "eth1", "noprefixroute", "metric", "50"},
		{"route", "add", "10.0.0.0/16", "dev", "eth1", "src", "10.0.1.31", "metric", "50"},
		{"route", "add", "default", "via", "10.0.0.1", "dev", "eth1", "table", "31"},
		{"rule", "add", "from", "10.0.1.31", "table", "31", "priority", "500"},
	} {
		if b, err := vm.Run(5*time.Second, "ip", args...); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, b)
		}
	}
	before := ipState(t, vm)
	p := plan(ModeBinded, "203.0.113.7")
	saved := applyIn(t, vm, p)
	if mid := ipState(t, vm); strings.Contains(mid, `"local":"10.0.1.31"`) {
		t.Fatalf("BINDED mode kept the private address:\n%s", mid)
	}
	undoIn(t, vm, p, saved)
	if after := ipState(t, vm); after != before {
		t.Errorf("Undo did not restore exactly:\nbefore\n%s\nafter\n%s", before, after)
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
