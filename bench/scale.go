package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/control/store"
	"github.com/eipgw/eipgw/internal/eipd"
	"github.com/eipgw/eipgw/internal/testbed"
)

// eipdStart is the eipd binary started over a state file of many settled
// associations, as a running gateway leaves it, into empty maps (a reboot): from exec
// to serving the API, the start-up reconcile included.
type eipdStart struct {
	Associations   int     `json:"associations"`
	StateFileBytes int64   `json:"state_file_bytes"`
	StartMs        float64 `json:"start_ms"`
	ResidentBytes  uint64  `json:"resident_bytes"`      // VmRSS once serving
	PeakBytes      uint64  `json:"peak_resident_bytes"` // VmHWM by then
}

// The pool of the start measurement: a million addresses that only ever sit in the
// maps. 240.0.0.0/4 is reserved and routed nowhere (RFC 1112), and eipd is not
// started with anything that sends to its EIPs.
var startPool = netip.MustParsePrefix("240.0.0.0/12")

// measureEipdStart builds eipd, writes a state file of n associations, and starts
// eipd on it in a test topology's gateway.
func measureEipdStart(moduleDir string, n int) (*eipdStart, error) {
	dir, err := os.MkdirTemp("", "eipgw-bench-start-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "eipd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/eipd")
	build.Dir = moduleDir
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build eipd: %w\n%s", err, out)
	}
	topo, err := testbed.New(testbed.Options{WireChecksums: true})
	if err != nil {
		return nil, err
	}
	defer topo.Close()
	fs, err := testbed.MountBPFFS()
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	capacity := uint32(1)
	for capacity < uint32(n)+1024 {
		capacity *= 2
	}
	files, err := eipd.WriteLocalSetup(dir, eipd.LocalSetup{Uplink: testbed.GWUplink, VPC: testbed.GWVPC, Hook: "xdp",
		Pools: []string{startPool.String()}, Listen: "127.0.0.1:18080", MetricsListen: "127.0.0.1:19180",
		BPFFSDir: filepath.Join(fs.Dir, "eipgw"), MaxBindings: capacity, MaxSources: capacity})
	if err != nil {
		return nil, err
	}
	statePath := filepath.Join(files.StateDir, eipd.StateFile)
	if err := seedSettled(statePath, n); err != nil {
		return nil, err
	}
	res := &eipdStart{Associations: n}
	if fi, err := os.Stat(statePath); err == nil {
		res.StateFileBytes = fi.Size()
	}

	log := &testbed.OutputBuffer{}
	cmd := exec.Command(bin, "--config", files.Config)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	if err := topo.GW.Start(cmd); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	for deadline := start.Add(10 * time.Minute); !strings.Contains(log.String(), "serving the API"); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("eipd exited before serving (%v):\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("eipd did not serve within 10 minutes:\n%s", log.String())
		}
	}
	res.StartMs = float64(time.Since(start).Microseconds()) / 1000
	if !strings.Contains(log.String(), fmt.Sprintf("%d added", 2*n)) {
		return nil, fmt.Errorf("eipd's start-up reconcile did not add %d bindings and sources:\n%s", 2*n, log.String())
	}
	if res.ResidentBytes, res.PeakBytes, err = residentBytes(cmd.Process.Pid); err != nil {
		return nil, err
	}
	return res, nil
}

// seedSettled writes n instances, each with an EIP associated and settled (InUse),
// and the sources snapshot a gateway's first pass stores.
func seedSettled(path string, n int) error {
	st, err := store.Open(path, true)
	if err != nil {
		return err
	}
	defer st.Close()
	if _, _, err := seedStore(st, &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{startPool}}, n, n, true); err != nil {
		return err
	}
	return st.Update(func(tx model.Tx) error {
		sources, err := model.DesiredSources(tx)
		if err != nil {
			return err
		}
		gen, err := model.InventoryGeneration(tx)
		if err != nil {
			return err
		}
		return model.SaveSourcesSnapshot(tx, gen, sources)
	})
}

// residentBytes reads a process's resident set and its peak from /proc.
func residentBytes(pid int) (rss, peak uint64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		kb, _ := strconv.ParseUint(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			peak = kb * 1024
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return rss, peak, nil
}
