package dataplane

import (
	"fmt"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/eipgw/eipgw/internal/lineprofile"
)

// BenchmarkLineProfile says where a packet's time goes in the program, by source
// line (internal/lineprofile), while the harness runs the path. Established
// packets at random flows; new flows opened in order into a table every slot of
// which has been used (new-churned), purged and opened again until a second of them
// has run. A developer's tool, for the cost of a path rather than its speed:
//
//	sudo go test -run '^$' -bench LineProfile ./dataplane
func BenchmarkLineProfile(b *testing.B) {
	if _, err := exec.LookPath("perf"); err != nil {
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
					profileLines(b, prog, func() float64 {
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
				profileLines(b, prog, func() float64 {
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
func profileLines(b *testing.B, prog *ebpf.Program, run func() float64) {
	rec, err := lineprofile.Start(b.TempDir(), "")
	must(b, err)
	ns := run()
	addrs, err := rec.Stop()
	must(b, err)
	table, err := lineprofile.ForProgram(prog)
	must(b, err)
	profile := table.Count(addrs)
	if profile.Total == 0 {
		b.Fatal("no sample fell in the program")
	}
	b.ReportMetric(ns, "ns/packet")
	b.Logf("%d samples in the program, %.0f ns a packet; the lines with the most:", profile.Total, ns)
	for _, line := range profile.Top(8) { // a benchmark's log keeps ten lines
		b.Log(line)
	}
}
