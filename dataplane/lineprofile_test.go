package dataplane

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
)

// BenchmarkLineProfile says where a packet's time goes in the program, by source
// line: perf samples every CPU while the harness runs the path, and each sample that
// fell in the program is put on the line the JIT's line table gives for its address
// (perf's own annotation of BPF needs a perf built with libopcodes). Established
// packets at random flows; new flows opened in order into a table every slot of
// which has been used (new-churned), purged and opened again until a second of them
// has run. A developer's tool, for the cost of a path rather than its speed:
//
//	sudo go test -run '^$' -bench LineProfile ./dataplane
//
// Samples are the kernel's CPU clock: each lands on the instruction the CPU was
// waiting on or just after it, so a line whose load missed the cache carries that
// miss.
func BenchmarkLineProfile(b *testing.B) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Skip("perf is not installed")
	}
	for _, n := range []uint32{1000, 12800, 100000} {
		for _, c := range []struct {
			name string
			sessionCase
		}{{"snat", snatSessions(n)}, {"dnat", dnatSessions(n)}, {"snat-own-mapping", ownMappingSessions(n)}} {
			if n <= 12800 && c.name != "snat-own-mapping" {
				b.Run(fmt.Sprintf("%s/sessions=%d/established", c.name, n), func(b *testing.B) {
					_, h, prog, frame, _ := openSessions(b, n, c.sessionCase)
					padded := h.use(b, frame, c.spread, true)
					profileLines(b, perf, prog, func() float64 {
						var ns float64
						for range 3 {
							ns += h.cost(b, prog, padded, 1000000) / 3
						}
						return ns
					})
				})
			}
			b.Run(fmt.Sprintf("%s/sessions=%d/new-churned", c.name, n), func(b *testing.B) {
				l, h, prog, frame, _ := openSessions(b, n, c.sessionCase)
				reopen := func() float64 {
					_, err := l.dp.PurgeSessions(func(Session) bool { return true })
					must(b, err)
					useEverySlot(b, l.dp)
					return h.open(b, prog, frame, c.spread)
				}
				reopen()
				profileLines(b, perf, prog, func() float64 {
					rounds := max(1, int(1e9/(1000*n))) // about a second of new flows at 1 us each
					var ns float64
					for range rounds {
						ns += reopen() / float64(rounds)
					}
					return ns
				})
			})
		}
	}
}

// profileLines runs run (which returns the path's ns a packet) under perf record on
// every CPU and logs the lines of prog that took the most samples.
func profileLines(b *testing.B, perf string, prog *ebpf.Program, run func() float64) {
	samples := filepath.Join(b.TempDir(), "perf.data")
	rec := exec.Command(perf, "record", "--quiet", "-a", "-o", samples)
	must(b, rec.Start())
	ns := run()
	must(b, rec.Process.Signal(syscall.SIGINT))
	if err := rec.Wait(); err != nil && !interrupted(err) {
		b.Fatalf("perf record: %v", err)
	}
	lines, err := jitedLines(prog)
	must(b, err)
	out, err := exec.Command(perf, "script", "-i", samples, "-F", "ip").Output()
	if err != nil {
		b.Fatalf("perf script: %v", err)
	}
	counts, total := lines.count(out)
	if total == 0 {
		b.Fatal("no sample fell in the program")
	}
	b.ReportMetric(ns, "ns/packet")
	b.Logf("%d samples in the program, %.0f ns a packet; the lines with the most:", total, ns)
	for _, lc := range counts[:min(len(counts), 8)] { // a benchmark's log keeps ten lines
		b.Logf("%5.1f%%  %s", 100*float64(lc.samples)/float64(total), lc.line)
	}
}

// interrupted tells whether err is a process's end by SIGINT: perf record stops so,
// as at a terminal's ^C, having written its samples.
func interrupted(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	status, ok := exit.Sys().(syscall.WaitStatus)
	return ok && status.Signaled() && status.Signal() == syscall.SIGINT
}

// jitedLineTable maps a JITed address of a program to its source line.
type jitedLineTable struct {
	funcs []addrRange // each function's JITed code
	addrs []uint64    // each line's first address, ascending
	lines []string
}

// addrRange is a function's JITed code, and the function's name.
type addrRange struct {
	start, end uint64
	name       string
}

type lineCount struct {
	line    string
	samples int
}

// jitedLines reads prog's line table: the BTF line infos, and the address the JIT
// gave each of them.
func jitedLines(prog *ebpf.Program) (*jitedLineTable, error) {
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
	// Each function's name, so that an inlined line says where it was inlined (a
	// bucket's read in an insert is not the lookup's).
	funcs, err := info.FuncInfos()
	if err != nil || len(funcs) != len(syms) {
		return nil, fmt.Errorf("the kernel gave %d function infos for %d functions (%v)", len(funcs), len(syms), err)
	}
	t := &jitedLineTable{}
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

// count puts each sampled address of perf script's output (one hexadecimal address
// a line) that lies in the program on its line: the lines by samples, most first,
// and the samples in the program.
func (t *jitedLineTable) count(script []byte) ([]lineCount, int) {
	byLine := map[string]int{}
	total := 0
	sc := bufio.NewScanner(bytes.NewReader(script))
	for sc.Scan() {
		ip, err := strconv.ParseUint(strings.TrimSpace(sc.Text()), 16, 64)
		if err != nil {
			continue
		}
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
	counts := make([]lineCount, 0, len(byLine))
	for line, n := range byLine {
		counts = append(counts, lineCount{line, n})
	}
	slices.SortFunc(counts, func(a, b lineCount) int { return b.samples - a.samples })
	return counts, total
}
