package reconcile

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/eipgw/eipgw/desired"
)

// policingDP is fakeDP with bandwidth limits, kept as the dataplane keeps them: per
// binding, a new binding starting unlimited.
type policingDP struct {
	*fakeDP
	rates map[netip.Addr]desired.Limit
}

func (p *policingDP) SetBinding(e, priv netip.Addr) error {
	if _, bound := p.b[e]; !bound {
		delete(p.rates, e)
	}
	return p.fakeDP.SetBinding(e, priv)
}

func (p *policingDP) DeleteBinding(e netip.Addr) error {
	delete(p.rates, e)
	return p.fakeDP.DeleteBinding(e)
}

func (p *policingDP) BandwidthChanges(want []desired.Limit) ([]desired.Limit, error) {
	var out []desired.Limit
	named := map[netip.Addr]bool{}
	for _, w := range want {
		named[w.EIP] = true
		if _, carried := p.b[w.EIP]; carried && p.rates[w.EIP] != w {
			out = append(out, w)
		}
	}
	for e, l := range p.rates {
		if _, carried := p.b[e]; carried && l.Bits != 0 && !named[e] {
			out = append(out, desired.Limit{EIP: e})
		}
	}
	return out, nil
}

func (p *policingDP) SetBandwidths(limits []desired.Limit) error {
	for _, l := range limits {
		if _, bound := p.b[l.EIP]; !bound {
			return errors.New("not bound")
		}
		if l.Bits == 0 {
			delete(p.rates, l.EIP)
		} else {
			p.rates[l.EIP] = l
		}
	}
	return nil
}

// TestReconcileBandwidth: an EIP's Bandwidth (Mbit/s) is its limit in the dataplane
// as soon as the write that associates it has its pass, on the quick path too; a
// change of Bandwidth takes a full pass, which also puts back a limit that drifted
// and changes nothing when all match.
func TestReconcileBandwidth(t *testing.T) {
	s, fake, _, _ := routedWorld()
	dp := &policingDP{fakeDP: fake, rates: map[netip.Addr]desired.Limit{}}
	r := &Reconciler{Store: s, Dataplane: dp}
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11", "MacAddress", "02:00:00:00:01:11")
	do(t, s, "RegisterInstance", "InstanceId", "i-2", "VpcId", "v", "PrivateIpAddress", "10.0.1.12", "MacAddress", "02:00:00:00:01:12")
	ids := allocate(t, s, 2)
	do(t, s, "ModifyEipAddressAttribute", "AllocationId", ids[1], "Bandwidth", "20")
	eipOf := func(id string) netip.Addr {
		for e, p := range dp.b {
			if (id == ids[0] && p == netip.MustParseAddr("10.0.1.11")) || (id == ids[1] && p == netip.MustParseAddr("10.0.1.12")) {
				return e
			}
		}
		t.Fatalf("%s is not bound", id)
		return netip.Addr{}
	}
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	if _, err := r.ReconcilePending(context.Background()); err != nil { // the first pass: a full one
		t.Fatal(err)
	}
	if got := dp.rates[eipOf(ids[0])].Bits; got != 5_000_000 {
		t.Errorf("the default 5 Mbit/s EIP is limited to %d bit/s", got)
	}
	do(t, s, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")
	dp.lists = 0
	if res, err := r.ReconcilePending(context.Background()); err != nil || dp.lists != 0 || res.Added != 1 {
		t.Fatalf("the quick pass: %v, %v (%d whole-table reads)", res, err, dp.lists)
	}
	if got := dp.rates[eipOf(ids[1])].Bits; got != 20_000_000 {
		t.Errorf("associated on the quick path, the 20 Mbit/s EIP is limited to %d bit/s", got)
	}
	do(t, s, "ModifyEipAddressAttribute", "AllocationId", ids[0], "Bandwidth", "50")
	if res, err := r.Reconcile(context.Background()); err != nil || res.Policed != 1 {
		t.Fatalf("after a change of Bandwidth: %v, %v", res, err)
	}
	if got := dp.rates[eipOf(ids[0])].Bits; got != 50_000_000 {
		t.Errorf("changed to 50 Mbit/s, the EIP is limited to %d bit/s", got)
	}
	dp.rates[eipOf(ids[1])] = desired.Limit{EIP: eipOf(ids[1]), Bits: 1} // drifted
	if res, err := r.Reconcile(context.Background()); err != nil || res.Policed != 1 || dp.rates[eipOf(ids[1])].Bits != 20_000_000 {
		t.Fatalf("a drifted limit: %v, %v, %v", res, err, dp.rates)
	}
	if res, err := r.Reconcile(context.Background()); err != nil || res.Changed() {
		t.Fatalf("a pass over matching limits: %v, %v", res, err)
	}
	do(t, s, "UnassociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")
	if _, err := r.ReconcilePending(context.Background()); err != nil || len(dp.rates) != 1 {
		t.Fatalf("after a disassociation: %v, limits %v", err, dp.rates)
	}
}
