package dataplane

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ReadNextHops answers as the lab's FIB does, only where that is unambiguous.
func TestReadNextHops(t *testing.T) {
	l := newLab(t)
	small, err := l.host.Link("small")
	must(t, err)
	addrs := []netip.Addr{privVM1, privNoNeigh, privSmallMTU, privUnreachable, eipCut}
	read := func() NextHops {
		t.Helper()
		hops, err := ReadNextHops(l.host.Netlink(), addrs)
		must(t, err)
		return hops
	}
	hops := read()
	if !hops.Enabled {
		t.Fatal("caching is off in a lab with the default policy rules")
	}
	wantHop := func(name string, got *NextHop, want NextHop) {
		t.Helper()
		if got == nil || !sameHop(*got, want) {
			t.Errorf("%s: hop %v, want %v", name, got, want)
		}
	}
	wantHop("default", hops.Default, NextHop{IfIndex: l.uplink.Index, DstMAC: macRouter, SrcMAC: l.uplink.HardwareAddr, MTU: 1500})
	byAddr := func(a netip.Addr) *NextHop {
		if h, ok := hops.ByAddr[a]; ok {
			return &h
		}
		return nil
	}
	wantHop("privVM1", byAddr(privVM1), NextHop{IfIndex: l.vpc.Index, DstMAC: macVM1, SrcMAC: l.vpc.HardwareAddr, MTU: 1500})
	wantHop("privSmallMTU", byAddr(privSmallMTU), NextHop{IfIndex: small.Index, DstMAC: macVM9, SrcMAC: small.HardwareAddr, MTU: 1000})
	wantHop("eipCut", byAddr(eipCut), NextHop{IfIndex: l.vpc.Index, DstMAC: macCut, SrcMAC: l.vpc.HardwareAddr, MTU: 1500})
	for _, a := range []netip.Addr{privNoNeigh, privUnreachable} {
		if h := byAddr(a); h != nil {
			t.Errorf("%v has hop %v; the FIB has none to give (no neighbour, unreachable)", a, h)
		}
	}
	for _, p := range []string{"10.0.0.0/16", "198.51.100.252/30", "10.0.8.0/24", "203.0.113.30/32", "198.51.100.254/32"} {
		found := false
		for _, s := range hops.Specific {
			found = found || s == netip.MustParsePrefix(p)
		}
		if !found {
			t.Errorf("specific routes %v lack %s", hops.Specific, p)
		}
	}

	// Policy routing: the route depends on more than the destination.
	nl := l.host.Netlink()
	rule := netlink.NewRule()
	rule.Priority, rule.Table, rule.Family = 100, 100, unix.AF_INET
	rule.Src = &net.IPNet{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(8, 32)}
	must(t, nl.RuleAdd(rule))
	if read().Enabled {
		t.Error("caching stays on under a policy rule")
	}
	must(t, nl.RuleDel(rule))

	// A multipath default route has no single hop.
	second := netip.MustParseAddr("10.0.0.2")
	must(t, l.host.Neigh("vpc", second, macRemote))
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	must(t, nl.RouteReplace(&netlink.Route{Dst: def, MultiPath: []*netlink.NexthopInfo{
		{LinkIndex: l.uplink.Index, Gw: net.IP(labRouterIP.AsSlice())},
		{LinkIndex: l.vpc.Index, Gw: net.IP(second.AsSlice())},
	}}))
	if h := read().Default; h != nil {
		t.Errorf("multipath default route cached as %v", h)
	}
}

// The packet path takes a cached hop when it is current and fits, and asks the FIB
// otherwise, counting why.
func TestNextHopCache(t *testing.T) {
	for _, hook := range []Hook{HookXDP, HookTC} {
		t.Run(string(hook), func(t *testing.T) {
			l := newLab(t)
			f := newNatFrames(t, l)
			f.macOfInside[privVM1] = macVM1
			// Hops that differ from the lab's neighbours, so a frame shows which
			// answered: the cache (cachedRouter, cachedVM) or the FIB (macRouter, macVM1).
			cachedRouter := net.HardwareAddr{0x02, 0xca, 0xfe, 0, 0, 0xfe}
			cachedVM := net.HardwareAddr{0x02, 0xca, 0xfe, 0, 0x01, 0x11}
			cachedCut := net.HardwareAddr{0x02, 0xca, 0xfe, 0, 0x03, 0x30}
			hops := func(mtu int) NextHops {
				return NextHops{
					Enabled:  true,
					Default:  &NextHop{IfIndex: l.uplink.Index, DstMAC: cachedRouter, SrcMAC: l.uplink.HardwareAddr, MTU: mtu},
					Specific: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("203.0.113.30/32")},
					ByAddr: map[netip.Addr]NextHop{
						privVM1: {IfIndex: l.vpc.Index, DstMAC: cachedVM, SrcMAC: l.vpc.HardwareAddr, MTU: mtu},
						eipCut:  {IfIndex: l.vpc.Index, DstMAC: cachedCut, SrcMAC: l.vpc.HardwareAddr, MTU: mtu},
					},
				}
			}
			withDst := func(frame []byte, mac net.HardwareAddr) []byte {
				out := append([]byte(nil), frame...)
				copy(out[0:6], mac)
				return out
			}
			up := l.program(t, RoleUplink, hook)
			vpc := l.program(t, RoleVPC, hook)
			out := f.fromInside(privVM1, labInet, udpDgram(5000, 53))
			outFIB := f.toInet(eipVM1, labInet, udpDgram(5000, 53))
			in := f.fromInet(labInet, eipVM1, udpDgram(53, 5000))
			inFIB := f.toInside(labInet, privVM1, udpDgram(53, 5000))
			cutIn := f.fromInet(labInet, eipCut, udpDgram(53, 5000))
			cutFIB := serialize(t, eth(l.vpc.HardwareAddr, macCut), ip4(labInet, eipCut, layers.IPProtocolUDP, 63), udp(53, 5000), payload(24))
			noNeigh := f.fromInet(labInet, eipNoNeigh, udpDgram(53, 5000))

			step := func(name string, side string, frame, want []byte, wantVerdict verdict, fallbacks NextHopFallbacks) {
				t.Helper()
				before, err := l.dp.NextHopFallbacks()
				must(t, err)
				p, ingress := up, l.uplink
				if side == "vpc" {
					p, ingress = vpc, l.vpc
				}
				ret, got := l.run(t, p, hook, ingress, frame)
				if ret != hookVerdict(hook, wantVerdict) {
					t.Fatalf("%s: verdict %d, want %v", name, ret, wantVerdict)
				}
				if want != nil && !bytes.Equal(got[:len(want)], want) {
					t.Errorf("%s: frame\n got %x\nwant %x", name, got[:len(want)], want)
				}
				after, err := l.dp.NextHopFallbacks()
				must(t, err)
				moved := NextHopFallbacks{after.Off - before.Off, after.Miss - before.Miss, after.Stale - before.Stale, after.Size - before.Size}
				if moved != fallbacks {
					t.Errorf("%s: fallbacks %+v, want %+v", name, moved, fallbacks)
				}
			}

			step("off: outbound asks the FIB", "vpc", out, outFIB, verdictRedirect, NextHopFallbacks{Off: 1})
			must(t, l.dp.SetNextHops(hops(1500)))
			step("outbound takes the default hop", "vpc", out, withDst(outFIB, cachedRouter), verdictRedirect, NextHopFallbacks{})
			step("inbound takes the binding's hop", "uplink", in, withDst(inFIB, cachedVM), verdictRedirect, NextHopFallbacks{})
			step("cut-through takes the address's hop", "uplink", cutIn, withDst(cutFIB, cachedCut), verdictRedirect, NextHopFallbacks{})
			step("a binding without a hop asks the FIB", "uplink", noNeigh, nil, verdictPass, NextHopFallbacks{Miss: 1})

			must(t, l.dp.SetNextHops(hops(40))) // the frames carry 52-byte packets
			step("bigger than the hop's MTU asks the FIB", "vpc", out, outFIB, verdictRedirect, NextHopFallbacks{Size: 1})
			step("the binding's hop follows a change", "uplink", in, inFIB, verdictRedirect, NextHopFallbacks{Size: 1})

			must(t, l.dp.SetNextHops(hops(1500)))
			must(t, l.dp.DisableNextHops())
			step("turned off", "vpc", out, outFIB, verdictRedirect, NextHopFallbacks{Off: 1})
			must(t, l.dp.SetNextHops(hops(1500)))
			step("back on", "vpc", out, withDst(outFIB, cachedRouter), verdictRedirect, NextHopFallbacks{})

			// A binding made after the hops were set carries its hop at once.
			must(t, l.dp.DeleteBinding(eipVM1))
			must(t, l.dp.SetBinding(eipVM1, privVM1))
			step("a new binding carries its hop", "uplink", in, withDst(inFIB, cachedVM), verdictRedirect, NextHopFallbacks{})

			// An entry of an older generation is never used: a process adopting the
			// pins starts a new one, and rewrites what it knows.
			hopsOnly := hops(1500)
			delete(hopsOnly.ByAddr, eipCut)
			l.dp.hops.generation = 0 // as a new process
			var stale natNextHop
			must(t, l.dp.objs.NextHops.Lookup(mustKey(t, eipCut), &stale))
			must(t, l.dp.SetNextHops(hopsOnly))
			must(t, l.dp.objs.NextHops.Put(mustKey(t, eipCut), stale)) // left behind
			step("a stale entry asks the FIB", "uplink", cutIn, cutFIB, verdictRedirect, NextHopFallbacks{Stale: 1})
		})
	}
}

// The watcher follows the kernel: a neighbour's new MAC, a policy rule that turns
// the cache off, a new binding's hop.
func TestNextHopWatcher(t *testing.T) {
	l := newLab(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &NextHopWatcher{DP: l.dp, Resync: time.Hour, Settle: 10 * time.Millisecond}
	var wait func()
	must(t, l.host.Do(func() error {
		var err error
		wait, err = w.Start(ctx)
		return err
	}))
	defer func() { cancel(); wait() }()

	eventually := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("not within 5 s: %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	defaultMAC := func() net.HardwareAddr {
		on, def, err := l.dp.NextHopsInForce()
		must(t, err)
		if !on || def == nil {
			return nil
		}
		return def.DstMAC
	}
	eventually("the default hop is the router", func() bool { return bytes.Equal(defaultMAC(), macRouter) })

	moved := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfd}
	must(t, l.host.Neigh("uplink", labRouterIP, moved))
	eventually("the default hop follows the router's new MAC", func() bool { return bytes.Equal(defaultMAC(), moved) })

	rule := netlink.NewRule()
	rule.Priority, rule.Table, rule.Family = 100, 100, unix.AF_INET
	rule.Src = &net.IPNet{IP: net.IPv4(10, 0, 0, 0), Mask: net.CIDRMask(8, 32)}
	must(t, l.host.Netlink().RuleAdd(rule))
	eventually("a policy rule turns the cache off", func() bool { on, _, _ := l.dp.NextHopsInForce(); return !on })
	must(t, l.host.Netlink().RuleDel(rule))
	eventually("removing it turns the cache on", func() bool { on, _, _ := l.dp.NextHopsInForce(); return on })

	priv, eip, mac := netip.MustParseAddr("10.0.6.6"), netip.MustParseAddr("203.0.113.66"), net.HardwareAddr{0x02, 0, 0, 0, 6, 6}
	must(t, l.host.Neigh("vpc", priv, mac))
	must(t, l.dp.SetBinding(eip, priv))
	eventually("a new binding gets its hop", func() bool {
		var b natBinding
		must(t, l.dp.objs.InboundBindings.Lookup(mustKey(t, eip), &b))
		return b.Hop.Ifindex == uint32(l.vpc.Index) && bytes.Equal(b.Hop.Dmac[:], mac)
	})
}
