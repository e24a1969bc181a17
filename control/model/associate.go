package model

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/eipgw/eipgw/desired"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

func init() {
	register("AssociateEipAddress", true, (*Service).associate)
	register("UnassociateEipAddress", true, (*Service).unassociate)
}

func itoa(i int) string { return strconv.Itoa(i) }

// active tells whether an EIP holds its association (being set up, in use, or being
// taken down): it still occupies its target.
func active(e *EIP) bool {
	return e.Status == StatusAssociating || e.Status == StatusInUse || e.Status == StatusUnassociating
}

// eipsOn lists the active EIPs associated with one target.
func eipsOn(tx Tx, instanceType, instanceID string) ([]*EIP, error) {
	ids, err := eipIDsOn(tx, instanceType, instanceID)
	if err != nil {
		return nil, err
	}
	out := make([]*EIP, 0, len(ids))
	for _, id := range ids {
		e, err := get[EIP](tx, KindEIP, id)
		if err != nil {
			return nil, err
		}
		if e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// privateTaken tells whether an active 1:1 association already translates to ip.
func privateTaken(tx Tx, ip string) (bool, error) {
	v, err := tx.Get(kindEIPByPrivate, ip)
	return v != nil, err
}

// oneToOne tells whether an association is a 1:1 binding in the dataplane here.
// NAT gateways and the cut-through modes have their own dataplane (later work).
func oneToOne(e *EIP) bool {
	switch e.InstanceType {
	case TypeEcs, TypeSLB, TypeHaVip:
		return true
	case TypeENI:
		return e.Mode == ModeNAT
	}
	return false
}

func (s *Service) associate(c *Call) (any, error) {
	e, err := ownEIP(c)
	if err != nil {
		return nil, err
	}
	id, err := c.Params.required("InstanceId")
	if err != nil {
		return nil, err
	}
	typ, err := c.Params.oneOf("InstanceType", TypeEcs, TypeEcs, TypeENI, TypeNat, TypeSLB, TypeHaVip)
	if err != nil {
		return nil, errInstanceType
	}
	mode, err := c.Params.oneOf("Mode", ModeNAT, ModeNAT, ModeBinded, ModeMulti)
	if err != nil {
		return nil, err
	}
	if mode != ModeNAT && typ != TypeENI {
		return nil, errDirectEipBindType
	}
	wantIP, err := c.Params.ipv4("PrivateIpAddress", false)
	if err != nil {
		return nil, err
	}
	if e.Status != StatusAvailable {
		return nil, errIncorrectEip
	}

	var private string
	switch typ {
	case TypeEcs:
		private, err = s.checkEcs(c, e, id)
	case TypeENI:
		private, err = s.checkENI(c, e, id, mode, wantIP)
	case TypeSLB:
		private, err = checkSingle[SLB](c, KindSLB, typ, id, "LoadBalancer", func(lb *SLB) (string, string, error) { return lb.Region, lb.Address, nil })
	case TypeHaVip:
		private, err = checkSingle[HaVip](c, KindHaVip, typ, id, "HaVip", func(h *HaVip) (string, string, error) {
			if h.Status != "Available" && h.Status != "InUse" {
				return "", "", errHaVipStatus
			}
			return h.Region, h.IPAddress, nil
		})
	case TypeNat:
		err = s.checkNat(c, e, id)
	}
	if err != nil {
		return nil, err
	}
	if private != "" && typ != TypeENI {
		if taken, err := privateTaken(c.Tx, private); err != nil || taken {
			return nil, firstErr(err, errDuplicated)
		}
	}
	old := *e
	e.Status, e.InstanceType, e.InstanceID, e.PrivateIPAddress = StatusAssociating, typ, id, private
	e.Mode, e.ENIMAC = "", ""
	if typ == TypeENI {
		e.Mode = mode
		if mode != ModeNAT {
			eni, err := get[ENI](c.Tx, KindENI, id)
			if err != nil {
				return nil, err
			}
			e.ENIMAC = eni.MacAddress
		}
	}
	return struct{}{}, saveEIP(c.Tx, &old, e)
}

func (s *Service) checkEcs(c *Call, e *EIP, id string) (string, error) {
	in, err := get[Instance](c.Tx, KindInstance, id)
	if err != nil {
		return "", err
	}
	switch {
	case in == nil:
		return "", errInstanceNotFound
	case in.VpcID == "":
		return "", errNotInVPC
	case in.Region != e.Region:
		return "", errRegionMismatch
	case in.Status != "Running" && in.Status != "Stopped":
		return "", errInstanceStatus
	case in.PublicIPAddress != "":
		return "", errHasPublicIP
	}
	if on, err := eipsOn(c.Tx, TypeEcs, id); err != nil || len(on) > 0 {
		return "", firstErr(err, errDuplicated)
	}
	eni, err := get[ENI](c.Tx, KindENI, in.PrimaryENI)
	if err != nil || eni == nil {
		return "", firstErr(err, errInstanceNotFound)
	}
	return eni.PrimaryIP, nil
}

func (s *Service) checkENI(c *Call, e *EIP, id, mode, wantIP string) (string, error) {
	eni, err := get[ENI](c.Tx, KindENI, id)
	if err != nil {
		return "", err
	}
	if eni == nil {
		return "", notFound("NetworkInterface", id)
	}
	if eni.Region != e.Region {
		return "", errRegionMismatch
	}
	// The cut-through modes exist only for secondary ENIs, whatever else is on it,
	// and the gateway must know the ENI's MAC to check sources.
	if mode != ModeNAT && eni.Primary {
		return "", errPrimaryEniOnly
	}
	if mode != ModeNAT && eni.MacAddress == "" {
		return "", errNoENIMAC
	}
	on, err := eipsOn(c.Tx, TypeENI, id)
	if err != nil {
		return "", err
	}
	for _, o := range on {
		if o.Mode != mode {
			return "", errModeConflict
		}
	}
	switch mode {
	case ModeNAT:
		ip := eni.PrimaryIP
		if wantIP != "" {
			if wantIP != eni.PrimaryIP && !slices.Contains(eni.SecondaryIPs, wantIP) {
				return "", errPrivateIPNotOnEni
			}
			ip = wantIP
		}
		if taken, err := privateTaken(c.Tx, ip); err != nil || taken {
			return "", firstErr(err, errDuplicated)
		}
		return ip, nil
	case ModeBinded:
		// The EIP replaces the secondary ENI's primary private address: the ENI
		// must be unattached and carry no other address.
		switch {
		case eni.InstanceID != "":
			return "", errEniAttached
		case len(eni.SecondaryIPs) > 0:
			return "", errEniHasSubIP
		case wantIP != "" && wantIP != eni.PrimaryIP:
			return "", errPrivateIPNotOnEni
		case len(on) > 0:
			return "", errDuplicated
		}
		return eni.PrimaryIP, nil
	default: // MULTI_BINDED: beside the ENI's private address, up to 10
		if len(on) >= desired.MaxCutThroughEIPs {
			return "", errMultiBindedQuota
		}
		return eni.PrimaryIP, nil
	}
}

// checkSingle checks a target that takes one EIP: it exists, is in the EIP's
// region, and has none yet. It returns the target's private address.
func checkSingle[T any](c *Call, kind, typ, id, what string, addr func(*T) (region, ip string, err error)) (string, error) {
	v, err := get[T](c.Tx, kind, id)
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", notFound(what, id)
	}
	region, ip, err := addr(v)
	if err != nil {
		return "", err
	}
	e, _ := ownEIP(c)
	if e != nil && region != e.Region {
		return "", errRegionMismatch
	}
	if on, err := eipsOn(c.Tx, typ, id); err != nil || len(on) > 0 {
		return "", firstErr(err, errDuplicated)
	}
	return ip, nil
}

func (s *Service) checkNat(c *Call, e *EIP, id string) error {
	g, err := get[NatGateway](c.Tx, KindNAT, id)
	if err != nil {
		return err
	}
	if g == nil {
		return notFound("NatGateway", id)
	}
	if g.Region != e.Region {
		return errRegionMismatch
	}
	on, err := eipsOn(c.Tx, TypeNat, id)
	if err != nil {
		return err
	}
	if len(on) >= maxNatEIPs {
		return errNatQuota
	}
	return nil
}

func (s *Service) unassociate(c *Call) (any, error) {
	e, err := ownEIP(c)
	if err != nil {
		return nil, err
	}
	id, err := c.Params.required("InstanceId")
	if err != nil {
		return nil, err
	}
	if e.Status != StatusInUse {
		return nil, errIncorrectEip
	}
	if id != e.InstanceID || (c.Params["InstanceType"] != "" && c.Params["InstanceType"] != e.InstanceType) {
		return nil, errInstanceNotFound
	}
	if e.InstanceType == TypeNat {
		if used, err := eipUsedByNatEntry(c.Tx, e.IPAddress); err != nil || used {
			return nil, firstErr(err, errEipUsedByNatEntry)
		}
	}
	old := *e
	e.Status = StatusUnassociating
	return struct{}{}, saveEIP(c.Tx, &old, e)
}

// DesiredBindings are the translations of every association being set up or in
// use. An association being taken down is already out: disassociation stops inbound
// traffic at once.
func DesiredBindings(tx Tx) ([]desired.Binding, error) {
	out := make([]desired.Binding, 0, sizeHint(tx, kindEIPByPrivate))
	err := tx.ForEachRaw(kindEIPByPrivate, func(private, v []byte) error {
		// Read without making strings: this walks every association at each start.
		ip, status, _ := bytes.Cut(v, []byte("|"))
		if string(status) == StatusUnassociating {
			return nil
		}
		eip, ok1 := parseIPv4(ip)
		priv, ok2 := parseIPv4(private)
		if !ok2 { // not IPv4: the slow way, for the error it gives
			var err error
			priv, err = netip.ParseAddr(string(private))
			ok2 = err == nil
		}
		if !ok1 || !ok2 {
			return fmt.Errorf("binding index entry %q -> %q is damaged", private, v)
		}
		out = append(out, desired.Binding{EIP: eip, Private: priv})
		return nil
	})
	return out, err
}

// DesiredCutThroughs are the cut-through EIPs being set up or in use.
func DesiredCutThroughs(tx Tx) ([]desired.CutThrough, error) {
	var out []desired.CutThrough
	err := tx.ForEach(kindEIPCut, func(ip string, v []byte) error {
		mac, status, _ := strings.Cut(string(v), "|")
		if status == StatusUnassociating {
			return nil
		}
		a, err1 := netip.ParseAddr(ip)
		hw, err2 := net.ParseMAC(mac)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("cut-through index entry %q -> %q is damaged", ip, v)
		}
		out = append(out, desired.CutThrough{EIP: a, ENIMAC: hw})
		return nil
	})
	return out, err
}

// pendingFingerprint is what a transition's settling depends on: the status and the
// association it is a transition to or from.
func pendingFingerprint(e *EIP) string {
	return strings.Join([]string{e.Status, e.InstanceType, e.InstanceID, e.PrivateIPAddress, e.Mode, e.ENIMAC}, "|")
}

// AnyPending says whether any EIP is in transition.
func AnyPending(tx Tx) (bool, error) {
	errFound := errors.New("found")
	err := tx.ForEach(kindEIPPending, func(string, []byte) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// indexedEIP reads an EIP an index names; a missing one means the index is damaged.
func indexedEIP(tx Tx, index, id string) (*EIP, error) {
	e, err := get[EIP](tx, KindEIP, id)
	if err == nil && e == nil {
		err = fmt.Errorf("the %s index names a missing EIP %s", index, id)
	}
	return e, err
}

// Pending reads the EIPs in transition (Associating, Unassociating) as the reconciler
// sees them when it reads the desired state: what it applies, and so what it may settle.
func Pending(tx Tx) (map[string]string, error) {
	out := map[string]string{}
	err := tx.ForEach(kindEIPPending, func(id string, _ []byte) error {
		e, err := indexedEIP(tx, "pending", id)
		if err != nil {
			return err
		}
		out[id] = pendingFingerprint(e)
		return nil
	})
	return out, err
}

// Settle finishes the transitions the dataplane has carried out: Associating
// becomes InUse, Unassociating becomes Available with its association cleared.
// The reconciler calls it in its own transaction after applying the bindings, with
// what Pending read beside the desired state: an EIP written since (a new transition
// the pass did not apply) is left for the next pass, so no status runs ahead of the
// dataplane.
func Settle(tx Tx, applied map[string]string) (int, error) {
	var pending []string
	if err := tx.ForEach(kindEIPPending, func(id string, _ []byte) error {
		pending = append(pending, id)
		return nil
	}); err != nil {
		return 0, err
	}
	var unchanged []*EIP
	for _, id := range pending {
		e, err := indexedEIP(tx, "pending", id)
		if err != nil {
			return 0, err
		}
		if seen, ok := applied[id]; ok && seen == pendingFingerprint(e) {
			unchanged = append(unchanged, e)
		}
	}
	return settleEIPs(tx, unchanged)
}

// settleEIPs finishes each record's transition and saves it, in place, and counts
// those that were in one.
func settleEIPs(tx Tx, records []*EIP) (int, error) {
	n := 0
	for _, e := range records {
		old := *e
		switch e.Status {
		case StatusAssociating:
			e.Status = StatusInUse
		case StatusUnassociating:
			e.Status, e.InstanceType, e.InstanceID, e.PrivateIPAddress, e.Mode, e.ENIMAC = StatusAvailable, "", "", "", "", ""
		default:
			continue
		}
		if err := saveEIP(tx, &old, e); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// PendingBindingSet is the pending transitions when each of them is a 1:1 EIP's (a
// binding to set, or one to remove), for a pass that applies only those: the
// bindings to set and the EIPs to unbind, with what Settle needs, and the records
// read, for a caller that applies the bindings and settles them in the same
// transaction (SettleRead): a group commit's writes are then decoded once, not twice.
type PendingBindingSet struct {
	Set     []desired.Binding
	Unbind  []netip.Addr
	Applied map[string]string // as Pending gives it
	// OnlyBindings is false when some pending transition asks for more than a binding
	// (a cut-through EIP or a NAT gateway's): then only a full pass will do.
	OnlyBindings bool
	records      []*EIP // in the pending index's order
}

// ReadPendingBindings reads the pending transitions as a PendingBindingSet.
func ReadPendingBindings(tx Tx) (*PendingBindingSet, error) {
	p := &PendingBindingSet{Applied: map[string]string{}, OnlyBindings: true}
	err := tx.ForEach(kindEIPPending, func(id string, _ []byte) error {
		e, err := indexedEIP(tx, "pending", id)
		if err != nil {
			return err
		}
		if !p.OnlyBindings || !oneToOne(e) {
			p.OnlyBindings = false
			return nil
		}
		eip, err1 := netip.ParseAddr(e.IPAddress)
		priv, err2 := netip.ParseAddr(e.PrivateIPAddress)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("EIP %s has damaged addresses", id)
		}
		switch e.Status {
		case StatusAssociating:
			p.Set = append(p.Set, desired.Binding{EIP: eip, Private: priv})
		case StatusUnassociating:
			p.Unbind = append(p.Unbind, eip)
		default:
			return fmt.Errorf("pending index names EIP %s in status %s", id, e.Status)
		}
		p.Applied[id] = pendingFingerprint(e)
		p.records = append(p.records, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SettleRead settles the transitions p read, as Settle(tx, p.Applied) would, in the
// transaction that read them: nothing can have changed them since, so they are not
// read again. Once only: the records are settled in place.
func (p *PendingBindingSet) SettleRead(tx Tx) (int, error) {
	records := p.records
	p.records = nil
	return settleEIPs(tx, records)
}

// parseIPv4 reads a dotted-quad IPv4 address from b, as netip.ParseAddr would, without
// making a string of it.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	field, digits := 0, 0
	val := 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '.' {
			if digits == 0 || field > 3 {
				return netip.Addr{}, false
			}
			a[field] = byte(val)
			field, digits, val = field+1, 0, 0
			continue
		}
		c := b[i]
		if c < '0' || c > '9' || (digits > 0 && val == 0) { // no leading zeros
			return netip.Addr{}, false
		}
		val, digits = val*10+int(c-'0'), digits+1
		if val > 255 {
			return netip.Addr{}, false
		}
	}
	if field != 4 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}
