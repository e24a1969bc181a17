package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/internal/progrun"
	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"golang.org/x/sys/unix"
)

// The session table's concurrency and its defences, through the packet path: two CPUs
// opening the same flows, sessions removed while packets read them, and a flood of
// tuples chosen to share one probe window.

// runOn runs frames through prog pinned to cpu, inside the lab, and returns each
// verdict and output frame. With start, it waits for start to close before the first.
func runOn(l *lab, prog *ebpf.Program, cpu int, ingress uint32, frames [][]byte, ready *sync.WaitGroup,
	start <-chan struct{}) ([]uint32, [][]byte, error) {
	verdicts := make([]uint32, len(frames))
	outs := make([][]byte, len(frames))
	err := l.host.Do(func() error {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return err
		}
		opts := make([]*ebpf.RunOptions, len(frames))
		for i, fr := range frames {
			ctx, err := progrun.XDPContext(l.types, ingress, len(fr))
			if err != nil {
				return err
			}
			opts[i] = &ebpf.RunOptions{Data: fr, DataOut: make([]byte, len(fr)+512), Context: ctx}
		}
		if ready != nil {
			ready.Done()
			<-start
		}
		for i, o := range opts {
			var err error
			if verdicts[i], err = prog.Run(o); err != nil {
				return err
			}
			outs[i] = o.DataOut
		}
		return nil
	})
	return verdicts, outs, err
}

// raceOnTwoCPUs runs frames[0] on CPU 0 and frames[1] on CPU 1 at once.
func raceOnTwoCPUs(t *testing.T, l *lab, prog *ebpf.Program, ingress uint32, frames [2][][]byte) (verdicts [2][]uint32, outs [2][][]byte) {
	t.Helper()
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	var wg, ready sync.WaitGroup
	var errs [2]error
	start := make(chan struct{})
	for cpu := range 2 {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			verdicts[cpu], outs[cpu], errs[cpu] = runOn(l, prog, cpu, ingress, frames[cpu], &ready, start)
		}()
	}
	// Both CPUs start together, so that they reach each new flow at about the same time.
	ready.Wait()
	close(start)
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	return verdicts, outs
}

// udpSourcePort is the UDP source port of a frame.
func udpSourcePort(t *testing.T, frame []byte) uint16 {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
	if !ok {
		t.Fatalf("no UDP in %x", frame)
	}
	return uint16(u.SrcPort)
}

// assertTableEmpty checks that no slot of the session table holds anything, busy or
// tentative records included.
func assertTableEmpty(t *testing.T, l *lab) {
	t.Helper()
	n := 0
	must(t, l.dp.eachBucket(func(b natSessionBucket) {
		for _, r := range b.Records {
			if recordKind(r) != natRecordKindRECORD_EMPTY && n == 0 {
				t.Errorf("the session table still holds %+v", r)
				n++
			}
		}
	}))
}

// TestSessionTableSameFlowRace: two CPUs open the same flows at the same instant.
// Every flow ends with at most one session; a packet is either translated to its
// flow's surviving session or refused as contended (counted), never sent from a
// mapping that did not stay; no port or quota share leaks.
func TestSessionTableSameFlowRace(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	prog := l.program(t, RoleVPC, HookXDP)
	const flows = 5000
	frames := make([][]byte, flows)
	for i := range frames {
		frames[i] = f.fromInside(natVM1, labInet, udpDgram(uint16(30000+i), 53))
	}
	before := l.snapshot(t)
	verdicts, outs := raceOnTwoCPUs(t, l, prog, uint32(l.vpc.Index), [2][][]byte{frames, frames})

	external := map[uint16]netip.AddrPort{} // inside port -> its session's external endpoint
	for _, s := range mustSessions(t, l) {
		if _, dup := external[s.Inside.Port()]; dup {
			t.Fatalf("flow from port %d has two sessions", s.Inside.Port())
		}
		external[s.Inside.Port()] = s.External
	}
	refused := uint64(0)
	for cpu := range 2 {
		for i, v := range verdicts[cpu] {
			port := uint16(30000 + i)
			switch v {
			case hookVerdict(HookXDP, verdictRedirect):
				ext, ok := external[port]
				if !ok {
					t.Fatalf("CPU %d sent flow %d out, but it has no session", cpu, port)
				}
				if got := udpSourcePort(t, outs[cpu][i]); got != ext.Port() {
					t.Fatalf("CPU %d sent flow %d from port %d, its session has %v", cpu, port, got, ext)
				}
			case hookVerdict(HookXDP, verdictDrop):
				refused++
			default:
				t.Fatalf("CPU %d flow %d: verdict %d", cpu, port, v)
			}
		}
	}
	after := l.snapshot(t)
	if got := after.reasons[ReasonDropNatContended] - before.reasons[ReasonDropNatContended]; got != refused {
		t.Errorf("%d packets refused, %d counted as contended", refused, got)
	}
	t.Logf("%d flows, %d sessions, %d packets refused as contended", flows, len(external), refused)
	// A flow both CPUs were refused on has no session; every other one has its one.
	if len(external) < flows-int(refused) {
		t.Errorf("%d sessions for %d flows with %d refusals", len(external), flows, refused)
	}
	n, err := l.dp.portsInUse()
	must(t, err)
	if n != len(external) {
		t.Errorf("%d ports in use for %d sessions", n, len(external))
	}
	us, err := l.dp.SourceUsages()
	must(t, err)
	for _, u := range us {
		if u.Source == natVM1 && (int(u.Sessions) != len(external) || int(u.Ports) != len(external)) {
			t.Errorf("quota counts %d sessions and %d ports for %d sessions", u.Sessions, u.Ports, len(external))
		}
	}
	l.purgeAll(t)
	assertTableEmpty(t, l)
}

// TestSessionTableExpiryUnderReaders: sessions are purged while another CPU translates
// their packets. Each packet is translated or refused with a counted reason, and once
// the traffic stops and the last purge ran, nothing is left: no record (busy or
// tentative ones included), mapping, port or quota share.
func TestSessionTableExpiryUnderReaders(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	l := newNatLab(t)
	f := newNatFrames(t, l)
	prog := l.program(t, RoleVPC, HookXDP)
	const flows, rounds = 200, 200
	var frames [][]byte
	for range rounds {
		for i := range flows {
			frames = append(frames, f.fromInside(natVM1, labInet, udpDgram(uint16(31000+i), 53)))
		}
	}
	before := l.snapshot(t)
	done := make(chan struct{})
	purgeErr := make(chan error, 1)
	purging := make(chan struct{})
	purged, purgedSessions := 0, 0
	go func() {
		purges := 0
		for {
			if purges == 1 {
				close(purging)
			}
			select {
			case <-done:
				purged = purges
				purgeErr <- nil
				return
			default:
			}
			if purges >= 10000 {
				purged = purges
				purgeErr <- nil
				return
			}
			n, err := l.dp.PurgeSessions(func(Session) bool { return true })
			if err != nil {
				purgeErr <- err
				return
			}
			purges++
			purgedSessions += n
		}
	}()
	<-purging
	verdicts, outs, err := runOn(l, prog, 0, uint32(l.vpc.Index), frames, nil, nil)
	close(done)
	must(t, err)
	must(t, <-purgeErr)
	dropped := uint64(0)
	for i, v := range verdicts {
		switch v {
		case hookVerdict(HookXDP, verdictRedirect): // translated: no ICMP refusal
			if p := udpSourcePort(t, outs[i]); p < 1024 {
				t.Fatalf("packet %d sent from port %d", i, p)
			}
		case hookVerdict(HookXDP, verdictDrop):
			dropped++
		default:
			t.Fatalf("packet %d: verdict %d", i, v)
		}
	}
	after := l.snapshot(t)
	counted := uint64(0)
	for r := range ReasonMax {
		if r.IsDrop() {
			counted += after.reasons[r] - before.reasons[r]
		}
	}
	if counted != dropped {
		t.Errorf("%d packets dropped, %d drops counted", dropped, counted)
	}
	t.Logf("%d packets, %d dropped (contended or mapping expiring); %d purges removed %d sessions meanwhile",
		len(frames), dropped, purged, purgedSessions)
	if purgedSessions == 0 {
		t.Errorf("no session was purged while the packets ran")
	}
	l.purgeAll(t)
	assertTableEmpty(t, l)
}

// recordHash is recordKeyHash over addresses and host-order ports, for the test to
// choose colliding tuples as an attacker who knew the seed would.
func recordHash(seed uint32, addrA, addrB netip.Addr, portA, portB uint16, proto, kind uint8) uint32 {
	a4, b4 := addrA.As4(), addrB.As4()
	return recordKeyHash(seed, natSessionRecord{AddrA: binary.NativeEndian.Uint32(a4[:]), AddrB: binary.NativeEndian.Uint32(b4[:]),
		PortA: htons(portA), PortB: htons(portB), Protocol: proto}, natRecordKind(kind))
}

// windowHomes is where each of a key's windows starts.
func windowHomes(hash, buckets uint32) [sessionWindows]uint32 {
	var homes [sessionWindows]uint32
	for w := range homes {
		homes[w] = recordHome(hash, buckets)
		hash = nextWindowHash(hash)
	}
	return homes
}

// TestSessionTableHashFlood: flows chosen to fill every probe window of one more flow
// under a known seed get that one refused as a full table (live flows are never
// evicted); the dataplane's own secret seed spreads the same flows, and all open.
func TestSessionTableHashFlood(t *testing.T) {
	l := newNatLabWith(t, Config{MaxBindings: 1024, MaxSessions: 4096})
	f := newNatFrames(t, l)
	var cfg natNatConfig
	must(t, l.dp.objs.NatSettings.Lookup(uint32(0), &cfg))
	secret := cfg.SessionSeed
	known := secret ^ 0x5bd1e995 // a seed the attacker is assumed to know
	const window = 4 * 2         // SESSION_PROBE_BUCKETS buckets of two records
	// The windows of each inside port's outbound record under the known seed, the
	// ports by first window; then a target port each of whose windows has enough
	// other ports starting there to fill it.
	homes := map[uint16][3]uint32{}
	byFirst := map[uint32][]uint16{}
	for p := 1024; p < 65536; p++ {
		h := recordHash(known, natVM1, labInet, uint16(p), 53, ProtoUDP, uint8(natRecordKindRECORD_OUTBOUND))
		homes[uint16(p)] = windowHomes(h, cfg.SessionBuckets)
		byFirst[homes[uint16(p)][0]] = append(byFirst[homes[uint16(p)][0]], uint16(p))
	}
	apart := func(a, b uint32) bool { // windows that share no bucket
		d := (a - b + cfg.SessionBuckets) % cfg.SessionBuckets
		return d >= 4 && d <= cfg.SessionBuckets-4
	}
	var target uint16
	var fillers []uint16
	for p := uint16(1024); p != 0 && target == 0; p++ {
		hs := homes[p]
		if !apart(hs[0], hs[1]) || !apart(hs[1], hs[2]) || !apart(hs[0], hs[2]) {
			continue
		}
		var fill []uint16
		for _, h := range hs {
			n := 0
			for _, q := range byFirst[h] {
				if q != p && n < window {
					fill = append(fill, q)
					n++
				}
			}
			if n < window {
				fill = nil
				break
			}
		}
		if fill != nil {
			target, fillers = p, fill
		}
	}
	if target == 0 {
		t.Fatal("no port has three crowded windows")
	}
	hook := HookXDP
	redirect := hookVerdict(hook, verdictRedirect)
	setSeed := func(seed uint32) {
		t.Helper()
		var v natNatConfig
		must(t, l.dp.objs.NatSettings.Lookup(uint32(0), &v))
		v.SessionSeed = seed
		must(t, l.dp.objs.NatSettings.Put(uint32(0), v))
	}
	t.Run("known seed", func(t *testing.T) {
		setSeed(known)
		t.Cleanup(func() { l.purgeAll(t); setSeed(secret) })
		for i, p := range fillers {
			l.check(t, hook, natStep{name: fmt.Sprintf("filler %d", i), role: RoleVPC,
				in:  f.fromInside(natVM1, labInet, udpDgram(p, 53)),
				out: f.toInet(natEIP1, labInet, udpDgram(p, 53)), verdict: redirect})
		}
		in := f.fromInside(natVM1, labInet, udpDgram(target, 53))
		l.check(t, hook, natStep{name: "all its windows full", role: RoleVPC, in: in, eips: noCount,
			out: f.refusal(in), verdict: redirect, reasons: map[Reason]uint64{ReasonDropNatTableFull: 1}})
		if n := len(mustSessions(t, l)); n != len(fillers) {
			t.Errorf("%d sessions, want %d: a live one was evicted or the refused one opened", n, len(fillers))
		}
	})
	t.Run("secret seed", func(t *testing.T) {
		t.Cleanup(func() { l.purgeAll(t) })
		for i, p := range append(fillers, target) {
			l.check(t, hook, natStep{name: fmt.Sprintf("flow %d", i), role: RoleVPC,
				in:  f.fromInside(natVM1, labInet, udpDgram(p, 53)),
				out: f.toInet(natEIP1, labInet, udpDgram(p, 53)), verdict: redirect})
		}
	})
}

// skipCounts sums the session table's per-window skip counts (session_overflows).
func skipCounts(t *testing.T, l *lab) uint64 {
	t.Helper()
	var sum uint64
	var k, v uint32
	it := l.dp.objs.SessionOverflows.Iterate()
	for it.Next(&k, &v) {
		sum += uint64(v)
	}
	must(t, it.Err())
	return sum
}

// TestSessionTableSkippedWindow: under a known seed, sessions whose reply records all
// start in one window fill it, and the next one's reply record goes to its second
// window. Its replies are translated there, also after a session of the full window
// has gone (a free slot in the first window does not end the search, the count of
// records that skipped it says to go on); once every session has gone, no skip is
// left counted, and the emptied windows take new sessions again.
func TestSessionTableSkippedWindow(t *testing.T) {
	l := newNatLabWith(t, Config{MaxBindings: 1024, MaxSessions: 4096})
	f := newNatFrames(t, l)
	var cfg natNatConfig
	must(t, l.dp.objs.NatSettings.Lookup(uint32(0), &cfg))
	secret := cfg.SessionSeed
	known := secret ^ 0x2545f491
	setSeed := func(seed uint32) {
		t.Helper()
		var v natNatConfig
		must(t, l.dp.objs.NatSettings.Lookup(uint32(0), &v))
		v.SessionSeed = seed
		must(t, l.dp.objs.NatSettings.Put(uint32(0), v))
	}
	setSeed(known)
	t.Cleanup(func() { l.purgeAll(t); setSeed(secret) })

	// The reply record of the session of inside port p (its port kept on the EIP):
	// the internet's tuple towards natEIP1.
	replyHome := func(p uint16) uint32 {
		h := recordHash(known, labInet, natEIP1, 53, p, ProtoUDP, uint8(natRecordKindRECORD_INBOUND))
		return windowHomes(h, cfg.SessionBuckets)[0]
	}
	// Whether a record homed at other can take a slot of the window from h: its own
	// window overlaps that one.
	overlaps := func(other, h uint32) bool {
		d := (other + cfg.SessionBuckets - h) % cfg.SessionBuckets
		return d < sessionProbeBuckets || d > cfg.SessionBuckets-sessionProbeBuckets
	}
	const window = 4 * 2 // SESSION_PROBE_BUCKETS buckets of two records
	byHome := map[uint32][]uint16{}
	var ports []uint16
	for p := 1024; p < 65536 && len(ports) == 0; p++ {
		h := replyHome(uint16(p))
		// A session's two other records (outbound, its mapping) must not fill the
		// reply window first: the seed is drawn each run, so without this check one
		// run in tens counted a skip before the eighth reply record.
		out := recordHash(known, natVM1, labInet, uint16(p), 53, ProtoUDP, uint8(natRecordKindRECORD_OUTBOUND))
		mapping := recordHash(known, natVM1, netip.IPv4Unspecified(), uint16(p), 0, ProtoUDP, uint8(natRecordKindRECORD_MAPPING))
		if overlaps(windowHomes(out, cfg.SessionBuckets)[0], h) || overlaps(windowHomes(mapping, cfg.SessionBuckets)[0], h) {
			continue
		}
		byHome[h] = append(byHome[h], uint16(p))
		if len(byHome[h]) == window+2 {
			ports = byHome[h]
		}
	}
	if ports == nil {
		t.Fatal("no window is the first of ten reply records")
	}
	fillers, target, later := ports[:window], ports[window], ports[window+1]
	hook := HookXDP
	redirect := hookVerdict(hook, verdictRedirect)
	open := func(name string, p uint16) {
		t.Helper()
		l.check(t, hook, natStep{name: name, role: RoleVPC, in: f.fromInside(natVM1, labInet, udpDgram(p, 53)),
			out: f.toInet(natEIP1, labInet, udpDgram(p, 53)), verdict: redirect})
	}
	reply := func(name string, p uint16) {
		t.Helper()
		l.check(t, hook, natStep{name: name, role: RoleUplink, in: f.fromInet(labInet, natEIP1, udpDgram(53, p)),
			out: f.toInside(labInet, natVM1, udpDgram(53, p)), verdict: redirect})
	}
	for i, p := range fillers {
		open(fmt.Sprintf("filler %d", i), p)
	}
	if n := skipCounts(t, l); n != 0 {
		t.Fatalf("%d skips counted before any window was full", n)
	}
	open("the session after the window filled", target)
	if n := skipCounts(t, l); n == 0 {
		t.Fatal("the reply record that skipped a full window was not counted")
	}
	reply("a reply to it", target)

	gone := fillers[0]
	if _, err := l.dp.PurgeSessions(func(s Session) bool { return s.Inside.Port() == gone }); err != nil {
		t.Fatal(err)
	}
	reply("a reply to it after a session of the full window went", target)
	open("a new session, in the freed slot", later)
	reply("a reply to the new session", later)
	reply("a reply to the one in the second window still", target)

	l.purgeAll(t)
	if n := skipCounts(t, l); n != 0 {
		t.Errorf("%d skips still counted with no session left", n)
	}
	for i, p := range fillers[1:] {
		open(fmt.Sprintf("again: session %d", i), p)
		reply(fmt.Sprintf("again: reply %d", i), p)
	}
}
