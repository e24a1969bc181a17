package model

import "net/http"

// Capacity is how much the dataplane can carry; a write that would need more is
// refused before it commits, so no write is acknowledged that the dataplane cannot
// carry. A zero field means no limit is checked.
type Capacity struct {
	// Slots are the per-EIP counter slots: every 1:1 binding (IP-mapped NAT EIPs
	// included), cut-through EIP and NAT gateway EIP holds one.
	Slots int
	// Sources are the (address, MAC) pairs the VPC may send from.
	Sources int
	// NatEIPs, SnatRules and ForwardPorts are the NAT gateway tables.
	NatEIPs      int
	SnatRules    int
	ForwardPorts int
}

// errCapacity names the table that is full; the cloud answers a quota it cannot meet
// with a QuotaExceeded code.
func errCapacity(what string, limit int) *Error {
	return fail(http.StatusBadRequest, "QuotaExceeded.Dataplane",
		"The gateway's dataplane has room for %d %s; this request needs more.", limit, what)
}

// checkCapacity refuses the state tx holds when the dataplane could not carry it.
func (c Capacity) check(tx Tx) error {
	if c == (Capacity{}) {
		return nil
	}
	bindings, err := DesiredBindings(tx)
	if err != nil {
		return err
	}
	cuts, err := DesiredCutThroughs(tx)
	if err != nil {
		return err
	}
	nat, err := DesiredNatState(tx)
	if err != nil {
		return err
	}
	sources, err := DesiredSources(tx)
	if err != nil {
		return err
	}
	for _, t := range []struct {
		what       string
		need, have int
	}{
		{"EIP associations", len(bindings) + len(nat.IPMappings) + len(cuts) + len(nat.EIPs), c.Slots},
		{"registered instance addresses", len(sources), c.Sources},
		{"NAT gateway EIPs", len(nat.EIPs), c.NatEIPs},
		{"SNAT entries", len(nat.Rules), c.SnatRules},
		{"forward entry ports", len(nat.Ports), c.ForwardPorts},
	} {
		if t.have > 0 && t.need > t.have {
			return errCapacity(t.what, t.have)
		}
	}
	return nil
}
