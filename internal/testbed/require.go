package testbed

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// Require skips a test that cannot run here (not root, no BPF) and says why. Under
// CI=true a test that cannot run fails instead: CI must run everything.
func Require(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (network namespaces and BPF)")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		skipOrFail(t, "cannot lift the memlock limit for BPF: "+err.Error())
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		skipOrFail(t, "the kernel refuses BPF maps: "+err.Error())
	}
	m.Close()
}

func skipOrFail(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and this test cannot run: %s", reason)
	}
	t.Skip(reason)
}
