/* prefix.h: sets of IPv4 prefixes (struct prefix_set), matched by a bounded scan. */
#pragma once

#include "types.h"

static __always_inline bool prefix_set_contains(const struct prefix_set *set, __be32 addr)
{
	__u8 octet = ((__u8 *)&addr)[0];
	__u32 i;

	/* Most addresses are in no prefix: one bit says so without the scan. */
	if (!(set->first_octets[(octet >> 5) & 7] & (1u << (octet & 31))))
		return false;
	for (i = 0; i < MAX_EDGE_PREFIXES; i++) {
		if (i >= set->count)
			break;
		if ((addr & set->prefixes[i].mask) == set->prefixes[i].addr)
			return true;
	}
	return false;
}
