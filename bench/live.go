package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/eipgw/eipgw/internal/lineprofile"
)

// liveProgram is where a case's per-packet time goes when it runs live: the time
// inside the gateway's XDP or TC program, read from the kernel's BPF run-time
// statistics over one extra window. The rest of the packet's time is the veth, the
// redirect and the stack around the program.
type liveProgram struct {
	Program  string  `json:"program"`
	Runs     uint64  `json:"runs"`
	NsPerRun float64 `json:"ns_per_run"`
}

// programClock reads the run count and run time of every program a case can run on
// the gateway: eipgw's, once opened, and the XDP floor.
func (b *bed) programClock() (map[string]ebpf.ProgramStats, error) {
	out := map[string]ebpf.ProgramStats{}
	for name, p := range map[string]*ebpf.Program{"xdp_floor": b.objs.XdpFloor, "xdp_floor_in": b.objs.XdpFloorIn} {
		st, err := p.Stats()
		if err != nil {
			return nil, fmt.Errorf("%s statistics: %w", name, err)
		}
		out[name] = *st
	}
	// Programs of the same name in eipgw's dataplanes add up: one case's window runs
	// one dataplane's.
	for _, e := range b.dps {
		ps, err := e.dp.ProgramStats()
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			st := out[p.Name]
			st.RunCount += p.Runs
			st.Runtime += p.RunTime
			out[p.Name] = st
		}
	}
	return out, nil
}

// measureLiveProgram runs one window of c with the kernel's run-time statistics on
// (they cost two clock reads a run, so the rate windows run without them) and
// reports the program that carried the window's packets. Kernel cases run no
// program of ours and report nothing.
func (b *bed) measureLiveProgram(c benchCase, pacePPS float64, window time.Duration) (*liveProgram, error) {
	if !strings.HasPrefix(c.Name, "eipgw-") && !strings.HasPrefix(c.Name, "xdp-floor") {
		return nil, nil
	}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("enable BPF run-time statistics: %w", err)
	}
	defer stats.Close()
	// The case's setup opens eipgw's dataplane on first use: read the clocks after
	// the window's setup by running it through a hook.
	var before map[string]ebpf.ProgramStats
	b.afterSetup = func() error {
		before, err = b.programClock()
		return err
	}
	defer func() { b.afterSetup = nil }()
	if _, err := b.measureWindow(c, pacePPS, window); err != nil {
		return nil, err
	}
	after, err := b.programClock()
	if err != nil {
		return nil, err
	}
	var best *liveProgram
	for name, a := range after {
		runs := a.RunCount - before[name].RunCount
		if runs == 0 || (best != nil && runs <= best.Runs) {
			continue
		}
		best = &liveProgram{Program: name, Runs: runs,
			NsPerRun: float64(a.Runtime-before[name].Runtime) / float64(runs)}
	}
	return best, nil
}

// profileLines runs one more window of c under perf on the gateway's CPU and writes
// the busiest source lines of program, the one that carried c's live window, to log
// (internal/lineprofile). Each sample interrupts the VM's CPU, which slows the
// gateway: its own window, apart from the measured ones, and only the lines' shares
// are reported.
func (b *bed) profileLines(c benchCase, program string, pacePPS float64, window time.Duration, log io.Writer) error {
	dir, err := os.MkdirTemp("", "eipgw-bench-lines")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var rec *lineprofile.Recording
	b.afterSetup = func() error {
		rec, err = lineprofile.Start(dir, strconv.Itoa(gatewayCPU))
		return err
	}
	defer func() { b.afterSetup = nil }()
	_, err = b.measureWindow(c, pacePPS, window)
	if rec == nil {
		return err
	}
	addrs, stopErr := rec.Stop()
	if err = errors.Join(err, stopErr); err != nil {
		return err
	}
	progs, err := b.programsNamed(program)
	if err != nil {
		return err
	}
	var best lineprofile.Profile
	for _, p := range progs {
		table, err := lineprofile.ForProgram(p)
		if err != nil {
			return fmt.Errorf("%s: %w", program, err)
		}
		// Only the dataplane whose program ran has samples in it.
		if prof := table.Count(addrs); prof.Total > best.Total {
			best = prof
		}
	}
	fmt.Fprintf(log, "lines    %-26s %s: %d of the %d samples on the gateway's CPU\n", c.Name, program, best.Total, len(addrs))
	for _, line := range best.Top(linesShown) {
		fmt.Fprintf(log, "lines    %-26s %s\n", c.Name, line)
	}
	return nil
}

// linesShown is how many of a program's lines --profile-lines prints.
const linesShown = 15

// programsNamed is every loaded program of ours with that name: the floor's, or
// one in each of eipgw's dataplanes.
func (b *bed) programsNamed(name string) ([]*ebpf.Program, error) {
	switch name {
	case "xdp_floor":
		return []*ebpf.Program{b.objs.XdpFloor}, nil
	case "xdp_floor_in":
		return []*ebpf.Program{b.objs.XdpFloorIn}, nil
	}
	var progs []*ebpf.Program
	for _, e := range b.dps {
		p, err := e.dp.Program(name)
		if err != nil {
			return nil, err
		}
		progs = append(progs, p)
	}
	return progs, nil
}

// liveProgramTable renders where each measured case's time per packet goes: the
// program's share against the whole packet at the CPU the gateway has.
func liveProgramTable(r *rateReport) string {
	var b strings.Builder
	for _, c := range r.Cases {
		if c.Live == nil {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("Time in the gateway's program, live (one window per case with the kernel's BPF run-time statistics on, before the first round and after the last; the rest of a packet's time at the gateway's CPU is the veth, the redirect and the stack):\n\n")
			b.WriteString("| case | program | ns in the program a packet, after the last round | before the first | last / first | ns a packet at the gateway's CPU (1 / median rate) |\n|---|---|---:|---:|---:|---:|\n")
		}
		whole := "-"
		if c.Mpps.Median > 0 {
			whole = fmt.Sprintf("%.0f", 1e3/c.Mpps.Median)
		}
		first, drift := "-", "-"
		if c.LiveFirst != nil && c.LiveFirst.NsPerRun > 0 {
			first = fmt.Sprintf("%.0f", c.LiveFirst.NsPerRun)
			drift = fmt.Sprintf("%.2fx", c.Live.NsPerRun/c.LiveFirst.NsPerRun)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s |\n", c.Name, c.Live.Program, c.Live.NsPerRun, first, drift, whole)
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	return b.String()
}
