// Package intsort sorts integer keys without a comparison function, for the start-up
// reconcile: at 100,000 bindings or sources a comparison sort costs a start more than
// the comparison of desired and carried state it serves.
package intsort

// ByHigh32 sorts keys by their upper 32 bits, keeping keys with equal upper halves in
// the order given (a least-significant-digit radix sort, four passes of a byte). The
// callers pack what they sort by above a position or a value whose order they want
// kept.
func ByHigh32(keys []uint64) {
	if len(keys) < 2 {
		return
	}
	buf := make([]uint64, len(keys))
	src, dst := keys, buf
	for shift := uint(32); shift < 64; shift += 8 {
		var counts [257]int
		for _, k := range src {
			counts[(k>>shift)&0xff+1]++
		}
		if counts[(src[0]>>shift)&0xff+1] == len(src) {
			continue // every key has the same byte here: the pass would move nothing
		}
		for i := 1; i < len(counts); i++ {
			counts[i] += counts[i-1]
		}
		for _, k := range src {
			b := (k >> shift) & 0xff
			dst[counts[b]] = k
			counts[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}
