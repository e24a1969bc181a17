package intsort

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestByHigh32 compares with a stable comparison sort on the upper halves, over keys
// whose upper halves repeat (so that stability shows) and over edge values.
func TestByHigh32(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 3, 100, 1000, 100000} {
		keys := make([]uint64, n)
		for i := range keys {
			var high uint64
			switch rng.IntN(4) {
			case 0:
				high = uint64(rng.Uint32())
			case 1:
				high = uint64(rng.IntN(8)) // few values: long runs of equal keys
			case 2:
				high = 0xffffffff
			default:
				high = uint64(rng.IntN(1 << 16))
			}
			keys[i] = high<<32 | uint64(i)
		}
		want := slices.Clone(keys)
		slices.SortStableFunc(want, func(a, b uint64) int {
			switch {
			case a>>32 < b>>32:
				return -1
			case a>>32 > b>>32:
				return 1
			}
			return 0
		})
		ByHigh32(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("n=%d: ByHigh32 differs from a stable sort", n)
		}
	}
}
