/* port_bitmap.h: the NAT EIPs' external ports as bits (port_bitmaps): claiming one,
 * a free one near a given port, and giving one back. Who claims which is ports.h's. */
#pragma once

#include <linux/in.h>

#include "maps.h"
#include "types.h"

/* The bitmaps' layout, in .rodata too so that it reaches Go through BTF. */
const enum port_bitmap_layout port_bitmap_layout = PORT_BLOCK_WORDS;

#define READ_ONCE_U64(x) (*(volatile __u64 *)&(x))

/* A retry budget for a word whose free bit another CPU took between the read and the
 * claim: the next probe moves on to another word. */
#define PORT_WORD_CLAIMS 4

static __always_inline __u32 port_protocol_index(__u8 protocol)
{
	return protocol == IPPROTO_TCP ? PORT_BITMAP_TCP : protocol == IPPROTO_UDP ? PORT_BITMAP_UDP : PORT_BITMAP_ICMP;
}

/* The word of block's bitmap for protocol that holds port's bit. key is where the
 * lookup's key is built: the port search's per-CPU state, whose callback has no stack
 * to spare (the chain program, snat_open, callback must fit in 512 bytes). */
static __always_inline __u64 *port_word(__u32 block, __u8 protocol, __u32 port, __u32 *key)
{
	*key = block * PORT_BLOCK_WORDS + port_protocol_index(protocol) * PORT_WORDS +
	       ((port >> 6) & (PORT_WORDS - 1));
	return bpf_map_lookup_elem(&port_bitmaps, key);
}

/* Give a claimed port back. */
static __always_inline void port_free(__u32 block, __u8 protocol, __u32 port)
{
	__u32 key;
	__u64 *w = port_word(block, protocol, port, &key);

	if (w)
		__sync_fetch_and_and(w, ~(1ULL << (port & 63)));
}

/* The index of x's lowest set bit (x nonzero): BPF has no count-trailing-zeros. */
static __always_inline __u32 lowest_bit(__u64 x)
{
	__u32 n = 0;

	if (!(x & 0xffffffffULL)) {
		n += 32;
		x >>= 32;
	}
	if (!(x & 0xffff)) {
		n += 16;
		x >>= 16;
	}
	if (!(x & 0xff)) {
		n += 8;
		x >>= 8;
	}
	if (!(x & 0xf)) {
		n += 4;
		x >>= 4;
	}
	if (!(x & 0x3)) {
		n += 2;
		x >>= 2;
	}
	return x & 1 ? n : n + 1;
}

/* The bits of word w (ports 64w to 64w+63) inside [min, max], which w overlaps. */
static __always_inline __u64 range_bits(__u32 w, __u32 min, __u32 max)
{
	__u32 first = w << 6, last = first + 63;
	__u64 bits = ~0ULL;

	if (min > first)
		bits &= ~0ULL << ((min - first) & 63);
	if (max < last)
		bits &= ~0ULL >> ((last - max) & 63);
	return bits;
}

/* The first of free's bits at or after bit r, wrapping within the word (free is not
 * 0). */
static __always_inline __u32 first_free_bit(__u64 free, __u32 r)
{
	__u64 rotated = r ? (free >> r) | (free << (64 - r)) : free;

	return (r + lowest_bit(rotated)) & 63;
}

/* Claim a free port in [min, max] of the word holding from's bit: the first at or
 * after from, wrapping within the word, so that where the search starts (random)
 * decides the port. 0 when the word has none (a port is never 0: port_min is at least
 * 1). */
static __always_inline __u32 port_claim_in_word(__u32 block, __u8 protocol, __u32 from, __u32 min, __u32 max,
						 __u32 *key)
{
	__u64 *w = port_word(block, protocol, from, key);
	__u32 word = from >> 6, r = from & 63, i, bit;
	__u64 valid, free;

	if (!w)
		return 0;
	valid = range_bits(word, min, max);
	for (i = 0; i < PORT_WORD_CLAIMS; i++) {
		free = ~READ_ONCE_U64(*w) & valid;
		if (!free)
			return 0;
		bit = first_free_bit(free, r);
		if (!(__sync_fetch_and_or(w, 1ULL << bit) & (1ULL << bit)))
			return word << 6 | bit;
	}
	return 0;
}

/* The port port_claim_in_word would claim now, claiming nothing: 0 when none. */
static __always_inline __u32 port_peek_in_word(__u32 block, __u8 protocol, __u32 from, __u32 min, __u32 max,
						__u32 *key)
{
	__u64 *w = port_word(block, protocol, from, key);
	__u64 free;

	if (!w)
		return 0;
	free = ~READ_ONCE_U64(*w) & range_bits(from >> 6, min, max);
	return free ? (from >> 6) << 6 | first_free_bit(free, from & 63) : 0;
}
