package dataplane

// The BPF object and its Go bindings are generated from bpf/ and committed, so that a
// plain `go build` needs no clang. `make generate` reruns this; CI fails on any diff.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -mcpu=v3 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type binding -type eip_counters -type eip_rate -type eip_bucket -type reason -type flow_key -type session_record -type session_bucket -type record_kind -type endpoint -type snat_pool -type snat_rule_key -type forward_target -type nat_eip -type source_usage -type nat_config -type expire_request -type expire_item -type session_flags -type tcp_seen -type held_key -type source_key -type edge_config -type prefix_set -type prefix4 -type next_hop -type next_hop_config -type next_hop_fallback -type interface_mac nat ../bpf/nat.c
