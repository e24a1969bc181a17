package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/eipgw/eipgw/dataplane"
	"golang.org/x/sys/unix"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type machine struct {
	Kernel string `json:"kernel"`
	CPU    string `json:"cpu"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
}

func thisMachine() machine {
	var u unix.Utsname
	_ = unix.Uname(&u)
	m := machine{Kernel: unix.ByteSliceToString(u.Release[:]), CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				m.CPU = strings.TrimSpace(line[strings.IndexByte(line, ':')+1:])
				break
			}
		}
	}
	return m
}

type report struct {
	Date     time.Time               `json:"date"`
	Machine  machine                 `json:"machine"`
	Rounds   int                     `json:"rounds"`
	WindowS  float64                 `json:"window_seconds"`
	Overload float64                 `json:"overload"`
	Rates    *rateReport             `json:"rates"`
	Costs    []pathCost              `json:"program_cost"`
	Programs []dataplane.ProgramStat `json:"programs"`
	Scale    []scalePoint            `json:"binding_scale"`
	// InProgram are the paths timed inside the program by the harness.
	InProgram []inProgramCost `json:"in_program_cost"`
	// SessionScale is the established SNAT cost and session-table memory as live
	// sessions grow.
	SessionScale []sessionScalePoint `json:"session_scale"`
	Control      *controlReport      `json:"control_plane,omitempty"`
	Cluster      *clusterReport      `json:"cluster,omitempty"`
}

// markdown renders the tables people read in bench/README.md.
func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Measured %s on %s (%d CPUs), kernel %s, %s; %d interleaved rounds of %.1f s windows, paced at %.1fx each case's capacity.\n\n",
		r.Date.Format("2006-01-02"), r.Machine.CPU, r.Machine.CPUs, r.Machine.Kernel, r.Machine.Go, r.Rounds, r.WindowS, r.Overload)
	if r.Rates != nil {
		fmt.Fprintf(&b, "Generator ceiling: %s Mpps (start, end).\n\n", floats(r.Rates.Ceiling))
		b.WriteString("| case | flows | Mpps, median (IQR) | loss | vs kernel forwarding | vs kernel NAT counterpart | vs XDP floor | flags |\n")
		b.WriteString("|---|---:|---|---:|---|---|---|---|\n")
		for _, c := range r.Rates.Cases {
			if c.Unavailable != "" {
				fmt.Fprintf(&b, "| %s | %d | not measured: %s | | | | | |\n", c.Name, c.Flows, c.Unavailable)
				continue
			}
			counterpart := "-"
			if c.VsKernelNAT != nil {
				counterpart = fmt.Sprintf("%s (%s)", ratioCell(*c.VsKernelNAT), c.Counterpart)
			}
			var flags []string
			if c.GeneratorBound {
				flags = append(flags, "generator-bound")
			}
			if c.Unsaturated {
				flags = append(flags, "unsaturated")
			}
			fmt.Fprintf(&b, "| %s | %d | %.2f (%.2f-%.2f) | %.1f%% | %s | %s | %s | %s |\n", c.Name, c.Flows,
				c.Mpps.Median, c.Mpps.Q1, c.Mpps.Q3, 100*c.Loss.Median, ratioCell(c.VsForwarding), counterpart,
				ratioCell(c.VsFloor), strings.Join(flags, ", "))
		}
		b.WriteString("\n")
		b.WriteString(liveProgramTable(r.Rates))
	}
	if len(r.Costs) > 0 {
		b.WriteString("Program cost per path (BPF_PROG_TEST_RUN, warm cache, ns/packet):\n\n| path | xdp | tc |\n|---|---:|---:|\n")
		byPath := map[string]map[string]float64{}
		var order []string
		for _, c := range r.Costs {
			if byPath[c.Path] == nil {
				byPath[c.Path] = map[string]float64{}
				order = append(order, c.Path)
			}
			byPath[c.Path][c.Hook] = c.NsPerPkt
		}
		for _, p := range order {
			fmt.Fprintf(&b, "| %s | %.1f | %.1f |\n", p, byPath[p]["xdp"], byPath[p]["tc"])
		}
		b.WriteString("\n")
	}
	if len(r.Programs) > 0 {
		b.WriteString("| program | verified instructions | instructions | JIT bytes |\n|---|---:|---:|---:|\n")
		for _, p := range r.Programs {
			fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", p.Name, p.VerifiedInstructions, p.Instructions, p.JitedBytes)
		}
		b.WriteString("\n")
	}
	if len(r.Scale) > 0 {
		b.WriteString("Binding scale (inbound TCP hit at XDP; map memory at that capacity):\n\n| bindings | ns/packet | map memory |\n|---:|---:|---:|\n")
		for _, s := range r.Scale {
			fmt.Fprintf(&b, "| %d | %.1f | %.1f MiB |\n", s.Bindings, s.NsPerPkt, s.MapBytes/(1<<20))
		}
		b.WriteString("\n")
	}
	if len(r.InProgram) > 0 {
		b.WriteString("Time inside the program per packet (in-program harness, XDP: each run rebuilds its frame, the rebuild subtracted; session tables sized 2x the sessions; `go test -bench InProgram ./dataplane`):\n\n| path | live sessions | flows taken | ns/packet | session tables per live session | per session of capacity |\n|---|---:|---|---:|---:|---:|\n")
		for _, c := range r.InProgram {
			sessions, bytes, capacityBytes := "", "", ""
			if c.Sessions > 0 {
				sessions = fmt.Sprintf("%d", c.Sessions)
			}
			if c.SessionBytes > 0 {
				bytes = fmt.Sprintf("%.0f B", c.SessionBytes)
			}
			if c.CapacityBytes > 0 {
				capacityBytes = fmt.Sprintf("%.0f B", c.CapacityBytes)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %s | %s |\n", c.Path, sessions, c.Order, c.NsPerPkt, bytes, capacityBytes)
		}
		b.WriteString("\n")
	}
	if c := r.Control; c != nil {
		b.WriteString("Control plane (eipd's store, model, reconciler, API server and real BPF maps in one process):\n\n| figure | value |\n|---|---:|\n")
		fmt.Fprintf(&b, "| associations already in the store and the maps while the API is measured | %d |\n", c.ExistingAssociations)
		fmt.Fprintf(&b, "| associations per second through the API (%d, each signed, committed and in the map before the reply) | %.0f |\n", c.APIAssociations, c.APIAssocPerSec)
		fmt.Fprintf(&b, "| writes per second from %d concurrent signed clients (each reply meaning the map carries it; median of %d rounds of %d writes; slowest-fastest) | %.0f (%.0f-%.0f) |\n",
			c.ConcurrentClients, c.ConcurrentRounds, c.ConcurrentWrites, c.APIWritesPerSecConcurr, c.APIWritesPerSecConcurrRange[0], c.APIWritesPerSecConcurrRange[1])
		fmt.Fprintf(&b, "| API call to the binding in the dataplane, p50 / p99 | %.2f / %.2f ms |\n", c.APIToDataplaneP50Ms, c.APIToDataplaneP99Ms)
		fmt.Fprintf(&b, "| bindings per second through the reconciler alone (%d) | %.0f |\n", c.ReconcilerBindings, c.ReconcilerPerSec)
		fmt.Fprintf(&b, "| state file open with %d associations (checked, EIP indexes rebuilt from the records) | %.0f ms |\n", c.ReconcilerBindings, c.StartStoreOpenMs)
		fmt.Fprintf(&b, "| dataplane open over the pinned maps of %d associations (a restart, before its reconcile; maps only; median of the restarts) | %.0f ms |\n", c.ReconcilerBindings, c.StartOpenMs)
		fmt.Fprintf(&b, "| verifying and loading the four NAT programs (XDP and TC, both roles: Attach loads its hook's on first use; median) | %.0f ms |\n", c.StartProgramsMs)
		fmt.Fprintf(&b, "| reconcile at start with %d associations, maps already matching (median of %d restarts; fastest-slowest) | %.0f ms (%.0f-%.0f) |\n",
			c.ReconcilerBindings, startRestarts, c.StartReconcileMs, c.StartReconcileRangeMs[0], c.StartReconcileRangeMs[1])
		fmt.Fprintf(&b, "| reconcile at start with %d associations, empty maps | %.0f ms |\n", c.ReconcilerBindings, c.StartReconcileFullMs)
		if c.ForwardDeletePorts > 0 {
			fmt.Fprintf(&b, "| deleting a forward entry of %d ports over %d live sessions through it | %.0f ms |\n", c.ForwardDeletePorts, c.ForwardDeleteSessions, c.ForwardDeleteMs)
		}
		if e := c.EipdStart; e != nil {
			fmt.Fprintf(&b, "| eipd started over %d associations (state file %.0f MiB), exec to serving, maps empty | %.0f ms |\n",
				e.Associations, float64(e.StateFileBytes)/(1<<20), e.StartMs)
			fmt.Fprintf(&b, "| its resident memory once serving / peak | %.0f / %.0f MiB |\n", float64(e.ResidentBytes)/(1<<20), float64(e.PeakBytes)/(1<<20))
		}
		b.WriteString("\n")
	}
	if c := r.Cluster; c != nil {
		b.WriteString("A cluster's store (etcd, one node, in a namespace on this machine) beside the state file:\n\n")
		if c.Unavailable != "" {
			fmt.Fprintf(&b, "not measured: %s\n\n", c.Unavailable)
			return b.String()
		}
		b.WriteString("| figure | state file (bbolt) | etcd |\n|---|---:|---:|\n")
		fmt.Fprintf(&b, "| AssociateEipAddress, API call to the binding in the dataplane, p50 / p99 (%d writes over %d associations) | %.2f / %.2f ms | %.2f / %.2f ms |\n",
			c.Writes, c.ExistingAssociations, c.BoltP50Ms, c.BoltP99Ms, c.EtcdP50Ms, c.EtcdP99Ms)
		fmt.Fprintf(&b, "| the same write carried by a second gateway's dataplane (it watches etcd), p50 / p99 after the call | - | %.2f / %.2f ms |\n\n",
			c.PropagationP50Ms, c.PropagationP99Ms)
	}
	return b.String()
}

func ratioCell(s stat) string {
	if s.Median == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx (%.2f-%.2f)", s.Median, s.Q1, s.Q3)
}

func floats(xs []float64) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(parts, ", ")
}

// write puts the JSON, the markdown and the charts in dir.
func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if r.Rates != nil {
		if err := writeRatesChart(filepath.Join(dir, "rates.png"), r.Rates.Cases); err != nil {
			return err
		}
	}
	if len(r.Scale) > 0 || len(r.SessionScale) > 0 {
		if err := r.writeScaleChart(filepath.Join(dir, "scale.png")); err != nil {
			return err
		}
	}
	return nil
}

const (
	readmeBegin = "<!-- latest results: written by the benchmark -->"
	readmeEnd   = "<!-- end of latest results -->"
)

// updateReadme replaces the results section of bench/README.md.
func (r *report) updateReadme(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	i, j := bytes.Index(b, []byte(readmeBegin)), bytes.Index(b, []byte(readmeEnd))
	if i < 0 || j < i {
		return fmt.Errorf("%s has no results markers", path)
	}
	var out bytes.Buffer
	out.Write(b[:i+len(readmeBegin)])
	out.WriteString("\n" + r.markdown())
	out.Write(b[j:])
	return os.WriteFile(path, out.Bytes(), 0o644)
}

// writeScaleChart draws what state costs as it grows: the inbound 1:1 hit against the
// number of bindings, the established SNAT packet against live sessions (beside the
// 1:1 path measured the same way), and the session tables' bytes per live session.
func (r *report) writeScaleChart(path string) error {
	var plots []*plot.Plot
	if len(r.Scale) > 0 {
		var pts plotter.XYs
		for _, s := range r.Scale {
			pts = append(pts, plotter.XY{X: float64(s.Bindings), Y: s.NsPerPkt})
		}
		p, err := linePlot("Inbound 1:1 hit at XDP as bindings grow", "bindings", "ns/packet",
			[]scaleSeries{{name: "eipgw 1:1 inbound", pts: pts, color: colEipgw}})
		if err != nil {
			return err
		}
		plots = append(plots, p)
	}
	if len(r.SessionScale) > 0 {
		var cost, base, mem plotter.XYs
		for _, s := range r.SessionScale {
			x := float64(s.Sessions)
			cost = append(cost, plotter.XY{X: x, Y: s.NsPerPkt})
			base = append(base, plotter.XY{X: x, Y: s.OneToOneNs})
			mem = append(mem, plotter.XY{X: x, Y: s.SessionMaps / x})
		}
		p, err := linePlot("Established SNAT at XDP as sessions grow (in the program, random flows)", "live sessions", "ns/packet",
			[]scaleSeries{{name: "eipgw SNAT, established", pts: cost, color: colEipgw},
				{name: "eipgw 1:1 outbound, same method", pts: base, color: colKernel}})
		if err != nil {
			return err
		}
		m, err := linePlot("Session tables per live session (sized 2x)", "live sessions", "bytes",
			[]scaleSeries{{name: "eipgw session tables", pts: mem, color: colEipgw}})
		if err != nil {
			return err
		}
		plots = append(plots, p, m)
	}
	return savePlots(path, 3*vg.Inch, plots...)
}
