package dataplane

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// BenchmarkPaths reports the per-packet cost of each path through the NAT program,
// measured in the kernel by BPF_PROG_TEST_RUN with repeat (Program.Benchmark), warm
// cache. Live traffic costs more: the frame's cache lines come from another CPU.
//
//	sudo go test -run '^$' -bench Paths ./dataplane
//
// The kernel runs the repeats on one buffer, so each run sees the previous run's
// output. To measure a translation on every run, the benchmark adds the mirror
// binding of each translated address (so a translated frame translates back), starts
// frames at TTL 255, and repeats at most 200 times per call, before TTL could expire.
func BenchmarkPaths(b *testing.B) {
	l := newLab(b)
	// A repeated run sees the frame the previous one wrote: the reverse binding, and
	// both addresses registered from the MAC the gateway writes as source, translate
	// it back and forth so every run takes the path measured.
	for eip, priv := range map[string]string{"10.0.1.11": "203.0.113.10"} {
		if err := l.dp.SetBinding(mustAddr(eip), mustAddr(priv)); err != nil {
			b.Fatal(err)
		}
		for _, a := range []string{eip, priv} {
			if err := l.dp.SetSource(Source{Addr: mustAddr(a), MAC: l.uplink.HardwareAddr}); err != nil {
				b.Fatal(err)
			}
		}
	}
	byName := map[string]natCase{}
	for _, c := range natCases(b, l) {
		byName[c.name] = c
	}
	paths := []struct{ name, caseName string }{
		{"inbound-tcp", "inbound tcp"},
		{"outbound-udp", "outbound udp"},
		{"inbound-icmp-error", "inbound time exceeded quoting udp"},
		{"inbound-first-fragment", "inbound first fragment"},
		{"pass-not-bound", "inbound to the gateway itself"},
		{"drop-unpublished", "inbound to an unbound EIP"},
		{"pass-not-ipv4", "ipv6"},
		{"drop-bad-ip-header", "ihl 4"},
	}
	for _, hook := range []Hook{HookXDP, HookTC} {
		for _, p := range paths {
			c, ok := byName[p.caseName]
			if !ok {
				b.Fatalf("no table case %q", p.caseName)
			}
			b.Run(string(hook)+"/"+p.name, func(b *testing.B) {
				prog := l.program(b, c.role, hook)
				frame := c.in
				if c.verdict == verdictRedirect {
					frame = withTTL(c.in, 255)
				}
				b.ReportMetric(l.costPerPacket(b, prog, frame, hookVerdict(hook, c.verdict)), "ns/packet")
			})
		}
	}
}

// costPerPacket runs frame through prog b.N times in calls of at most 200 repeats (see
// BenchmarkPaths), checks every call ends in wantRet, and returns ns per packet.
func (l *lab) costPerPacket(b *testing.B, prog *ebpf.Program, frame []byte, wantRet uint32) float64 {
	b.Helper()
	const perCall = 200
	var total time.Duration
	before := l.snapshot(b)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(perCall, b.N-done)
		var ret uint32
		var d time.Duration
		var err error
		// Without a context the ingress device is loopback; the route lookup does
		// not depend on it.
		_ = l.host.Do(func() error {
			ret, d, err = prog.Benchmark(frame, n, nil)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if ret != wantRet {
			b.Fatalf("verdict %d, want %d: not measuring the path the benchmark names (reasons moved: %v)",
				ret, wantRet, diffReasons(before, l.snapshot(b)))
		}
		total += d * time.Duration(n)
		done += n
	}
	b.StopTimer()
	return float64(total.Nanoseconds()) / float64(b.N)
}

// withTTL returns a copy of an Ethernet+IPv4 frame with another TTL and the IP header
// checksum recomputed (RFC 1071).
func withTTL(frame []byte, ttl uint8) []byte {
	f := append([]byte(nil), frame...)
	ip := f[14:]
	ihl := int(ip[0]&0x0f) * 4
	ip[8] = ttl
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < ihl; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	return f
}

// BenchmarkBindingScale reports the inbound hit cost and the maps' memory with 1,
// 1,000 and 100,000 bindings added to the lab's few (capacity close to use). The
// measured packet hits one binding; the live benchmark in bench/ spreads traffic over
// many.
func BenchmarkBindingScale(b *testing.B) {
	for _, n := range []int{1, 1000, 100000} {
		b.Run(fmt.Sprintf("bindings=%d", n), func(b *testing.B) {
			l := newLabSized(b, uint32(n)+8) // room for the lab's own bindings
			eip, priv := netip.MustParseAddr("198.18.0.0"), netip.MustParseAddr("172.16.0.0")
			for i := 0; i < n-1; i++ {
				eip, priv = eip.Next(), priv.Next()
				if err := l.dp.SetBinding(eip, priv); err != nil {
					b.Fatal(err)
				}
			}
			if err := l.dp.SetBinding(mustAddr("10.0.1.11"), mustAddr("203.0.113.10")); err != nil {
				b.Fatal(err)
			}
			var c natCase
			for _, cc := range natCases(b, l) {
				if cc.name == "inbound tcp" {
					c = cc
				}
			}
			frame := withTTL(c.in, 255)
			perPacket := l.costPerPacket(b, l.program(b, RoleUplink, HookXDP), frame, hookVerdict(HookXDP, verdictRedirect))
			b.StopTimer()
			mem, err := l.dp.MapMemory()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(perPacket, "ns/packet")
			b.ReportMetric(float64(mem), "map-bytes")
		})
	}
}

// BenchmarkNatPaths reports the per-packet cost of the NAT gateway paths: an
// established SNAT session, a new SNAT flow (port allocation, mapping and session
// inserts), and an established DNAT session. A translated frame would not translate
// again on the kernel's reused buffer, so each call runs one packet (the kernel times
// the run itself; the syscall is not counted).
//
//	sudo go test -run '^$' -bench NatPaths ./dataplane
func BenchmarkNatPaths(b *testing.B) {
	l := newNatLab(b)
	f := newNatFrames(b, l)
	cfg := DefaultNatConfig()
	cfg.MaxSessionsPerSource, cfg.MaxPortsPerSource = 1<<20, 1<<20
	must(b, l.dp.SetNatConfig(cfg))
	redirect := hookVerdict(HookXDP, verdictRedirect)
	one := func(b *testing.B, role Role, frames func(i int) []byte) {
		prog := l.program(b, role, HookXDP)
		var total time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var ret uint32
			var d time.Duration
			var err error
			_ = l.host.Do(func() error { ret, d, err = prog.Benchmark(frames(i), 1, nil); return nil })
			if err != nil {
				b.Fatal(err)
			}
			if ret != redirect {
				b.Fatalf("verdict %d: not measuring the path the benchmark names", ret)
			}
			total += d
		}
		b.StopTimer()
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
	}
	// The 1:1 path measured the same way, as the baseline of this method: a single
	// run includes the test run's per-call setup, which repeats amortize in BenchmarkPaths.
	f.macOfInside[privVM1] = macVM1
	oneToOne := f.fromInside(privVM1, labInet, udpDgram(5000, 53))
	b.Run("xdp/one-to-one-udp", func(b *testing.B) {
		one(b, RoleVPC, func(int) []byte { return oneToOne })
	})
	established := f.fromInside(natVM1, labInet, udpDgram(5000, 53))
	b.Run("xdp/snat-established-udp", func(b *testing.B) {
		one(b, RoleVPC, func(int) []byte { return established })
	})
	// The first run opens the session; every later one finds it established.
	establishedTCP := f.fromInside(natVM1, labInet, tcpSeg(6000, 443, "A"))
	b.Run("xdp/snat-established-tcp", func(b *testing.B) {
		one(b, RoleVPC, func(int) []byte { return establishedTCP })
	})
	dnat := f.fromInet(labInet, natEIP2, tcpSeg(5555, fwdTCPPort, "S"))
	b.Run("xdp/dnat-established-tcp", func(b *testing.B) {
		one(b, RoleUplink, func(int) []byte { return dnat })
	})
	b.Run("xdp/snat-new-flow", func(b *testing.B) {
		// Each packet a new internal endpoint: 8 sources x 60,000 ports.
		one(b, RoleVPC, func(i int) []byte {
			src := netip.AddrFrom4([4]byte{10, 0, 1, byte(17 + i/60000%8)})
			return f.fromInside(src, labInet, udpDgram(uint16(2000+i%60000), 53))
		})
		b.StopTimer()
		_, _ = l.dp.PurgeSessions(func(Session) bool { return true })
	})
}

// BenchmarkSessionScale reports what an established SNAT packet costs, and the session
// tables' memory, with 1,000, 100,000 and 1,000,000 live sessions.
//
//	sudo go test -run '^$' -bench SessionScale ./dataplane
//
// The program opens the sessions itself, one new-flow packet each: 64 remote endpoints
// share each endpoint-independent mapping, so a million sessions take 16,384 ports.
// Each measured packet then belongs to another session, picked at random among up to
// 65,536 of them, so the lookups leave the cache as traffic over many flows does. One
// packet per call, as in BenchmarkNatPaths; the 1:1 path measured the same way in the
// same lab is reported beside it as that method's baseline.
func BenchmarkSessionScale(b *testing.B) {
	const remotesPerMapping = 64
	for _, n := range []int{1000, 100000, 1000000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			// Capacity close to use, as an operator would size it.
			l := newNatLabWith(b, Config{MaxBindings: 1024, MaxSessions: uint32(n + n/8 + 1024)})
			cfg := DefaultNatConfig()
			cfg.MaxSessionsPerSource, cfg.MaxPortsPerSource = 1<<20, 1<<20
			must(b, l.dp.SetNatConfig(cfg))
			f := newNatFrames(b, l)
			flow := func(i int) []byte {
				mapping, remote := i/remotesPerMapping, i%remotesPerMapping
				src := netip.AddrFrom4([4]byte{10, 0, 1, byte(17 + mapping%8)}) // in natSubnet
				return f.fromInside(src, labInet, udpDgram(uint16(1024+mapping/8), uint16(1000+remote)))
			}
			prog := l.program(b, RoleVPC, HookXDP)
			redirect := hookVerdict(HookXDP, verdictRedirect)
			runOne := func(frame []byte) (time.Duration, error) {
				ret, d, err := prog.Benchmark(frame, 1, nil)
				if err == nil && ret != redirect {
					err = fmt.Errorf("verdict %d, want a redirect", ret)
				}
				return d, err
			}
			must(b, l.host.Do(func() error {
				for i := 0; i < n; i++ {
					if _, err := runOne(flow(i)); err != nil {
						rc, _ := l.dp.ReasonCounts()
						return fmt.Errorf("opening session %d: %w (reasons %v)", i, err, rc)
					}
				}
				return nil
			}))

			picked := make([][]byte, min(n, 65536))
			rng := rand.New(rand.NewPCG(uint64(n), 1))
			for i := range picked {
				picked[i] = flow(rng.IntN(n))
			}
			f.macOfInside[privVM1] = macVM1
			oneToOne := f.fromInside(privVM1, labInet, udpDgram(5000, 53))
			var established, baseline time.Duration
			b.ResetTimer()
			must(b, l.host.Do(func() error {
				for i := 0; i < b.N; i++ {
					d, err := runOne(picked[i%len(picked)])
					if err != nil {
						return fmt.Errorf("established packet: %w", err)
					}
					established += d
					if d, err = runOne(oneToOne); err != nil {
						return fmt.Errorf("1:1 packet: %w", err)
					}
					baseline += d
				}
				return nil
			}))
			b.StopTimer()
			mem, err := l.dp.SessionMemory()
			must(b, err)
			b.ReportMetric(float64(established.Nanoseconds())/float64(b.N), "ns/packet")
			b.ReportMetric(float64(baseline.Nanoseconds())/float64(b.N), "one-to-one-ns/packet")
			b.ReportMetric(float64(mem), "session-map-bytes")
		})
	}
}
