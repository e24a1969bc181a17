package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestNatGatewayPortBitmaps: external ports come from the EIP's bitmap. A range over
// several words, both ends mid-word, is used to its last port, each port once and none
// outside it; the usage report counts them; a search that draws its words finds ports
// too; a NAT EIP set again starts with every port free.
func TestNatGatewayPortBitmaps(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	prog := l.program(t, RoleVPC, HookXDP)
	redirect := hookVerdict(HookXDP, verdictRedirect)
	const portMin, portMax = 20030, 20229 // 200 ports in words 312 to 316
	cfg := DefaultNatConfig()
	cfg.ICMPSource = gwVPCAddr
	cfg.PortMin, cfg.PortMax = portMin, portMax
	must(t, l.dp.SetNatConfig(cfg))
	t.Cleanup(func() {
		l.purgeAll(t)
		c := DefaultNatConfig()
		c.ICMPSource = gwVPCAddr
		must(t, l.dp.SetNatConfig(c))
	})

	// Inside ports outside the range: none is kept, every one is searched for.
	open := func(n int, firstInside uint16) {
		t.Helper()
		for i := 0; i < n; i++ {
			frame := f.fromInside(natVM1, labInet, udpDgram(firstInside+uint16(i), 53))
			if ret, _ := l.run(t, prog, HookXDP, l.ingress(RoleVPC), frame); ret != redirect {
				t.Fatalf("flow %d of %d: verdict %d, want a translation", i, n, ret)
			}
		}
	}
	open(portMax-portMin+1, 1000)
	full := f.fromInside(natVM1, labInet, udpDgram(999, 53))
	l.check(t, HookXDP, natStep{name: "one flow more than the range has ports", role: RoleVPC,
		in: full, eips: noCount, out: f.refusal(full), verdict: redirect,
		reasons: map[Reason]uint64{ReasonDropNatPortsExhausted: 1}})
	used := map[uint16]bool{}
	for _, s := range mustSessions(t, l) {
		p := s.External.Port()
		if s.External.Addr() != natEIP1 || p < portMin || p > portMax || used[p] {
			t.Errorf("session %+v: external port outside %d-%d or taken twice", s, portMin, portMax)
		}
		used[p] = true
	}
	if len(used) != portMax-portMin+1 {
		t.Errorf("%d external ports used, want all %d", len(used), portMax-portMin+1)
	}
	us, err := l.dp.PortUsages()
	must(t, err)
	for _, u := range us {
		want := 0
		if u.EIP == natEIP1 {
			want = portMax - portMin + 1
		}
		if u.UDP != want || u.TCP != 0 || u.ICMP != 0 || u.PortRangeCapacity != portMax-portMin+1 {
			t.Errorf("usage %+v, want %d UDP ports of %d", u, want, portMax-portMin+1)
		}
	}
	l.purgeAll(t)
	if n, err := l.dp.portsInUse(); err != nil || n != 0 {
		t.Fatalf("%d ports in use after the purge (%v)", n, err)
	}

	// Five probes cannot walk five words (that takes six): after the internal port, each
	// draws a port and searches its word. A draw fails only in a full word, and with 100
	// of 200 ports taken only the range's partial end words (2 and 6 ports) can be full:
	// four failed draws in a row are at most (8/200)^4, 2.6e-6 a flow. With two probes a
	// flow has one draw, and one refusal in a run is likely (about 8%).
	cfg.MaxPortProbes = 5
	must(t, l.dp.SetNatConfig(cfg))
	open(100, 1000)
	used = map[uint16]bool{}
	for _, s := range mustSessions(t, l) {
		p := s.External.Port()
		if p < portMin || p > portMax || used[p] {
			t.Errorf("session %+v: drawn port outside %d-%d or taken twice", s, portMin, portMax)
		}
		used[p] = true
	}
	if len(used) != 100 {
		t.Errorf("%d drawn ports for 100 flows", len(used))
	}

	// A NAT EIP's block starts empty, whatever an EIP that had it before left: every
	// block no EIP holds is filled before one is taken.
	inUse, err := l.dp.natEIPPortBlocks()
	must(t, err)
	held := map[uint32]bool{}
	for _, b := range inUse {
		held[b] = true
	}
	mem, err := l.dp.objs.PortBitmaps.Memory()
	must(t, err)
	ones := make([]byte, 8*portBlockWords)
	for i := range ones {
		ones[i] = 0xff
	}
	for b := uint32(0); b < l.dp.objs.NatEips.MaxEntries(); b++ {
		if !held[b] {
			_, err := mem.WriteAt(ones, int64(b)*int64(len(ones)))
			must(t, err)
		}
	}
	extra := netip.MustParseAddr("203.0.113.103")
	must(t, l.dp.SetNatEIP(extra))
	t.Cleanup(func() { must(t, l.dp.DeleteNatEIP(extra)) })
	e, err := l.dp.natEIP(extra)
	must(t, err)
	b, err := l.dp.readPortBlock(e.PortBlock)
	must(t, err)
	for i, w := range b {
		if w != 0 {
			t.Fatalf("word %d of a new NAT EIP's block is %#x", i, w)
		}
	}
}

// TestNatGatewaySearchDrawnAhead: a packet likely to open a flow (a SYN) has its port
// search drawn before its lookup, so that the buckets of the port it will try are read
// early. A search drawn ahead for a packet that turned out established is not used
// once the SNAT rule or the port range changed: the next mapping of that endpoint
// comes from the new pool and range. Everything runs on one CPU, whose drawn search is
// the one left over.
func TestNatGatewaySearchDrawnAhead(t *testing.T) {
	l := newNatLab(t)
	f := newNatFrames(t, l)
	prog := l.program(t, RoleVPC, HookXDP)
	redirect := hookVerdict(HookXDP, verdictRedirect)
	t.Cleanup(func() {
		l.purgeAll(t)
		must(t, l.dp.SetSnatRule(SnatRule{Source: natSubnet, Pool: []netip.Addr{natEIP1}}))
	})
	send := func(step string, in, want []byte) {
		t.Helper()
		verdicts, outs, err := runOn(l, prog, 0, uint32(l.vpc.Index), [][]byte{in}, nil, nil)
		must(t, err)
		if verdicts[0] != redirect || !bytes.Equal(outs[0], want) {
			t.Fatalf("%s: verdict %d, frame\n%x\nwant\n%x", step, verdicts[0], outs[0], want)
		}
	}
	syn := f.fromInside(natVM1, labInet, tcpSeg(40000, 80, "S"))
	syn2 := f.fromInside(natVM1, labInet, tcpSeg(40001, 80, "S"))
	// The first SYN opens the session through the search drawn for it (port kept); the
	// second finds it established, its own drawn search left unused.
	send("SYN", syn, f.toInet(natEIP1, labInet, tcpSeg(40000, 80, "S")))
	send("SYN again", syn, f.toInet(natEIP1, labInet, tcpSeg(40000, 80, "S")))
	l.purgeAll(t)
	must(t, l.dp.SetSnatRule(SnatRule{Source: natSubnet, Pool: []netip.Addr{natEIP3}}))
	// Not a SYN: nothing is drawn ahead, and the search left over is for the old pool.
	send("ACK after the rule changed", f.fromInside(natVM1, labInet, tcpSeg(40000, 80, "A")),
		f.toInet(natEIP3, labInet, tcpSeg(40000, 80, "A")))
	if ss := mustSessions(t, l); len(ss) != 1 || ss[0].External != netip.AddrPortFrom(natEIP3, 40000) {
		t.Fatalf("sessions %+v, want one from %s:40000", ss, natEIP3)
	}

	// Nor once the port range changed: the next mapping takes a port of the new range.
	send("SYN from another port", syn2, f.toInet(natEIP3, labInet, tcpSeg(40001, 80, "S")))
	send("SYN again from it", syn2, f.toInet(natEIP3, labInet, tcpSeg(40001, 80, "S")))
	l.purgeAll(t)
	const portMin, portMax = 20000, 20099
	cfg := DefaultNatConfig()
	cfg.ICMPSource = gwVPCAddr
	cfg.PortMin, cfg.PortMax = portMin, portMax
	must(t, l.dp.SetNatConfig(cfg))
	t.Cleanup(func() {
		c := DefaultNatConfig()
		c.ICMPSource = gwVPCAddr
		must(t, l.dp.SetNatConfig(c))
	})
	verdicts, _, err := runOn(l, prog, 0, uint32(l.vpc.Index),
		[][]byte{f.fromInside(natVM1, labInet, tcpSeg(40001, 80, "A"))}, nil, nil)
	must(t, err)
	ss := mustSessions(t, l)
	if verdicts[0] != redirect || len(ss) != 1 || ss[0].External.Addr() != natEIP3 ||
		ss[0].External.Port() < portMin || ss[0].External.Port() > portMax {
		t.Fatalf("after the range changed to %d-%d: verdict %d, sessions %+v", portMin, portMax, verdicts[0], ss)
	}
}
