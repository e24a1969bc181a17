package reconcile

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/desired"
)

// fakeNat is a NAT dataplane that keeps what it is told and logs each call, so a test
// can check the order of removals and additions.
type fakeNat struct {
	eips  map[netip.Addr]bool
	rules map[netip.Prefix]desired.SnatRule
	ports map[string]desired.ForwardPort
	log   []string
	// deletePortCalls counts DeleteForwardPorts calls: each is one pass over the
	// sessions in the real dataplane.
	deletePortCalls int
}

func newFakeNat() *fakeNat {
	return &fakeNat{eips: map[netip.Addr]bool{}, rules: map[netip.Prefix]desired.SnatRule{},
		ports: map[string]desired.ForwardPort{}}
}

func portKey(p desired.ExternalPort) string {
	return desired.ProtoName(p.Protocol) + " " + p.External.String()
}

func externalOf(p desired.ForwardPort) desired.ExternalPort {
	return desired.ExternalPort{Protocol: p.Protocol, External: p.External}
}

func (f *fakeNat) NatEIPs() ([]netip.Addr, error) {
	var out []netip.Addr
	for e := range f.eips {
		out = append(out, e)
	}
	return out, nil
}

// SetNatEIP, SetSnatRule and SetForwardPort refuse what the real dataplane refuses:
// a rule or port on an EIP that is not a NAT EIP yet.
func (f *fakeNat) SetNatEIP(e netip.Addr) error {
	f.log = append(f.log, "set eip "+e.String())
	f.eips[e] = true
	return nil
}

func (f *fakeNat) DeleteNatEIP(e netip.Addr) error {
	for _, r := range f.rules {
		if slices.Contains(r.Pool, e) {
			return fmt.Errorf("EIP %v is still in rule %v", e, r.Source)
		}
	}
	f.log = append(f.log, "delete eip "+e.String())
	delete(f.eips, e)
	return nil
}

func (f *fakeNat) SnatRules() ([]desired.SnatRule, error) {
	var out []desired.SnatRule
	for _, r := range f.rules {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeNat) SetSnatRule(r desired.SnatRule) error {
	for _, e := range r.Pool {
		if !f.eips[e] {
			return fmt.Errorf("rule %v: %v is not a NAT EIP", r.Source, e)
		}
	}
	f.log = append(f.log, "set rule "+r.Source.String())
	f.rules[r.Source] = r
	return nil
}

func (f *fakeNat) DeleteSnatRule(source netip.Prefix) error {
	f.log = append(f.log, "delete rule "+source.String())
	delete(f.rules, source)
	return nil
}

func (f *fakeNat) ForwardPorts() ([]desired.ForwardPort, error) {
	var out []desired.ForwardPort
	for _, p := range f.ports {
		out = append(out, p)
	}
	return out, nil
}

func (f *fakeNat) SetForwardPort(p desired.ForwardPort) error {
	if !f.eips[p.External.Addr()] {
		return fmt.Errorf("port %s: not a NAT EIP", portKey(externalOf(p)))
	}
	f.log = append(f.log, "set port "+portKey(externalOf(p)))
	f.ports[portKey(externalOf(p))] = p
	return nil
}

func (f *fakeNat) DeleteForwardPorts(ps []desired.ExternalPort) error {
	f.deletePortCalls++
	for _, p := range ps {
		f.log = append(f.log, "delete port "+portKey(p))
		delete(f.ports, portKey(p))
	}
	return nil
}

// index is where the first log line with prefix is, or -1.
func (f *fakeNat) index(prefix string) int {
	return slices.IndexFunc(f.log, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

func natReconciler(f *fakeNat) *Reconciler { return &Reconciler{Nat: f} }

// run is one reconcile of the NAT part: removals, then the additions.
func run(t *testing.T, r *Reconciler, want model.DesiredNat) Result {
	t.Helper()
	var res Result
	add, err := r.reconcileNat(want, &res)
	if err != nil {
		t.Fatal(err)
	}
	if err := add(); err != nil {
		t.Fatal(err)
	}
	return res
}

var (
	natA, natB = netip.MustParseAddr("203.0.113.100"), netip.MustParseAddr("203.0.113.101")
	subnet     = netip.MustParsePrefix("10.0.1.0/24")
)

func fwd(proto uint8, eip netip.Addr, ext uint16, internal string) desired.ForwardPort {
	return desired.ForwardPort{Protocol: proto, External: netip.AddrPortFrom(eip, ext),
		Internal: netip.MustParseAddrPort(internal)}
}

// TestReconcileNatOrder: EIPs go in before the rules and ports on them, and out after;
// a second pass over a matching dataplane changes nothing.
func TestReconcileNatOrder(t *testing.T) {
	f := newFakeNat()
	r := natReconciler(f)
	want := model.DesiredNat{
		EIPs:  []netip.Addr{natA, natB},
		Rules: []desired.SnatRule{{Source: subnet, Pool: []netip.Addr{natA, natB}}},
		Ports: []desired.ForwardPort{fwd(desired.ProtoTCP, natB, 8080, "10.0.1.21:80")},
	}
	res := run(t, r, want)
	if res.Added != 4 || res.Removed != 0 {
		t.Errorf("first pass: %+v", res)
	}
	if f.index("set eip") > f.index("set rule") || f.index("set eip") > f.index("set port") {
		t.Errorf("additions out of order: %v", f.log)
	}
	f.log = nil
	if res := run(t, r, want); res.Added != 0 || res.Removed != 0 || len(f.log) != 0 {
		t.Errorf("a matching dataplane was changed: %+v %v", res, f.log)
	}

	res = run(t, r, model.DesiredNat{})
	if res.Removed != 4 {
		t.Errorf("removing everything: %+v", res)
	}
	if f.index("delete rule") > f.index("delete eip") || f.index("delete port") > f.index("delete eip") {
		t.Errorf("removals out of order: %v", f.log)
	}
	if len(f.eips)+len(f.rules)+len(f.ports) != 0 {
		t.Errorf("left behind: %v %v %v", f.eips, f.rules, f.ports)
	}
}

// TestReconcileNatChanges: a rule whose pool or affinity changed is set again; a
// forward port whose internal endpoint changed is removed and set again; a whole
// range of stale ports goes in one call (one pass over the sessions).
func TestReconcileNatChanges(t *testing.T) {
	f := newFakeNat()
	r := natReconciler(f)
	var ports []desired.ForwardPort
	for p := uint16(9000); p < 9100; p++ {
		ports = append(ports, fwd(desired.ProtoUDP, natB, p, fmt.Sprintf("10.0.1.21:%d", p)))
	}
	want := model.DesiredNat{
		EIPs:  []netip.Addr{natA, natB},
		Rules: []desired.SnatRule{{Source: subnet, Pool: []netip.Addr{natA}}},
		Ports: append([]desired.ForwardPort{fwd(desired.ProtoTCP, natB, 8080, "10.0.1.21:80")}, ports...),
	}
	run(t, r, want)

	f.log = nil
	want.Rules = []desired.SnatRule{{Source: subnet, Pool: []netip.Addr{natA, natB}, Affinity: true}}
	want.Ports = []desired.ForwardPort{fwd(desired.ProtoTCP, natB, 8080, "10.0.1.22:80")} // moved; the range is gone
	res := run(t, r, want)
	if !slices.Contains(f.log, "set rule "+subnet.String()) {
		t.Errorf("a changed rule was not set again: %v", f.log)
	}
	if got := f.rules[subnet]; !got.Affinity || len(got.Pool) != 2 {
		t.Errorf("rule now %+v", got)
	}
	if f.deletePortCalls != 1 {
		t.Errorf("101 stale ports took %d delete calls, want one", f.deletePortCalls)
	}
	if p := f.ports["tcp "+netip.AddrPortFrom(natB, 8080).String()]; p.Internal != netip.MustParseAddrPort("10.0.1.22:80") {
		t.Errorf("moved port now %+v", p)
	}
	if len(f.ports) != 1 || res.Removed != 101 || res.Added != 2 {
		t.Errorf("after the change: %d ports, %+v", len(f.ports), res)
	}
}
