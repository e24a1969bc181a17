package dataplane

// The in-program harness (bpf/harness.c) is test-only: its object and bindings are
// generated into _test files, regenerated with the dataplane's own by `make generate`.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -mcpu=v3 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -output-suffix _test -no-global-types -type harness_template harness ../bpf/harness.c
