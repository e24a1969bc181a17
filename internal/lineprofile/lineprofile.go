// Package lineprofile says where a BPF program's time goes, by source line: perf
// samples the CPUs while the program runs, and each sample that fell in the program's
// JITed code is put on the line the JIT's line table gives for its address. perf's
// own annotation of BPF needs a perf built with libopcodes.
//
// Samples are the kernel's CPU clock: each lands on the instruction the CPU was
// waiting on or just after it, so a line whose load missed the cache carries that
// miss. A developer's tool, used by the dataplane's harness benchmark
// (BenchmarkLineProfile) and by the bench's live windows (--profile-lines).
package lineprofile

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
)

// Recording is perf record running in the background.
type Recording struct {
	perf, data string
	cmd        *exec.Cmd
}

// Start records the CPU clock of cpus (perf's -C list, e.g. "1"; empty: every CPU)
// into dir/perf.data until Stop. It returns once perf is recording: perf takes
// a few hundred milliseconds to start, longer than some windows last, so it starts
// with its events off and Start turns them on through perf's control FIFO and waits
// for the acknowledgement.
func Start(dir, cpus string) (*Recording, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("perf is not installed: %w", err)
	}
	ctl, ack := filepath.Join(dir, "perf.ctl"), filepath.Join(dir, "perf.ack")
	for _, fifo := range []string{ctl, ack} {
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			return nil, fmt.Errorf("perf control FIFO: %w", err)
		}
	}
	r := &Recording{perf: perf, data: filepath.Join(dir, "perf.data")}
	args := []string{"record", "--quiet", "-D", "-1", "--control", "fifo:" + ctl + "," + ack, "-o", r.data}
	if cpus == "" {
		args = append(args, "-a")
	} else {
		args = append(args, "-C", cpus)
	}
	r.cmd = exec.Command(perf, args...)
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start perf record: %w", err)
	}
	if err := enable(ctl, ack); err != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return r, nil
}

// enable turns perf's events on and waits until perf says they are. Both FIFOs are
// opened read-write, which does not wait for the other end: a perf that failed to
// start is a timeout, not a hang.
func enable(ctl, ack string) error {
	c, err := os.OpenFile(ctl, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := os.OpenFile(ack, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := c.WriteString("enable\n"); err != nil {
		return err
	}
	if err := a.SetReadDeadline(time.Now().Add(enableTimeout)); err != nil {
		return err
	}
	reply := make([]byte, 16)
	n, err := a.Read(reply)
	if err != nil {
		return fmt.Errorf("no acknowledgement of enable: %w", err)
	}
	if !strings.HasPrefix(string(reply[:n]), "ack") {
		return fmt.Errorf("perf answered enable with %q", reply[:n])
	}
	return nil
}

// enableTimeout is how long perf may take to start recording.
const enableTimeout = 10 * time.Second

// Stop ends the recording (perf writes its samples on SIGINT, as at a terminal's ^C)
// and returns every sample's address.
func (r *Recording) Stop() ([]uint64, error) {
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		return nil, fmt.Errorf("stop perf record: %w", err)
	}
	if err := r.cmd.Wait(); err != nil && !interrupted(err) {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	out, err := exec.Command(r.perf, "script", "-i", r.data, "-F", "ip").Output()
	if err != nil {
		return nil, fmt.Errorf("perf script: %w", err)
	}
	var addrs []uint64
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if ip, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 16, 64); err == nil {
			addrs = append(addrs, ip)
		}
	}
	return addrs, sc.Err()
}

// interrupted tells whether err is a process's end by SIGINT.
func interrupted(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	status, ok := exit.Sys().(syscall.WaitStatus)
	return ok && status.Signaled() && status.Signal() == syscall.SIGINT
}

// Table maps a JITed address of a program to its source line.
type Table struct {
	funcs []addrRange // each function's JITed code
	addrs []uint64    // each line's first address, ascending
	lines []string
}

// addrRange is a function's JITed code, and the function's name.
type addrRange struct {
	start, end uint64
	name       string
}

// LineCount is the samples that fell on one source line, named with the function
// it was inlined into (a bucket's read in an insert is not the lookup's).
type LineCount struct {
	Line    string
	Samples int
}

// Profile is where a program's samples fell, the busiest line first.
type Profile struct {
	Lines []LineCount
	Total int // samples in the program
}

// ForProgram reads prog's line table: the BTF line infos, and the address the JIT
// gave each of them.
func ForProgram(prog *ebpf.Program) (*Table, error) {
	info, err := prog.Info()
	if err != nil {
		return nil, fmt.Errorf("program info: %w", err)
	}
	infos, err := info.LineInfos()
	if err != nil {
		return nil, fmt.Errorf("line infos: %w", err)
	}
	jited, ok := info.JitedLineInfos()
	syms, ok2 := info.JitedKsymAddrs()
	lens, ok3 := info.JitedFuncLens()
	if !ok || !ok2 || !ok3 || len(jited) != len(infos) || len(syms) != len(lens) {
		return nil, fmt.Errorf("the kernel gave no JITed line table (%d lines, %d addresses)", len(infos), len(jited))
	}
	funcs, err := info.FuncInfos()
	if err != nil || len(funcs) != len(syms) {
		return nil, fmt.Errorf("the kernel gave %d function infos for %d functions (%v)", len(funcs), len(syms), err)
	}
	t := &Table{}
	for i, start := range syms {
		t.funcs = append(t.funcs, addrRange{uint64(start), uint64(start) + uint64(lens[i]), funcs[i].Func.Name})
	}
	order := make([]int, len(jited))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(jited[a], jited[b]) })
	for _, i := range order {
		l := infos[i].Line
		t.addrs = append(t.addrs, jited[i])
		t.lines = append(t.lines, fmt.Sprintf("%s:%d  %s", filepath.Base(l.FileName()), l.LineNumber(), strings.TrimSpace(l.Line())))
	}
	return t, nil
}

// Count puts each sampled address that lies in the program on its line.
func (t *Table) Count(addrs []uint64) Profile {
	byLine := map[string]int{}
	total := 0
	for _, ip := range addrs {
		fn := slices.IndexFunc(t.funcs, func(r addrRange) bool { return ip >= r.start && ip < r.end })
		if fn < 0 {
			continue
		}
		i, found := slices.BinarySearch(t.addrs, ip)
		if !found {
			i--
		}
		if i < 0 {
			continue
		}
		byLine[t.funcs[fn].name+": "+t.lines[i]]++
		total++
	}
	p := Profile{Total: total, Lines: make([]LineCount, 0, len(byLine))}
	for line, n := range byLine {
		p.Lines = append(p.Lines, LineCount{line, n})
	}
	slices.SortFunc(p.Lines, func(a, b LineCount) int {
		return cmp.Or(b.Samples-a.Samples, strings.Compare(a.Line, b.Line))
	})
	return p
}

// Top renders the n busiest lines, one a line: share of the program's samples, then
// the line.
func (p Profile) Top(n int) []string {
	var out []string
	for _, lc := range p.Lines[:min(len(p.Lines), n)] {
		out = append(out, fmt.Sprintf("%5.1f%%  %s", 100*float64(lc.Samples)/float64(p.Total), lc.Line))
	}
	return out
}
