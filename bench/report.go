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
	NatCosts []natPathCost           `json:"nat_program_cost"`
	// SessionScale is the established SNAT cost and session-table memory as live
	// sessions grow.
	SessionScale []sessionScalePoint `json:"session_scale"`
	Control      *controlReport      `json:"control_plane,omitempty"`
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
	if len(r.NatCosts) > 0 {
		b.WriteString("NAT gateway paths at XDP (BPF_PROG_TEST_RUN, one packet per run, so each figure includes the run's setup; one-to-one-udp is the 1:1 path measured the same way):\n\n| path | ns/packet |\n|---|---:|\n")
		for _, c := range r.NatCosts {
			fmt.Fprintf(&b, "| %s | %.0f |\n", c.Path, c.NsPerPkt)
		}
		b.WriteString("\n")
	}
	if len(r.SessionScale) > 0 {
		b.WriteString("Session scale (established SNAT UDP at XDP, each packet a random live session; one packet per run; session tables sized to 1.125x the sessions):\n\n| live sessions | ns/packet | 1:1 baseline, same method | session-table memory |\n|---:|---:|---:|---:|\n")
		for _, s := range r.SessionScale {
			fmt.Fprintf(&b, "| %d | %.0f | %.0f | %.1f MiB |\n", s.Sessions, s.NsPerPkt, s.OneToOneNs, s.SessionMaps/(1<<20))
		}
		b.WriteString("\n")
	}
	if c := r.Control; c != nil {
		b.WriteString("Control plane (eipd's store, model, reconciler, API server and real BPF maps in one process):\n\n| figure | value |\n|---|---:|\n")
		fmt.Fprintf(&b, "| associations per second through the API (%d, each signed, committed and in the map before the reply) | %.0f |\n", c.APIAssociations, c.APIAssocPerSec)
		fmt.Fprintf(&b, "| API call to the binding in the dataplane, p50 / p99 | %.2f / %.2f ms |\n", c.APIToDataplaneP50Ms, c.APIToDataplaneP99Ms)
		fmt.Fprintf(&b, "| bindings per second through the reconciler alone (%d) | %.0f |\n", c.ReconcilerBindings, c.ReconcilerPerSec)
		fmt.Fprintf(&b, "| reconcile at start with %d associations, maps already matching | %.0f ms |\n", c.ReconcilerBindings, c.StartReconcileMs)
		fmt.Fprintf(&b, "| reconcile at start with %d associations, empty maps | %.0f ms |\n\n", c.ReconcilerBindings, c.StartReconcileFullMs)
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
		var rates, ratios []bar
		for _, c := range r.Rates.Cases {
			if c.Unavailable != "" {
				continue
			}
			hl := strings.HasPrefix(c.Name, "eipgw")
			rates = append(rates, bar{Label: c.Name, Value: c.Mpps.Median, Low: c.Mpps.Q1, High: c.Mpps.Q3, Highlight: hl})
			ratios = append(ratios, bar{Label: c.Name, Value: c.VsForwarding.Median, Low: c.VsForwarding.Q1, High: c.VsForwarding.Q3, Highlight: hl})
		}
		if err := renderPanels(filepath.Join(dir, "rates.png"), []panel{
			{Title: "Packets per second through the gateway (median, IQR whiskers), 64-byte UDP", Unit: "Mpps", Bars: rates},
			{Title: "Ratio to kernel IP forwarding in the same round (median, IQR)", Unit: "x", Bars: ratios},
		}); err != nil {
			return err
		}
	}
	if len(r.Scale) > 0 {
		var cost, mem []bar
		for _, s := range r.Scale {
			label := fmt.Sprintf("%d bindings", s.Bindings)
			cost = append(cost, bar{Label: label, Value: s.NsPerPkt, Highlight: true})
			mem = append(mem, bar{Label: label, Value: s.MapBytes / (1 << 20), Highlight: true})
		}
		panels := []panel{
			{Title: "Inbound hit cost at XDP as bindings grow", Unit: "ns/packet", Bars: cost},
			{Title: "Binding and counter map memory at that capacity", Unit: "MiB", Bars: mem},
		}
		if len(r.SessionScale) > 0 {
			var sessCost, sessMem []bar
			for _, s := range r.SessionScale {
				label := fmt.Sprintf("%d sessions", s.Sessions)
				sessCost = append(sessCost, bar{Label: label, Value: s.NsPerPkt, Highlight: true},
					bar{Label: label + " (1:1)", Value: s.OneToOneNs})
				sessMem = append(sessMem, bar{Label: label, Value: s.SessionMaps / (1 << 20), Highlight: true})
			}
			panels = append(panels,
				panel{Title: "Established SNAT cost at XDP as sessions grow (one packet per run; grey: the 1:1 path the same way)", Unit: "ns/packet", Bars: sessCost},
				panel{Title: "Session-table memory at that capacity", Unit: "MiB", Bars: sessMem})
		}
		if err := renderPanels(filepath.Join(dir, "scale.png"), panels); err != nil {
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
