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

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)-\d+\s+\d+\s+(.*)$`)

// programCosts runs the dataplane's BPF_PROG_TEST_RUN benchmarks (the same code as
// `go test -bench`, so the figures are the ones a developer reproduces) and parses
// their metrics.
func programCosts(moduleDir string) ([]pathCost, []scalePoint, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", "Paths|BindingScale", "-benchtime", "400000x", "./dataplane")
	cmd.Dir = moduleDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, nil, fmt.Errorf("dataplane benchmarks: %w\n%s", err, out)
	}
	var costs []pathCost
	var scale []scalePoint
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		metrics := map[string]float64{}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			if v, err := strconv.ParseFloat(f[i], 64); err == nil {
				metrics[f[i+1]] = v
			}
		}
		parts := strings.Split(m[1], "/")
		switch {
		case parts[0] == "Paths" && len(parts) == 3:
			costs = append(costs, pathCost{Hook: parts[1], Path: parts[2], NsPerPkt: metrics["ns/packet"]})
		case parts[0] == "BindingScale" && len(parts) == 2:
			n, _ := strconv.Atoi(strings.TrimPrefix(parts[1], "bindings="))
			scale = append(scale, scalePoint{Bindings: n, NsPerPkt: metrics["ns/packet"], MapBytes: metrics["map-bytes"]})
		}
	}
	if len(costs) == 0 || len(scale) == 0 {
		return nil, nil, fmt.Errorf("dataplane benchmarks printed no figures:\n%s", out)
	}
	return costs, scale, nil
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
