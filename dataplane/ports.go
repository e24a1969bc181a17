package dataplane

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// port_bitmaps' layout (enum port_bitmap_layout): per NAT EIP a block of bitmaps, one
// per protocol, a bit per external port.
const (
	portWords      = int(natPortBitmapLayoutPORT_WORDS)
	portBlockWords = int(natPortBitmapLayoutPORT_BLOCK_WORDS)
)

// portBlock is one NAT EIP's port bitmaps, as words.
type portBlock []uint64

// inUse counts the ports taken in the bitmap of one protocol (enum port_bitmap_layout's
// PORT_BITMAP_*).
func (b portBlock) inUse(bitmap natPortBitmapLayout) int {
	n := 0
	for _, w := range b[int(bitmap)*portWords : (int(bitmap)+1)*portWords] {
		n += bits.OnesCount64(w)
	}
	return n
}

// readPortBlock reads NAT EIP block's bitmaps, through the map's memory mapping where
// this process has one (no syscall), else by lookups.
func (d *Dataplane) readPortBlock(block uint32) (portBlock, error) {
	m := d.objs.PortBitmaps
	first := int(block) * portBlockWords
	if first+portBlockWords > int(m.MaxEntries()) {
		return nil, fmt.Errorf("read port block %d: beyond the map's %d words", block, m.MaxEntries())
	}
	out := make(portBlock, portBlockWords)
	if mem, err := m.Memory(); err == nil {
		raw := make([]byte, 8*portBlockWords)
		if _, err := mem.ReadAt(raw, int64(8*first)); err != nil {
			return nil, fmt.Errorf("read port block %d: %w", block, err)
		}
		for i := range out {
			out[i] = binary.NativeEndian.Uint64(raw[8*i:])
		}
		return out, nil
	}
	for i := range out {
		if err := m.Lookup(uint32(first+i), &out[i]); err != nil {
			return nil, fmt.Errorf("read port block %d: %w", block, err)
		}
	}
	return out, nil
}

// clearPortBlock frees every port of block: a block taken for a new NAT EIP starts
// empty, whatever an EIP that had it before left.
func (d *Dataplane) clearPortBlock(block uint32) error {
	m := d.objs.PortBitmaps
	first := int(block) * portBlockWords
	if first+portBlockWords > int(m.MaxEntries()) {
		return fmt.Errorf("clear port block %d: beyond the map's %d words", block, m.MaxEntries())
	}
	if mem, err := m.Memory(); err == nil && !mem.ReadOnly() {
		if _, err := mem.WriteAt(make([]byte, 8*portBlockWords), int64(8*first)); err != nil {
			return fmt.Errorf("clear port block %d: %w", block, err)
		}
		return nil
	}
	keys := make([]uint32, portBlockWords)
	for i := range keys {
		keys[i] = uint32(first + i)
	}
	if _, err := d.objs.PortBitmaps.BatchUpdate(keys, make([]uint64, portBlockWords), nil); err != nil {
		return fmt.Errorf("clear port block %d: %w", block, err)
	}
	return nil
}

// natEIPPortBlocks lists the NAT EIPs' port blocks, by EIP key.
func (d *Dataplane) natEIPPortBlocks() (map[uint32]uint32, error) {
	out := map[uint32]uint32{}
	if err := eachEntry(d.objs.NatEips, func(key uint32, e natNatEip) { out[key] = e.PortBlock }); err != nil {
		return nil, fmt.Errorf("list NAT EIPs' port blocks: %w", err)
	}
	return out, nil
}

// portsInUse counts the external ports taken on every NAT EIP, all protocols.
func (d *Dataplane) portsInUse() (int, error) {
	blocks, err := d.natEIPPortBlocks()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, block := range blocks {
		b, err := d.readPortBlock(block)
		if err != nil {
			return 0, err
		}
		for _, bitmap := range []natPortBitmapLayout{natPortBitmapLayoutPORT_BITMAP_TCP, natPortBitmapLayoutPORT_BITMAP_UDP, natPortBitmapLayoutPORT_BITMAP_ICMP} {
			n += b.inUse(bitmap)
		}
	}
	return n, nil
}
