package dataplane

import (
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// layoutFingerprint hashes what a pinned map's users depend on: each pinned map's
// type, sizes, capacity and flags, and the C layout of its key and value (member
// names, offsets and sizes). Two builds with the same fingerprint can share pins; a
// change to a struct that keeps its size still changes the fingerprint.
func layoutFingerprint(spec *ebpf.CollectionSpec) ([]byte, error) {
	names := make([]string, 0, len(spec.Maps))
	for name := range spec.Maps {
		if pinnedMap(name) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		ms := spec.Maps[name]
		fmt.Fprintf(h, "map %s type=%s key=%d value=%d max=%d flags=%#x\n",
			name, ms.Type, ms.KeySize, ms.ValueSize, ms.MaxEntries, ms.Flags)
		for _, t := range []btf.Type{ms.Key, ms.Value} {
			if t == nil {
				continue
			}
			if err := writeBTFLayout(h, t, 0); err != nil {
				return nil, fmt.Errorf("fingerprint map %s: %w", name, err)
			}
		}
	}
	return h.Sum(nil), nil
}

func writeBTFLayout(w io.Writer, t btf.Type, depth int) error {
	if depth > 8 {
		return fmt.Errorf("type %s nests too deep", t.TypeName())
	}
	indent := strings.Repeat(" ", depth)
	size, err := btf.Sizeof(t)
	if err != nil {
		return err
	}
	switch v := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		fmt.Fprintf(w, "%sstruct %s size=%d\n", indent, v.Name, size)
		for _, m := range v.Members {
			fmt.Fprintf(w, "%s member %s off=%d bits=%d\n", indent, m.Name, m.Offset, m.BitfieldSize)
			if err := writeBTFLayout(w, m.Type, depth+1); err != nil {
				return err
			}
		}
	case *btf.Enum:
		// Values may be added (reason_counters has spare slots); only the size matters.
		fmt.Fprintf(w, "%senum %s size=%d\n", indent, v.Name, size)
	case *btf.Array:
		fmt.Fprintf(w, "%sarray n=%d\n", indent, v.Nelems)
		return writeBTFLayout(w, v.Type, depth+1)
	default:
		fmt.Fprintf(w, "%s%T size=%d\n", indent, v, size)
	}
	return nil
}
