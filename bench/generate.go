package main

// The benchmark's own BPF programs (generator, sink, XDP floor), generated like the
// dataplane's and committed.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type gen_config -type gen_state traffic bpf/traffic.c
