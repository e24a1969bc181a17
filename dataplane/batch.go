package dataplane

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// batchSize is how many entries one BPF_MAP_LOOKUP_BATCH call reads.
const batchSize = 4096

// eachEntry calls fn for every entry of m, read a batch of entries a syscall
// (BPF_MAP_LOOKUP_BATCH), or one at a time where the kernel has no batch lookup for
// the map. Entries changed during the walk may be seen in either state, as with
// iteration.
func eachEntry[K, V any](m *ebpf.Map, fn func(K, V)) error {
	keys := make([]K, batchSize)
	vals := make([]V, batchSize)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			fn(keys[i], vals[i])
		}
		switch {
		case errors.Is(err, ebpf.ErrKeyNotExist):
			return nil // the end
		case errors.Is(err, ebpf.ErrNotSupported):
			if n != 0 {
				return fmt.Errorf("batch lookup stopped after %d entries: %w", n, err)
			}
			var k K
			var v V
			it := m.Iterate()
			for it.Next(&k, &v) {
				fn(k, v)
			}
			return it.Err()
		case err != nil:
			return err
		}
	}
}

// putMany puts entries, a batch of them a syscall (BPF_MAP_UPDATE_BATCH, which takes
// no flags per element: flags applies only one at a time, where the kernel has no
// batch update), and returns how many went in (the first ones). For a per-CPU map,
// vals holds each key's values for every possible CPU in a row.
func putMany[K, V any](m *ebpf.Map, keys []K, vals []V, flags ebpf.MapUpdateFlags) (int, error) {
	n, err := m.BatchUpdate(keys, vals, nil)
	if errors.Is(err, ebpf.ErrNotSupported) && n == 0 {
		perKey := len(vals) / max(len(keys), 1)
		for i := range keys {
			var val any = vals[i]
			if perKey > 1 {
				val = vals[i*perKey : (i+1)*perKey]
			}
			if err := m.Update(keys[i], val, flags); err != nil {
				return i, err
			}
		}
		return len(keys), nil
	}
	return n, err
}
