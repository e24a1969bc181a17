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

// inProgramCost is one path timed inside the program by the harness (dataplane's
// BenchmarkInProgram): the frame rebuilt each run, the rebuild subtracted.
type inProgramCost struct {
	Path     string  `json:"path"`               // e.g. one-to-one/outbound, snat/established
	Sessions int     `json:"sessions,omitempty"` // live sessions, for NAT gateway paths
	Order    string  `json:"order,omitempty"`    // in-order or random flow choice
	NsPerPkt float64 `json:"ns_per_packet"`
	// SessionBytes is the session tables' memory per live session, at 2x capacity;
	// CapacityBytes the same memory per session of their capacity (what a table for
	// N sessions costs, over N).
	SessionBytes  float64 `json:"session_bytes_per_session,omitempty"`
	CapacityBytes float64 `json:"session_bytes_per_capacity,omitempty"`
}

// sessionScalePoint is the established SNAT packet, flows taken at random, as live
// sessions grow, from the harness.
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
	InProgram    []inProgramCost
	SessionScale []sessionScalePoint
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)-\d+\s+\d+\s+(.*)$`)

// programCosts runs the dataplane's BPF_PROG_TEST_RUN benchmarks (the same code as
// `go test -bench`, so the figures are the ones a developer reproduces) and parses
// their metrics.
func programCosts(moduleDir string) (programFigures, error) {
	var fig programFigures
	for _, run := range []struct{ pattern, times string }{
		{"^BenchmarkPaths$|^BenchmarkBindingScale$", "400000x"},
		{"^BenchmarkInProgram$", "1000000x"},
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
	fig.deriveSessionScale()
	if len(fig.Costs) == 0 || len(fig.Scale) == 0 || len(fig.InProgram) == 0 || len(fig.SessionScale) == 0 {
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
	case parts[0] == "InProgram" && len(parts) == 4 && parts[1] == "one-to-one":
		// InProgram/one-to-one/outbound/random
		fig.InProgram = append(fig.InProgram, inProgramCost{Path: "one-to-one/" + parts[2], Order: parts[3],
			NsPerPkt: metrics["ns/packet"]})
	case parts[0] == "InProgram" && len(parts) >= 4:
		// InProgram/snat/sessions=N/new, InProgram/dnat/sessions=N/established/random
		c := inProgramCost{Path: parts[1] + "/" + parts[3], NsPerPkt: metrics["ns/packet"],
			SessionBytes: metrics["session-bytes/session"], CapacityBytes: metrics["session-bytes/capacity"]}
		c.Sessions, _ = strconv.Atoi(strings.TrimPrefix(parts[2], "sessions="))
		if len(parts) == 5 {
			c.Order = parts[4]
		}
		fig.InProgram = append(fig.InProgram, c)
	}
}

// deriveSessionScale takes the session-scale points from the harness: established SNAT
// with random flows, beside the 1:1 outbound path with random flows.
func (fig *programFigures) deriveSessionScale() {
	oneToOne := 0.0
	for _, c := range fig.InProgram {
		if c.Path == "one-to-one/outbound" && c.Order == "random" {
			oneToOne = c.NsPerPkt
		}
	}
	for _, c := range fig.InProgram {
		if c.Path == "snat/established" && c.Order == "random" {
			fig.SessionScale = append(fig.SessionScale, sessionScalePoint{Sessions: c.Sessions, NsPerPkt: c.NsPerPkt,
				OneToOneNs: oneToOne, SessionMaps: c.SessionBytes * float64(c.Sessions)})
		}
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
