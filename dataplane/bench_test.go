package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
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
	nextHopsOnLoopback(b, l)
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

// nextHopsOnLoopback gives the lab's next hops lo's MAC (all zero). The runs arrive on
// lo (onLoopback) and the XDP programs translate only frames sent to its MAC: a
// repeated run sees the frame the previous one wrote, which is sent to the next hop's
// MAC, so that MAC must be lo's too.
func nextHopsOnLoopback(b *testing.B, l *lab) {
	b.Helper()
	lo := make(net.HardwareAddr, 6)
	if err := l.host.Neigh("vpc", privVM1, lo); err != nil {
		b.Fatal(err)
	}
	if err := l.host.Neigh("uplink", labRouterIP, lo); err != nil {
		b.Fatal(err)
	}
}

// costPerPacket runs frame through prog b.N times in calls of at most 200 repeats (see
// BenchmarkPaths), checks every call ends in wantRet, and returns ns per packet.
func (l *lab) costPerPacket(b *testing.B, prog *ebpf.Program, frame []byte, wantRet uint32) float64 {
	b.Helper()
	const perCall = 200
	var total time.Duration
	frame = l.onLoopback(b, frame)
	before := l.snapshot(b)
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(perCall, b.N-done)
		var ret uint32
		var d time.Duration
		var err error
		// Without a context the ingress device is loopback (onLoopback); the route
		// lookup does not depend on it.
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
			nextHopsOnLoopback(b, l)
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
