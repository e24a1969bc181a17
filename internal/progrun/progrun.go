// Package progrun builds the context arguments of BPF_PROG_TEST_RUN for XDP and TC
// programs. Layouts come from the object's BTF, not from copies of kernel structs.
package progrun

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

func layout(types *btf.Spec, typ, member string) (size, off int, err error) {
	var s *btf.Struct
	if err := types.TypeByName(typ, &s); err != nil {
		return 0, 0, fmt.Errorf("BTF has no %s: %w", typ, err)
	}
	for _, m := range s.Members {
		if m.Name == member {
			return int(s.Size), int(m.Offset.Bytes()), nil
		}
	}
	return 0, 0, fmt.Errorf("%s has no member %s", typ, member)
}

// XDPContext is an xdp_md for a frame of dataLen bytes arriving on ingressIfindex.
func XDPContext(types *btf.Spec, ingressIfindex uint32, dataLen int) ([]byte, error) {
	size, off, err := layout(types, "xdp_md", "ingress_ifindex")
	if err != nil {
		return nil, err
	}
	_, endOff, err := layout(types, "xdp_md", "data_end")
	if err != nil {
		return nil, err
	}
	ctx := make([]byte, size)
	// The kernel wants data_end to equal the frame's length (data and data_meta 0).
	binary.NativeEndian.PutUint32(ctx[endOff:], uint32(dataLen))
	binary.NativeEndian.PutUint32(ctx[off:], ingressIfindex)
	return ctx, nil
}

// SKBContext is a __sk_buff for a packet on ifindex.
func SKBContext(types *btf.Spec, ifindex uint32) ([]byte, error) {
	size, off, err := layout(types, "__sk_buff", "ifindex")
	if err != nil {
		return nil, err
	}
	ctx := make([]byte, size)
	binary.NativeEndian.PutUint32(ctx[off:], ifindex)
	return ctx, nil
}
