package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/testbed"
)

type pathCost struct {
	Hook     string  `json:"hook"`
	Path     string  `json:"path"`
	NsPerPkt float64 `json:"ns_per_packet"`
}

type scalePoint struct {
	Bindings int     `json:"bindings"`
	NsPerPkt float64 `json:"ns_per_packet"`
	MapBytes float64 `json:"map_bytes"`
}

// natPathCost is one NAT gateway path, measured one packet per test run (a translated
// frame cannot repeat on the kernel's reused buffer), so it includes the run's setup;
// the 1:1 path measured the same way is its baseline.
type natPathCost struct {
	Path     string  `json:"path"`
	NsPerPkt float64 `json:"ns_per_packet"`
}

type sessionScalePoint struct {
	Sessions    int     `json:"sessions"`
	NsPerPkt    float64 `json:"ns_per_packet"`
	OneToOneNs  float64 `json:"one_to_one_ns_per_packet"`
	SessionMaps float64 `json:"session_map_bytes"`
}

// programFigures is what the dataplane's go test benchmarks measure.
type programFigures struct {
	Costs        []pathCost
	Scale        []scalePoint
	NatCosts     []natPathCost
	SessionScale []sessionScalePoint
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)-\d+\s+\d+\s+(.*)$`)

// programCosts runs the dataplane's BPF_PROG_TEST_RUN benchmarks (the same code as
// `go test -bench`, so the figures are the ones a developer reproduces) and parses
// their metrics. The repeat-based ones run more iterations than the one-packet-per-call
// NAT ones, whose new-flow case opens one session per iteration.
func programCosts(moduleDir string) (programFigures, error) {
	var fig programFigures
	for _, run := range []struct{ pattern, times string }{
		{"^BenchmarkPaths$|^BenchmarkBindingScale$", "400000x"},
		{"^BenchmarkNatPaths$|^BenchmarkSessionScale$", "50000x"},
	} {
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", run.pattern, "-benchtime", run.times, "./dataplane")
		cmd.Dir = moduleDir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fig, fmt.Errorf("dataplane benchmarks %s: %w\n%s", run.pattern, err, out)
		}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			fig.add(sc.Text())
		}
	}
	if len(fig.Costs) == 0 || len(fig.Scale) == 0 || len(fig.NatCosts) == 0 || len(fig.SessionScale) == 0 {
		return fig, fmt.Errorf("dataplane benchmarks left figures out: %+v", fig)
	}
	return fig, nil
}

// add parses one line of go test -bench output.
func (fig *programFigures) add(line string) {
	m := benchLine.FindStringSubmatch(line)
	if m == nil {
		return
	}
	metrics := map[string]float64{}
	f := strings.Fields(m[2])
	for i := 0; i+1 < len(f); i += 2 {
		if v, err := strconv.ParseFloat(f[i], 64); err == nil {
			metrics[f[i+1]] = v
		}
	}
	parts := strings.Split(m[1], "/")
	count := func(prefix string) int {
		n, _ := strconv.Atoi(strings.TrimPrefix(parts[1], prefix))
		return n
	}
	switch {
	case parts[0] == "Paths" && len(parts) == 3:
		fig.Costs = append(fig.Costs, pathCost{Hook: parts[1], Path: parts[2], NsPerPkt: metrics["ns/packet"]})
	case parts[0] == "BindingScale" && len(parts) == 2:
		fig.Scale = append(fig.Scale, scalePoint{Bindings: count("bindings="), NsPerPkt: metrics["ns/packet"],
			MapBytes: metrics["map-bytes"]})
	case parts[0] == "NatPaths" && len(parts) == 3:
		fig.NatCosts = append(fig.NatCosts, natPathCost{Path: parts[2], NsPerPkt: metrics["ns/packet"]})
	case parts[0] == "SessionScale" && len(parts) == 2:
		fig.SessionScale = append(fig.SessionScale, sessionScalePoint{Sessions: count("sessions="),
			NsPerPkt: metrics["ns/packet"], OneToOneNs: metrics["one-to-one-ns/packet"],
			SessionMaps: metrics["session-map-bytes"]})
	}
}

// programStats loads the dataplane on a private bpffs and reads the verifier's
// figures for each program.
func programStats() ([]dataplane.ProgramStat, error) {
	fs, err := testbed.MountBPFFS()
	if err != nil {
		return nil, err
	}
	defer fs.Close()
	dp, err := dataplane.Open(dataplane.Config{PinDir: filepath.Join(fs.Dir, "eipgw")})
	if err != nil {
		return nil, err
	}
	defer dp.Close()
	return dp.ProgramStats()
}
