package dataplane

// The BPF object and its Go bindings are generated from bpf/ and committed, so that a
// plain `go build` needs no clang. `make generate` reruns this; CI fails on any diff.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type binding -type eip_counters -type reason nat ../bpf/nat.c
