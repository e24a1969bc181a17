package dataplane

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
)

// Go finds a record in the session table where the programs' record_find does
// (bpf/lib/session_table.h): a session's inbound record is looked up from its outbound
// one, instead of every inbound record of the table being paired through a map (two
// thirds of a walk's time at 200,000 sessions). The hash is ported; the probe layout
// comes from the object.

const (
	sessionProbeBuckets = uint32(natSessionProbeLayoutSESSION_PROBE_BUCKETS)
	sessionWindows      = int(natSessionProbeLayoutSESSION_WINDOWS)
)

// mix32 is session_table.h's integer mixer.
func mix32(x uint32) uint32 {
	x ^= x >> 16
	x *= 0x7feb352d
	x ^= x >> 15
	x *= 0x846ca68b
	x ^= x >> 16
	return x
}

// recordKeyHash is record_hash over a key's fields as they lie in a record (network
// byte order read as native integers, as the program reads them).
func recordKeyHash(seed uint32, k natSessionRecord, kind natRecordKind) uint32 {
	h := mix32(seed ^ k.AddrA)
	h = mix32(h ^ k.AddrB)
	h = mix32(h ^ (uint32(k.PortA)<<16 | uint32(k.PortB)))
	return mix32(h ^ (uint32(k.Protocol)<<8 | uint32(kind)))
}

// recordHome is record_home: the hash scaled to the table.
func recordHome(hash, buckets uint32) uint32 { return uint32((uint64(hash) * uint64(buckets)) >> 32) }

// nextWindowHash is next_window_hash.
func nextWindowHash(hash uint32) uint32 { return mix32(hash ^ 0x9e3779b9) }

// recordHolds is record_holds: r is a record of kind with k's key.
func recordHolds(r natSessionRecord, k natSessionRecord, kind natRecordKind) bool {
	return recordKind(r) == kind && r.AddrA == k.AddrA && r.AddrB == k.AddrB &&
		r.PortA == k.PortA && r.PortB == k.PortB && r.Protocol == k.Protocol
}

// mappedTable reads buckets of the session table through its memory mapping.
type mappedTable struct {
	mem           *ebpf.Memory
	seed, buckets uint32
	bucket        natSessionBucket
	raw           []byte // bucket's bytes
}

func newMappedTable(mem *ebpf.Memory, cfg natNatConfig) *mappedTable {
	t := &mappedTable{mem: mem, seed: cfg.SessionSeed, buckets: cfg.SessionBuckets}
	t.raw = unsafe.Slice((*byte)(unsafe.Pointer(&t.bucket)), unsafe.Sizeof(t.bucket))
	return t
}

// find is record_find: the record of kind with k's key, or false.
func (t *mappedTable) find(k natSessionRecord, kind natRecordKind) (natSessionRecord, bool, error) {
	if t.buckets == 0 {
		return natSessionRecord{}, false, nil
	}
	hash := recordKeyHash(t.seed, k, kind)
	for range sessionWindows {
		b := recordHome(hash, t.buckets)
		for range sessionProbeBuckets {
			if _, err := t.mem.ReadAt(t.raw, int64(b)*int64(len(t.raw))); err != nil {
				return natSessionRecord{}, false, fmt.Errorf("read session bucket %d: %w", b, err)
			}
			for _, r := range t.bucket.Records {
				if recordHolds(r, k, kind) {
					return r, true, nil
				}
			}
			// A never-used slot ends the search: an insert takes the first empty one.
			// (The program also stops after a window no record skipped, by the skip
			// counts; reading on through every window finds the same records.)
			if t.bucket.Records[0].State == 0 || t.bucket.Records[1].State == 0 {
				return natSessionRecord{}, false, nil
			}
			if b++; b >= t.buckets {
				b = 0
			}
		}
		hash = nextWindowHash(hash)
	}
	return natSessionRecord{}, false, nil
}

// inboundOf finds the inbound record of the session whose outbound record is out.
func (t *mappedTable) inboundOf(out natSessionRecord) (natSessionRecord, bool, error) {
	return t.find(natSessionRecord{AddrA: out.AddrB, AddrB: out.ToAddr, PortA: out.PortB, PortB: out.ToPort, Protocol: out.Protocol},
		natRecordKindRECORD_INBOUND)
}
