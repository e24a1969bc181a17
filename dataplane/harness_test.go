package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/desired"
	"golang.org/x/sys/unix"
)

// The in-program harness (bpf/harness.c) times each NAT path inside the kernel: every
// run rebuilds its frame from a template, with the flow picked in order or at random,
// and then runs the NAT; the rebuild's own time, measured alone, is subtracted.
// Unlike a one-packet run (with ~1 us of per-call setup) it runs
// a million packets a call, so what it reports is the path itself.
//
//	sudo go test -run '^$' -bench InProgram ./dataplane          # every path and scale
//	sudo go test -run '^$' -bench 'InProgram/snat' ./dataplane   # a subset
//
// The figures feed bench/README.md ("Where the time goes, in the program").
type harness struct {
	l    *lab
	objs harnessObjects
}

// newHarness loads the harness onto the lab dataplane's own maps.
func newHarness(tb testing.TB, l *lab) *harness {
	tb.Helper()
	spec, err := loadHarness()
	must(tb, err)
	replacements := map[string]*ebpf.Map{}
	for name := range spec.Maps {
		if !pinnedMap(name) || strings.HasPrefix(name, "harness_") {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(l.dp.PinDir(), name), nil)
		if err != nil {
			tb.Fatalf("harness: the dataplane has no map %s: %v", name, err)
		}
		tb.Cleanup(func() { m.Close() })
		spec.Maps[name].MaxEntries = m.MaxEntries() // the dataplane sized it
		replacements[name] = m
	}
	h := &harness{l: l}
	must(tb, spec.LoadAndAssign(&h.objs, &ebpf.CollectionOptions{MapReplacements: replacements}))
	tb.Cleanup(func() { h.objs.Close() })
	return h
}

// cacheNextHops fills the next-hop cache from the lab's tables, as eipd's watcher does.
func (h *harness) cacheNextHops(tb testing.TB) {
	tb.Helper()
	hops, err := ReadNextHops(h.l.host.Netlink(), h.l.dp.hopAddrs())
	must(tb, err)
	must(tb, h.l.dp.SetNextHops(hops))
}

// flowSpread says how a template becomes many flows (bpf/harness.c): addresses
// (source, or destination with varyDst) x ports (source) x remotes (destination port).
type flowSpread struct {
	flows, ports, remotes uint32
	varyDst               bool
}

// use makes frame, spread over s, the template of the next runs, from the first flow.
func (h *harness) use(tb testing.TB, frame []byte, s flowSpread, random bool) []byte {
	tb.Helper()
	padded := append([]byte(nil), frame...)
	for len(padded)%8 != 0 {
		padded = append(padded, 0) // Ethernet padding: past the IP total length
	}
	var t harnessHarnessTemplate
	if len(padded) > len(t.Frame) {
		tb.Fatalf("harness: a %d-byte frame does not fit the template", len(padded))
	}
	padded = h.l.onLoopback(tb, padded)
	t.Len = uint32(len(padded))
	t.Flows, t.Ports, t.Remotes = s.flows, max(s.ports, 1), max(s.remotes, 1)
	if random {
		t.Random = 1
	}
	if s.varyDst {
		t.VaryDst = 1
	}
	copy(t.Frame[:], padded)
	must(tb, h.objs.HarnessTemplates.Put(uint32(0), &t))
	cpus, err := ebpf.PossibleCPU()
	must(tb, err)
	must(tb, h.objs.HarnessCursor.Put(uint32(0), make([]uint32, cpus)))
	return padded
}

// time runs prog over frame repeat times in one call and returns the mean time per
// run, checking the last run's verdict.
func (h *harness) time(tb testing.TB, prog *ebpf.Program, frame []byte, repeat int, want uint32) time.Duration {
	tb.Helper()
	var ret uint32
	var d time.Duration
	err := h.l.host.Do(func() error {
		// The in-order flow cursor is per CPU, and the kernel may move the thread to
		// another CPU between runs of one call (it reschedules when it must): the
		// runs after a move would take the other CPU's flows, some twice and some
		// never. Held on one CPU, every flow is taken. Do's thread ends with f.
		var cpus unix.CPUSet
		if err := unix.SchedGetaffinity(0, &cpus); err != nil {
			return fmt.Errorf("harness: read the CPU affinity: %w", err)
		}
		for cpu := 0; cpu < 1024; cpu++ {
			if cpus.IsSet(cpu) {
				var one unix.CPUSet
				one.Set(cpu)
				if err := unix.SchedSetaffinity(0, &one); err != nil {
					return fmt.Errorf("harness: hold the thread on CPU %d: %w", cpu, err)
				}
				break
			}
		}
		var err error
		ret, d, err = prog.Benchmark(frame, repeat, nil)
		return err
	})
	must(tb, err)
	if ret != want {
		tb.Fatalf("harness: verdict %d, want %d", ret, want)
	}
	return d
}

// cost is the path's time per packet: the median over rounds of (path - rebuild),
// each round timing both on repeat runs. Every run must be translated: any reason
// counted on the way fails the benchmark, as it would be measuring another path.
func (h *harness) cost(tb testing.TB, prog *ebpf.Program, frame []byte, repeat int) float64 {
	tb.Helper()
	const rounds = 5
	before := h.l.snapshot(tb)
	var diffs []float64
	for range rounds {
		rebuild := h.time(tb, h.objs.HarnessRebuild, frame, repeat, xdpDrop)
		path := h.time(tb, prog, frame, repeat, xdpRedirect)
		diffs = append(diffs, float64(path-rebuild))
	}
	if moved := diffReasons(before, h.l.snapshot(tb)); len(moved) != 0 {
		tb.Fatalf("harness: packets left the measured path: %v", moved)
	}
	slices.Sort(diffs)
	return diffs[len(diffs)/2]
}

const (
	xdpDrop     = uint32(1) // XDP_DROP
	xdpRedirect = uint32(4) // XDP_REDIRECT
)

// BenchmarkInProgram reports ns/packet in the program for each path: 1:1 both ways
// over 50 bindings; established SNAT and DNAT at 1k, 12.8k, 100k and 1M sessions,
// flows taken in order and at random; and the new SNAT flow, averaged over opening
// all of a scale's sessions. The session tables are sized 2x the case's sessions, as
// the bench sizes the kernel's conntrack.
func BenchmarkInProgram(b *testing.B) {
	b.Run("one-to-one", func(b *testing.B) {
		l := newLab(b)
		h := newHarness(b, l)
		f := newNatFrames(b, l)
		const bindings = 50
		first, firstEIP := netip.MustParseAddr("10.0.5.0"), netip.MustParseAddr("203.0.113.150")
		priv, eip := first, firstEIP
		for range bindings {
			must(b, l.dp.SetBinding(eip, priv))
			must(b, l.dp.SetSource(Source{Addr: priv, MAC: macRemote}))
			must(b, l.host.Neigh("vpc", priv, net.HardwareAddr{0x02, 0, 0, 0, 0x05, priv.As4()[3]}))
			priv, eip = priv.Next(), eip.Next()
		}
		paths := []struct {
			name   string
			prog   *ebpf.Program
			frame  []byte
			spread flowSpread
		}{
			{"outbound", h.objs.HarnessVpc, f.fromInside(first, labInet, udpDgram(5000, 53)),
				flowSpread{flows: bindings}},
			{"inbound", h.objs.HarnessUplink, f.fromInet(labInet, firstEIP, udpDgram(53, 5000)),
				flowSpread{flows: bindings, varyDst: true}},
		}
		// Then with every binding limited to a bandwidth the runs never reach: the
		// policer's cost beside the same paths without it (issue 16: at most 10 ns).
		h.cacheNextHops(b)
		var limits []desired.Limit
		for e, i := firstEIP, 0; i < bindings; e, i = e.Next(), i+1 {
			limits = append(limits, desired.Limit{EIP: e, Bits: MaxBandwidth})
		}
		must(b, l.dp.SetBandwidths(limits))
		for _, p := range paths {
			for _, random := range []bool{false, true} {
				b.Run(p.name+"-limited/"+order(random), func(b *testing.B) {
					frame := h.use(b, p.frame, p.spread, random)
					b.ReportMetric(h.cost(b, p.prog, frame, max(b.N, 100000)), "ns/packet")
				})
			}
		}
		for i := range limits {
			limits[i].Bits = 0
		}
		must(b, l.dp.SetBandwidths(limits))
		for _, cached := range []bool{true, false} {
			if cached {
				h.cacheNextHops(b)
			} else {
				must(b, l.dp.DisableNextHops())
			}
			for _, p := range paths {
				for _, random := range []bool{false, true} {
					name := p.name + "/" + order(random)
					if !cached {
						name = p.name + "-fib/" + order(random)
					}
					b.Run(name, func(b *testing.B) {
						frame := h.use(b, p.frame, p.spread, random)
						b.ReportMetric(h.cost(b, p.prog, frame, max(b.N, 100000)), "ns/packet")
					})
				}
			}
		}
	})
	b.Run("snat-own-mapping/sessions=50000", func(b *testing.B) { benchOwnMappings(b, 50000) })
	for _, n := range []uint32{1000, 12800, 100000, 1000000} {
		b.Run(fmt.Sprintf("snat/sessions=%d", n), func(b *testing.B) { benchSNAT(b, n) })
		b.Run(fmt.Sprintf("dnat/sessions=%d", n), func(b *testing.B) { benchDNAT(b, n) })
	}
}

func order(random bool) string {
	if random {
		return "random"
	}
	return "in-order"
}

// scaledNatLab is the NAT lab with session tables sized 2x sessions, port bitmaps for
// its own NAT EIPs (three) and one more, and no quotas.
func scaledNatLab(b *testing.B, sessions uint32) (*lab, *harness, natFrames) {
	l := newNatLabWith(b, Config{MaxBindings: 1024, MaxSessions: 2 * sessions, MaxNatEIPs: 4})
	cfg := DefaultNatConfig()
	cfg.MaxSessionsPerSource, cfg.MaxPortsPerSource = 1<<30, 1<<30
	must(b, l.dp.SetNatConfig(cfg))
	h := newHarness(b, l)
	return l, h, newNatFrames(b, l)
}

// open runs every flow of spread once, in order, opening a session each, and returns
// the mean time of a new flow (the rebuild subtracted).
func (h *harness) open(tb testing.TB, prog *ebpf.Program, template []byte, s flowSpread) float64 {
	tb.Helper()
	frame := h.use(tb, template, s, false)
	rebuild := h.time(tb, h.objs.HarnessRebuild, frame, int(s.flows), xdpDrop)
	h.use(tb, template, s, false)
	before := h.l.snapshot(tb)
	opened := h.time(tb, prog, frame, int(s.flows), xdpRedirect)
	if moved := diffReasons(before, h.l.snapshot(tb)); len(moved) != 0 {
		tb.Fatalf("harness: opening %d sessions: %v", s.flows, moved)
	}
	return float64(opened - rebuild)
}

// sessionCase is a scale's established traffic: the program it enters, its frame,
// and how that frame becomes the scale's flows.
type sessionCase struct {
	role     Role
	spread   flowSpread
	template func(natFrames) []byte
}

// snatSessions: instances of affSubnet (registered, pooled over two EIPs with
// affinity) open n sessions, 64 remote ports per mapping, 16 source addresses.
func snatSessions(n uint32) sessionCase {
	const remotes, addrs = 64, 16
	return sessionCase{RoleVPC, flowSpread{flows: n, remotes: remotes, ports: (n + remotes*addrs - 1) / (remotes * addrs)},
		func(f natFrames) []byte { return f.fromInside(affSubnet.Addr(), labInet, udpDgram(1024, 1000)) }}
}

// dnatSessions: n internet endpoints (200 addresses x ports) reach one forward
// entry, each opening a session.
func dnatSessions(n uint32) sessionCase {
	const addrs = 200
	return sessionCase{RoleUplink, flowSpread{flows: n, ports: (n + addrs - 1) / addrs},
		func(f natFrames) []byte { return f.fromInet(labInet, natEIP2, udpDgram(1024, fwdUDPPort)) }}
}

func benchSNAT(b *testing.B, n uint32) { benchSessions(b, n, snatSessions(n)) }

func benchDNAT(b *testing.B, n uint32) { benchSessions(b, n, dnatSessions(n)) }

// openSessions makes a NAT lab sized for n sessions and opens c's n sessions in it
// (next hops cached), returning the program c enters, its frame and the mean time
// of a new flow.
func openSessions(b *testing.B, n uint32, c sessionCase) (*lab, *harness, *ebpf.Program, []byte, float64) {
	l, h, f := scaledNatLab(b, n)
	prog := h.objs.HarnessVpc
	if c.role == RoleUplink {
		prog = h.objs.HarnessUplink
	}
	frame := c.template(f)
	h.cacheNextHops(b)
	return l, h, prog, frame, h.open(b, prog, frame, c.spread)
}

// useEverySlot marks every never-used slot of the session table used and empty, as a
// table is once its gateway has run a while: no never-used slot is left to end a
// search. Only on a table nobody else writes meanwhile.
func useEverySlot(tb testing.TB, d *Dataplane) {
	tb.Helper()
	mem, err := d.objs.SessionTable.Memory()
	must(tb, err)
	chunk := make([]natSessionBucket, 4096)
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&chunk[0])), len(chunk)*int(unsafe.Sizeof(chunk[0])))
	size := int(unsafe.Sizeof(chunk[0]))
	total := int(d.objs.SessionTable.MaxEntries())
	for first := 0; first < total; first += len(chunk) {
		n := min(len(chunk), total-first)
		_, err := mem.ReadAt(raw[:n*size], int64(first*size))
		must(tb, err)
		for i := range chunk[:n] {
			for j := range chunk[i].Records {
				if chunk[i].Records[j].State == 0 {
					chunk[i].Records[j].State = 1 << natRecordStateLayoutRECORD_GEN_SHIFT // empty, generation 1
				}
			}
		}
		_, err = mem.WriteAt(raw[:n*size], int64(first*size))
		must(tb, err)
	}
}

// benchSessions opens n sessions of c, in a NAT lab sized for them, reporting the
// new flow's cost, then the established one's in order and at random, with the
// session tables' bytes per session; then, with every session purged and every slot
// of the table used once, the new flow's cost again (new-churned): what a gateway
// that has run a while pays.
func benchSessions(b *testing.B, n uint32, c sessionCase) {
	l, h, prog, frame, newFlow := openSessions(b, n, c)
	mem, err := l.dp.SessionMemory()
	must(b, err)
	b.Run("new", func(b *testing.B) { b.ReportMetric(newFlow, "ns/packet") })
	for _, random := range []bool{false, true} {
		b.Run("established/"+order(random), func(b *testing.B) {
			padded := h.use(b, frame, c.spread, random)
			b.ReportMetric(h.cost(b, prog, padded, int(max(n, 200000))), "ns/packet")
			b.ReportMetric(float64(mem)/float64(n), "session-bytes/session")
			b.ReportMetric(float64(mem)/float64(l.dp.Capacities().Sessions), "session-bytes/capacity")
		})
	}
	_, err = l.dp.PurgeSessions(func(Session) bool { return true })
	must(b, err)
	useEverySlot(b, l.dp)
	churned := h.open(b, prog, frame, c.spread)
	b.Run("new-churned", func(b *testing.B) { b.ReportMetric(churned, "ns/packet") })
}

// benchOwnMappings opens n SNAT flows, each from an inside endpoint of its own (a new
// mapping, a port taken and three records a flow, as in the bench's new-connection
// case), into a fresh table (new), then again five times into the table purged with
// every slot used (new-churned, the mean).
// ownMappingSessions: snatSessions with one remote, so that every flow opens its own
// mapping, as a client's connections each from a new port do.
func ownMappingSessions(n uint32) sessionCase {
	c := snatSessions(n)
	c.spread = flowSpread{flows: n, remotes: 1, ports: (n + 15) / 16} // 16 source addresses
	return c
}

func benchOwnMappings(b *testing.B, n uint32) {
	c := ownMappingSessions(n)
	l, h, prog, frame, newFlow := openSessions(b, n, c)
	b.Run("new", func(b *testing.B) { b.ReportMetric(newFlow, "ns/packet") })
	const rounds = 5
	var churned float64
	for range rounds {
		_, err := l.dp.PurgeSessions(func(Session) bool { return true })
		must(b, err)
		useEverySlot(b, l.dp)
		churned += h.open(b, prog, frame, c.spread) / rounds
	}
	b.Run("new-churned", func(b *testing.B) { b.ReportMetric(churned, "ns/packet") })
}

// TestHarnessMeasuresTheNamedPath keeps the harness honest in CI: its rebuilt frames
// take the 1:1 path (redirected, nothing counted elsewhere), and an in-order run over
// n flows opens exactly n SNAT sessions.
func TestHarnessMeasuresTheNamedPath(t *testing.T) {
	l := newNatLabWith(t, Config{MaxBindings: 1024, MaxSessions: 4096})
	cfg := DefaultNatConfig()
	cfg.MaxSessionsPerSource, cfg.MaxPortsPerSource = 1<<20, 1<<20
	must(t, l.dp.SetNatConfig(cfg))
	h := newHarness(t, l)
	f := newNatFrames(t, l)
	f.macOfInside[privVM1] = macVM1
	frame := h.use(t, f.fromInside(privVM1, labInet, udpDgram(5000, 53)), flowSpread{flows: 1}, false)
	before := l.snapshot(t)
	h.time(t, h.objs.HarnessVpc, frame, 1000, xdpRedirect)
	after := l.snapshot(t)
	if moved := diffReasons(before, after); len(moved) != 0 {
		t.Fatalf("1:1 runs left the path: %v", moved)
	}
	if got := after.eips[eipVM1].OutPackets - before.eips[eipVM1].OutPackets; got != 1000 {
		t.Fatalf("eipVM1 counted %d outbound packets for 1000 runs", got)
	}

	const n = 1000
	spread := flowSpread{flows: n, remotes: 10, ports: 25} // 4 addresses x 25 ports x 10 remotes
	h.open(t, h.objs.HarnessVpc, f.fromInside(affSubnet.Addr(), labInet, udpDgram(1024, 1000)), spread)
	sessions, err := l.dp.Sessions(func(Session) bool { return true })
	must(t, err)
	if len(sessions) != n {
		t.Fatalf("%d in-order runs opened %d sessions, want %d", n, len(sessions), n)
	}
}

// BenchmarkForwardDelete: a forward entry of 1,000 ports (the lab's UDP port and the
// 999 after it) is deleted while 200,000 sessions are live, all of them through the
// entry's first port: its ports leave the map and every one of those sessions is
// purged, in one walk of the session table. Once, whatever b.N.
func BenchmarkForwardDelete(b *testing.B) {
	const sessions, rangePorts, addrs = 200000, 1000, 200
	l, h, f := scaledNatLab(b, sessions)
	ports := []ExternalPort{{Protocol: ProtoUDP, External: netip.AddrPortFrom(natEIP2, fwdUDPPort)}}
	for p := fwdUDPPort + 1; p < fwdUDPPort+rangePorts; p++ {
		ext := netip.AddrPortFrom(natEIP2, uint16(p))
		must(b, l.dp.SetForwardPort(ForwardPort{Protocol: ProtoUDP, External: ext, Internal: netip.AddrPortFrom(natVM1, 53)}))
		ports = append(ports, ExternalPort{Protocol: ProtoUDP, External: ext})
	}
	h.cacheNextHops(b)
	h.open(b, h.objs.HarnessUplink, f.fromInet(labInet, natEIP2, udpDgram(1024, fwdUDPPort)),
		flowSpread{flows: sessions, ports: sessions / addrs})
	live, err := l.dp.Sessions(nil)
	must(b, err)
	if len(live) != sessions {
		b.Fatalf("%d sessions live, want %d", len(live), sessions)
	}
	start := time.Now()
	must(b, l.dp.DeleteForwardPorts(ports))
	took := time.Since(start)
	if left, err := l.dp.Sessions(nil); err != nil || len(left) != 0 {
		b.Fatalf("after the delete %d sessions are left (%v)", len(left), err)
	}
	b.ReportMetric(float64(took.Microseconds())/1000, "ms/delete")
	b.ReportMetric(rangePorts, "ports")
	b.ReportMetric(sessions, "sessions")
}
