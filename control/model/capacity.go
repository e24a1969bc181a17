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
	// SharedBandwidths are the bandwidth packages, each of which may need a bucket.
	SharedBandwidths int
}

// errCapacity names the table that is full; the cloud answers a quota it cannot meet
// with a QuotaExceeded code.
func errCapacity(what string, limit int) *Error {
	return fail(http.StatusBadRequest, "QuotaExceeded.Dataplane",
		"The gateway's dataplane has room for %d %s; this request needs more.", limit, what)
}

// check refuses the state tx holds after action when the dataplane could not carry it.
// Each action checks only the tables it can grow, and associations are counted from
// the active-target index's keys, so the check costs an ordinary write little.
func (c Capacity) check(tx Tx, action string, params Params) error {
	if c == (Capacity{}) {
		return nil
	}
	switch action {
	case "AssociateEipAddress":
		slots, err := countKeys(tx, kindEIPByTarget, "")
		if err != nil {
			return err
		}
		if c.Slots > 0 && slots > c.Slots {
			return errCapacity("EIP associations", c.Slots)
		}
		if params["InstanceType"] == TypeNat {
			return c.checkNat(tx)
		}
	case "RegisterInstance", "CreateNetworkInterface", "AttachNetworkInterface", "AssignPrivateIpAddresses",
		"AssociateHaVip", "RegisterLoadBalancer":
		sources, err := DesiredSources(tx)
		if err != nil {
			return err
		}
		if c.Sources > 0 && len(sources) > c.Sources {
			return errCapacity("registered instance addresses", c.Sources)
		}
	case "CreateSnatEntry", "ModifySnatEntry", "CreateForwardEntry", "ModifyForwardEntry":
		return c.checkNat(tx)
	case "CreateCommonBandwidthPackage":
		packages, err := countKeys(tx, KindBandwidthPackage, "")
		if err != nil {
			return err
		}
		if c.SharedBandwidths > 0 && packages > c.SharedBandwidths {
			return errCapacity("bandwidth packages", c.SharedBandwidths)
		}
	}
	return nil
}

func (c Capacity) checkNat(tx Tx) error {
	nat, err := DesiredNatState(tx)
	if err != nil {
		return err
	}
	for _, t := range []struct {
		what       string
		need, have int
	}{
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

func countKeys(tx Tx, kind, prefix string) (int, error) {
	if c, ok := tx.(KeyCounter); ok {
		if n, counted, err := c.CountKeys(kind, prefix); counted || err != nil {
			return n, err
		}
	}
	n := 0
	err := tx.ForEachPrefix(kind, prefix, func(string, []byte) error { n++; return nil })
	return n, err
}

// sizeHint is how many keys kind holds when tx can say so without a walk (0
// otherwise), for a walk over every association to size its result once: growing it
// allocates twice its size, which at 100,000 associations made a start-up pass
// collect garbage.
func sizeHint(tx Tx, kind string) int {
	if c, ok := tx.(KeyCounter); ok {
		if n, counted, err := c.CountKeys(kind, ""); counted && err == nil {
			return n
		}
	}
	return 0
}

// KeyCounter is a Tx that can count a kind's keys without visiting them: the capacity
// check of every association counts the associations, 100,000 of them at scale.
type KeyCounter interface {
	// CountKeys is how many keys of kind start with prefix; counted is false when
	// this Tx cannot count them so (the caller then visits them).
	CountKeys(kind, prefix string) (n int, counted bool, err error)
}

// CountEIPs is how many EIPs are allocated, from the address index.
func CountEIPs(tx Tx) (int, error) { return countKeys(tx, kindEIPByIP, "") }

// CountAssociations is how many EIPs are associated, from the active-target index.
func CountAssociations(tx Tx) (int, error) { return countKeys(tx, kindEIPByTarget, "") }
