package testbed

import (
	"os"
	"os/exec"
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

// RequireEtcd is Require for a test that also starts an etcd server: it skips (or,
// under CI=true, fails) where Debian's etcd-server is not installed.
func RequireEtcd(t testing.TB) {
	t.Helper()
	Require(t)
	if _, err := exec.LookPath(EtcdBinary); err != nil {
		skipOrFail(t, "needs etcd (Debian's etcd-server: scripts/deps.sh installs it)")
	}
}

// RequireBird is Require for a test that also starts BIRD (Debian's bird2).
func RequireBird(t testing.TB) {
	t.Helper()
	Require(t)
	if _, err := exec.LookPath(BirdBinary); err != nil {
		skipOrFail(t, "needs bird (Debian's bird2: scripts/deps.sh installs it)")
	}
}
