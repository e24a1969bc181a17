package dataplane

import (
	"fmt"
	"sync"
)

// Reason says why a packet left the fast path: handed to the kernel (a pass) or
// dropped. Its values come from enum reason in bpf/lib/types.h.
type Reason uint32

const (
	ReasonPassNotIPv4            = Reason(natReasonREASON_PASS_NOT_IPV4)
	ReasonPassNotBound           = Reason(natReasonREASON_PASS_NOT_BOUND)
	ReasonPassTTLExpiring        = Reason(natReasonREASON_PASS_TTL_EXPIRING)
	ReasonPassNoNeigh            = Reason(natReasonREASON_PASS_NO_NEIGH)
	ReasonPassMTUExceeded        = Reason(natReasonREASON_PASS_MTU_EXCEEDED)
	ReasonPassFIBOther           = Reason(natReasonREASON_PASS_FIB_OTHER)
	ReasonPassFragmentToTC       = Reason(natReasonREASON_PASS_FRAGMENT_TO_TC)
	ReasonPassVLANTagged         = Reason(natReasonREASON_PASS_VLAN_TAGGED)
	ReasonPassBroadcastMulticast = Reason(natReasonREASON_PASS_BROADCAST_MULTICAST)
	ReasonPassOtherHost          = Reason(natReasonREASON_PASS_OTHER_HOST)
	ReasonHeldFragment           = Reason(natReasonREASON_HELD_FRAGMENT)
	ReasonDropTruncatedEth       = Reason(natReasonREASON_DROP_TRUNCATED_ETH)
	ReasonDropBadIPHeader        = Reason(natReasonREASON_DROP_BAD_IP_HEADER)
	ReasonDropBadIPLength        = Reason(natReasonREASON_DROP_BAD_IP_LENGTH)
	ReasonDropTruncatedL4        = Reason(natReasonREASON_DROP_TRUNCATED_L4)
	ReasonDropBadTCPHeader       = Reason(natReasonREASON_DROP_BAD_TCP_HEADER)
	ReasonDropBadUDPLength       = Reason(natReasonREASON_DROP_BAD_UDP_LENGTH)
	ReasonDropBadICMPError       = Reason(natReasonREASON_DROP_BAD_ICMP_ERROR)
	ReasonDropICMPMismatch       = Reason(natReasonREASON_DROP_ICMP_MISMATCH)
	ReasonDropCutThroughSpoof    = Reason(natReasonREASON_DROP_CUT_THROUGH_SPOOF)
	ReasonDropSpoofedSource      = Reason(natReasonREASON_DROP_SPOOFED_SOURCE)
	ReasonDropUntranslated       = Reason(natReasonREASON_DROP_UNTRANSLATED_SOURCE)
	ReasonDropBogonSource        = Reason(natReasonREASON_DROP_BOGON_SOURCE)
	ReasonDropUnpublished        = Reason(natReasonREASON_DROP_UNPUBLISHED_DESTINATION)
	ReasonDropNatNoSession       = Reason(natReasonREASON_DROP_NAT_NO_SESSION)
	ReasonDropNatUnsupported     = Reason(natReasonREASON_DROP_NAT_UNSUPPORTED)
	ReasonDropNatPortsExhausted  = Reason(natReasonREASON_DROP_NAT_PORTS_EXHAUSTED)
	ReasonDropNatPortQuota       = Reason(natReasonREASON_DROP_NAT_PORT_QUOTA)
	ReasonDropNatSessionQuota    = Reason(natReasonREASON_DROP_NAT_SESSION_QUOTA)
	ReasonDropNatTableFull       = Reason(natReasonREASON_DROP_NAT_TABLE_FULL)
	ReasonDropNatMappingExpiring = Reason(natReasonREASON_DROP_NAT_MAPPING_EXPIRING)
	ReasonDropNatContended       = Reason(natReasonREASON_DROP_NAT_CONTENDED)
	ReasonDropFragmentNoState    = Reason(natReasonREASON_DROP_FRAGMENT_NO_STATE)
	ReasonDropOverBandwidth      = Reason(natReasonREASON_DROP_OVER_BANDWIDTH)
	ReasonMax                    = Reason(natReasonREASON_MAX)
)

// reasonNames are the metric labels; the index is the Reason.
var reasonNames = [...]string{
	ReasonPassNotIPv4:            "pass_not_ipv4",
	ReasonPassNotBound:           "pass_not_bound",
	ReasonPassTTLExpiring:        "pass_ttl_expiring",
	ReasonPassNoNeigh:            "pass_no_neigh",
	ReasonPassMTUExceeded:        "pass_mtu_exceeded",
	ReasonPassFIBOther:           "pass_fib_other",
	ReasonPassFragmentToTC:       "pass_fragment_to_tc",
	ReasonPassVLANTagged:         "pass_vlan_tagged",
	ReasonPassBroadcastMulticast: "pass_broadcast_multicast",
	ReasonPassOtherHost:          "pass_other_host",
	ReasonHeldFragment:           "held_fragment",
	ReasonDropTruncatedEth:       "drop_truncated_eth",
	ReasonDropBadIPHeader:        "drop_bad_ip_header",
	ReasonDropBadIPLength:        "drop_bad_ip_length",
	ReasonDropTruncatedL4:        "drop_truncated_l4",
	ReasonDropBadTCPHeader:       "drop_bad_tcp_header",
	ReasonDropBadUDPLength:       "drop_bad_udp_length",
	ReasonDropBadICMPError:       "drop_bad_icmp_error",
	ReasonDropICMPMismatch:       "drop_icmp_mismatch",
	ReasonDropCutThroughSpoof:    "drop_cut_through_spoof",
	ReasonDropSpoofedSource:      "drop_spoofed_source",
	ReasonDropUntranslated:       "drop_untranslated_source",
	ReasonDropBogonSource:        "drop_bogon_source",
	ReasonDropUnpublished:        "drop_unpublished_destination",
	ReasonDropNatNoSession:       "drop_nat_no_session",
	ReasonDropNatUnsupported:     "drop_nat_unsupported",
	ReasonDropNatPortsExhausted:  "drop_nat_ports_exhausted",
	ReasonDropNatPortQuota:       "drop_nat_port_quota",
	ReasonDropNatSessionQuota:    "drop_nat_session_quota",
	ReasonDropNatTableFull:       "drop_nat_table_full",
	ReasonDropNatMappingExpiring: "drop_nat_mapping_expiring",
	ReasonDropNatContended:       "drop_nat_contended",
	ReasonDropFragmentNoState:    "drop_fragment_no_state",
	ReasonDropOverBandwidth:      "drop_over_bandwidth",
}

func (r Reason) String() string {
	if r < ReasonMax && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint32(r))
}

// reasonKinds is each reason's kind, read once from the BPF object's reason_kinds
// (bpf/lib/stats.h), which the packet path decides by too: one list, in C.
var reasonKinds = sync.OnceValues(func() ([reasonSlots]natReasonKind, error) {
	var kinds [reasonSlots]natReasonKind
	spec, err := loadNat()
	if err != nil {
		return kinds, fmt.Errorf("parse embedded BPF object: %w", err)
	}
	v, ok := spec.Variables[natVarReasonKinds]
	if !ok {
		return kinds, fmt.Errorf("BPF object has no %s", natVarReasonKinds)
	}
	if err := v.Get(&kinds); err != nil {
		return kinds, fmt.Errorf("read %s: %w", natVarReasonKinds, err)
	}
	return kinds, nil
})

// reasonSlots is REASON_SLOTS, the length of reason_kinds and reason_counters.
const reasonSlots = 64

func (r Reason) kind() natReasonKind {
	kinds, err := reasonKinds()
	if err != nil || int(r) >= len(kinds) {
		return 0
	}
	return kinds[r]
}

// IsDrop tells a drop from a pass to the kernel or a held packet, as the packet
// path does: a reason without a kind is a drop there, and here.
func (r Reason) IsDrop() bool {
	k := r.kind()
	return k != natReasonKindREASON_KIND_PASS && k != natReasonKindREASON_KIND_HELD
}

// ReasonCounts holds one packet count per Reason, summed over CPUs.
type ReasonCounts [ReasonMax]uint64

// NonZero returns the reasons that counted anything, for logs and test failures.
func (c ReasonCounts) NonZero() map[string]uint64 {
	out := map[string]uint64{}
	for r, n := range c {
		if n != 0 {
			out[Reason(r).String()] = n
		}
	}
	return out
}
