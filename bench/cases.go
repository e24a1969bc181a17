package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/dataplane"
	"github.com/eipgw/eipgw/internal/testbed"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// benchCase is one way of getting packets through the gateway.
type benchCase struct {
	Name string
	// What it is, for the report.
	Desc       string
	Flows      flows
	Translated bool // the sink must see translated sources
	// Setup configures the gateway and returns how to undo it.
	Setup func(b *bed) (teardown func() error, err error)
	// Requires says why this kernel cannot run the case, or nil.
	Requires func() error
}

func allCases() []benchCase {
	return []benchCase{
		{"kernel-forwarding", "Linux IP forwarding, no NAT", manyFlows, false, noSetup, nil},
		{"nft-stateless-1to1", "nftables: notrack + ip saddr set ip saddr map { 50 bindings }", manyFlows, true, nftStateless, nil},
		{"nft-snat-conntrack-1flow", "nftables: snat with conntrack, one flow", oneFlow, true, nftSNAT(oneFlow), nil},
		{"nft-snat-conntrack-many", "nftables: snat with conntrack, 12,800 flows", manyFlows, true, nftSNAT(manyFlows), nil},
		{"nft-snat-conntrack-new", "nftables: snat to 16 addresses with conntrack, every packet a new connection (up to 250,000 a window)", newFlows, true, nftSNATNew, nil},
		{"nft-flowtable-bidir", "nftables: snat with conntrack and a flowtable, 256 flows made established by a reply each", flowtableFlows, true, nftFlowtable,
			kernelHas("CONFIG_NF_FLOW_TABLE")},
		{"xdp-floor", "XDP: MAC rewrite and redirect, nothing else (the floor for any XDP gateway)", manyFlows, false, xdpFloor, nil},
		{"eipgw-1to1-xdp", "eipgw 1:1 EIP at XDP, 50 bindings", manyFlows, true, eipgwAt(dataplane.HookXDP), nil},
		{"eipgw-1to1-tc", "eipgw 1:1 EIP at TC (tcx), 50 bindings", manyFlows, true, eipgwAt(dataplane.HookTC), nil},
		{"eipgw-snat-xdp", "eipgw NAT gateway SNAT at XDP, 12,800 established sessions on one EIP", manyFlows, true, eipgwSNATAt(dataplane.HookXDP, 1, manyFlows), nil},
		{"eipgw-snat-tc", "eipgw NAT gateway SNAT at TC (tcx), 12,800 established sessions on one EIP", manyFlows, true, eipgwSNATAt(dataplane.HookTC, 1, manyFlows), nil},
		{"kernel-forwarding-in", "Linux IP forwarding from the uplink to the VPC, no NAT (the inbound baseline)", inFlows, false, noSetup, nil},
		{"xdp-floor-in", "XDP: MAC rewrite and redirect from the uplink to the VPC (the inbound floor)", inFlows, false, xdpFloorIn, nil},
		{"nft-dnat-conntrack", "nftables: dnat from 16 EIPs to their hosts with conntrack, 12,800 established flows from the internet", inFlows, true, nftDNAT, nil},
		{"eipgw-dnat-xdp", "eipgw NAT gateway DNAT at XDP: 16 forward entries, 12,800 established sessions from the internet", inFlows, true, eipgwDNATAt(dataplane.HookXDP), nil},
		{"eipgw-dnat-tc", "eipgw NAT gateway DNAT at TC (tcx): 16 forward entries, 12,800 established sessions from the internet", inFlows, true, eipgwDNATAt(dataplane.HookTC), nil},
		{"eipgw-snat-new-xdp", "eipgw NAT gateway SNAT at XDP to a paired pool of 16 EIPs, every packet a new session (up to 250,000 a window)", newFlows, true, eipgwSNATAt(dataplane.HookXDP, newFlowPool, flows{}), nil},
		{"eipgw-snat-new-tc", "eipgw NAT gateway SNAT at TC (tcx) to a paired pool of 16 EIPs, every packet a new session (up to 250,000 a window)", newFlows, true, eipgwSNATAt(dataplane.HookTC, newFlowPool, flows{}), nil},
	}
}

func noSetup(*bed) (func() error, error) { return func() error { return nil }, nil }

// bindings are the 1:1 pairs every NAT case uses: the generator's source hosts to EIPs.
func bindings() map[netip.Addr]netip.Addr { return hostsToEIPs(manyHosts) }

// hostsToEIPs pairs the first n private hosts from srcBase with the first n EIPs.
func hostsToEIPs(n int) map[netip.Addr]netip.Addr {
	m := map[netip.Addr]netip.Addr{}
	priv, eip := netip.MustParseAddr(srcBase), netip.MustParseAddr(eipBase)
	for i := 0; i < n; i++ {
		m[priv] = eip
		priv, eip = priv.Next(), eip.Next()
	}
	return m
}

const nftTable = "eipgw_bench"

// nft applies rules to the gateway's namespace in one transaction and returns how to
// remove them (the table, whole).
func (b *bed) nft(build func(c *nftables.Conn, t *nftables.Table) error) (func() error, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(b.gw.NsHandle())))
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	if err := build(c, t); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("nftables: apply: %w", err)
	}
	return func() error {
		c.DelTable(t)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("nftables: remove table: %w", err)
		}
		return nil
	}, nil
}

// inboundTargets are the hosts the DNAT cases publish, each on its own EIP: the first
// inboundEIPs of the bindings, private address to EIP.
func inboundTargets() map[netip.Addr]netip.Addr { return hostsToEIPs(inboundEIPs) }

// nftDNAT is the kernel's DNAT: each EIP to its host, with conntrack. Like eipgw's,
// each window starts from an empty connection table with every flow opened.
func nftDNAT(b *bed) (func() error, error) {
	if err := b.flushConntrack(); err != nil {
		return nil, err
	}
	teardown, err := b.nft(func(c *nftables.Conn, t *nftables.Table) error {
		published := map[netip.Addr]netip.Addr{}
		for priv, eip := range inboundTargets() {
			published[eip] = priv
		}
		set, err := addressMap(c, t, "published", published)
		if err != nil {
			return err
		}
		pre := c.AddChain(&nftables.Chain{Name: "nat_pre", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest})
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: []expr.Any{
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
		}})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := b.openFlows(inFlows); err != nil {
		return nil, errors.Join(err, teardown())
	}
	return teardown, nil
}

func xdpFloorIn(b *bed) (func() error, error) {
	l, err := b.attachXDP(b.objs.XdpFloorIn, b.gwUp)
	if err != nil {
		return nil, fmt.Errorf("attach the inbound XDP floor: %w", err)
	}
	return l.Close, nil
}

// addressMap adds an nftables map from address to address.
func addressMap(c *nftables.Conn, t *nftables.Table, name string, pairs map[netip.Addr]netip.Addr) (*nftables.Set, error) {
	set := &nftables.Set{Table: t, Name: name, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeIPAddr}
	var elems []nftables.SetElement
	for k, v := range pairs {
		elems = append(elems, nftables.SetElement{Key: k.AsSlice(), Val: v.AsSlice()})
	}
	if err := c.AddSet(set, elems); err != nil {
		return nil, fmt.Errorf("nftables map %s: %w", name, err)
	}
	return set, nil
}

// nftStateless is the kernel's stateless 1:1: no conntrack, the source rewritten
// through a map, checksums fixed by nftables.
func nftStateless(b *bed) (func() error, error) {
	return b.nft(func(c *nftables.Conn, t *nftables.Table) error {
		raw := c.AddChain(&nftables.Chain{Name: "raw_pre", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRaw})
		c.AddRule(&nftables.Rule{Table: t, Chain: raw, Exprs: []expr.Any{&expr.Notrack{}}})
		set, err := addressMap(c, t, "eips", bindings())
		if err != nil {
			return err
		}
		pre := c.AddChain(&nftables.Chain{Name: "nat_pre", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle})
		c.AddRule(&nftables.Rule{Table: t, Chain: pre, Exprs: []expr.Any{
			&expr.Payload{OperationType: expr.PayloadLoad, DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: set.Name, SetID: set.ID},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader,
				Offset: 12, Len: 4, CsumType: expr.CsumTypeInet, CsumOffset: 10, CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR},
		}})
		return nil
	})
}

// nftSNAT is the usual kernel NAT: snat to one EIP out of the uplink, with conntrack.
// Like eipgw's SNAT cases, each window starts from an empty connection table and
// sends every flow one packet first, so the window measures established connections.
func nftSNAT(f flows) func(b *bed) (func() error, error) {
	return func(b *bed) (func() error, error) {
		if err := b.flushConntrack(); err != nil {
			return nil, err
		}
		teardown, err := b.nft(snatRule(1))
		if err != nil {
			return nil, err
		}
		if err := b.openFlows(f); err != nil {
			return nil, errors.Join(err, teardown())
		}
		return teardown, nil
	}
}

// newFlowPool is the number of addresses the new-connection cases translate to: enough
// ports that 250,000 mappings leave every address's range no more than a third full.
const newFlowPool = 16

// nftSNATNew is the kernel's new-connection rate: snat to newFlowPool addresses (the
// kernel picks one per source and destination, as eipgw's paired pool does per
// source), every packet a connection conntrack has not seen. The teardown forgets them.
func nftSNATNew(b *bed) (func() error, error) {
	if err := b.flushConntrack(); err != nil {
		return nil, err
	}
	teardown, err := b.nft(snatRule(newFlowPool))
	if err != nil {
		return nil, err
	}
	return func() error { return errors.Join(teardown(), b.flushConntrack()) }, nil
}

// flushConntrack empties the gateway's connection table.
func (b *bed) flushConntrack() error {
	if err := b.gw.Netlink().ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		return fmt.Errorf("flush conntrack: %w", err)
	}
	return nil
}

// openFlows sends every flow one packet, slowly enough that none is lost.
func (b *bed) openFlows(f flows) error {
	if _, err := b.generate(f, 50e3, f.count()); err != nil {
		return fmt.Errorf("open the flows: %w", err)
	}
	return nil
}

// snatRule translates what leaves the uplink to the first `addrs` EIPs.
func snatRule(addrs int) func(c *nftables.Conn, t *nftables.Table) error {
	return func(c *nftables.Conn, t *nftables.Table) error {
		post := c.AddChain(&nftables.Chain{Name: "nat_post", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
		ifname := make([]byte, unix.IFNAMSIZ)
		copy(ifname, "uplink")
		pool := eipPool(addrs)
		c.AddRule(&nftables.Rule{Table: t, Chain: post, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname},
			&expr.Immediate{Register: 1, Data: pool[0].AsSlice()},
			&expr.Immediate{Register: 2, Data: pool[len(pool)-1].AsSlice()},
			&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegAddrMax: 2},
		}})
		return nil
	}
}

// eipPool is the first n EIPs from eipBase.
func eipPool(n int) []netip.Addr {
	pool := []netip.Addr{netip.MustParseAddr(eipBase)}
	for len(pool) < n {
		pool = append(pool, pool[len(pool)-1].Next())
	}
	return pool
}

// flowtableFlows are one host's ports: SNAT to one EIP keeps them, so the replies
// know where to go. Their own port range keeps them apart from the other cases' flows.
var flowtableFlows = flows{Hosts: 1, Ports: 256, Base: 20000}

// nftFlowtable is the kernel's fastest NAT: established flows leave the forwarding
// path for a flowtable at ingress. One-way UDP never becomes established, so each
// window starts by sending every flow one packet and getting one reply.
func nftFlowtable(b *bed) (func() error, error) {
	teardown, err := b.nft(func(c *nftables.Conn, t *nftables.Table) error {
		ft := c.AddFlowtable(&nftables.Flowtable{Table: t, Name: "ft", Devices: []string{"vpc", "uplink"},
			Hooknum: nftables.FlowtableHookIngress, Priority: nftables.FlowtablePriorityFilter})
		fwd := c.AddChain(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter})
		c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutilNative(expr.CtStateBitESTABLISHED), Xor: binaryutilNative(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutilNative(0)},
			&expr.FlowOffload{Name: ft.Name},
		}})
		return snatRule(1)(c, t)
	})
	if err != nil {
		return nil, err
	}
	if _, err := b.generate(flowtableFlows, 100e3, uint64(flowtableFlows.Ports)); err != nil {
		return nil, fmt.Errorf("flowtable warm-up: %w", err)
	}
	if err := b.reply(flowtableFlows, eipBase); err != nil {
		return nil, fmt.Errorf("flowtable replies: %w", err)
	}
	return teardown, nil
}

// kernelHas checks the running kernel's configuration for an option, where the
// kernel publishes it; where it does not, the case is tried.
func kernelHas(option string) func() error {
	return func() error {
		f, err := os.Open("/proc/config.gz")
		if err != nil {
			return nil
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil
		}
		cfg, err := io.ReadAll(z)
		if err != nil {
			return nil
		}
		if bytes.Contains(cfg, []byte(option+"=y")) || bytes.Contains(cfg, []byte(option+"=m")) {
			return nil
		}
		return fmt.Errorf("this kernel is built without %s", option)
	}
}

func binaryutilNative(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func xdpFloor(b *bed) (func() error, error) {
	l, err := b.attachXDP(b.objs.XdpFloor, b.gwVPC)
	if err != nil {
		return nil, fmt.Errorf("attach the XDP floor: %w", err)
	}
	return l.Close, nil
}

// eipgwAt attaches eipgw's dataplane at the hook, with the bench's bindings.
func eipgwAt(hook dataplane.Hook) func(b *bed) (func() error, error) {
	return func(b *bed) (func() error, error) {
		dp, err := b.eipgw()
		if err != nil {
			return nil, err
		}
		err = b.gw.Do(func() error {
			if _, err := dp.Attach("vpc", dataplane.RoleVPC, hook); err != nil {
				return err
			}
			_, err := dp.Attach("uplink", dataplane.RoleUplink, hook)
			return err
		})
		if err != nil {
			return nil, err
		}
		return func() error {
			return b.gw.Do(func() error {
				if err := dp.Detach("vpc"); err != nil {
					return err
				}
				return dp.Detach("uplink")
			})
		}, nil
	}
}

// snatSource covers the generator's source hosts: the SNAT entry of the SNAT cases.
var snatSource = netip.MustParsePrefix("10.0.1.0/24")

// eipgwSNATAt runs eipgw as a NAT gateway: one SNAT entry pools the generator's hosts
// onto the first poolSize EIPs (paired, as the kernel does, when there are several).
func eipgwSNATAt(hook dataplane.Hook, poolSize int, open flows) func(b *bed) (func() error, error) {
	pool := eipPool(poolSize)
	return eipgwNatAt(hook, open, func(dp *dataplane.Dataplane) (func() error, error) {
		undo := func() error {
			err := dp.DeleteSnatRule(snatSource)
			if errors.Is(err, ebpf.ErrKeyNotExist) {
				err = nil
			}
			return errors.Join(err, deleteNatEIPs(dp, pool))
		}
		for _, eip := range pool {
			if err := dp.SetNatEIP(eip); err != nil {
				return nil, errors.Join(err, undo())
			}
		}
		if err := dp.SetSnatRule(dataplane.SnatRule{Source: snatSource, Pool: pool, Affinity: poolSize > 1}); err != nil {
			return nil, errors.Join(err, undo())
		}
		return undo, nil
	})
}

// eipgwDNATAt runs eipgw as a NAT gateway publishing inboundEIPs hosts, each on its own
// EIP's flowDstPort, by forward (DNAT) entries.
func eipgwDNATAt(hook dataplane.Hook) func(b *bed) (func() error, error) {
	targets := inboundTargets()
	return eipgwNatAt(hook, inFlows, func(dp *dataplane.Dataplane) (func() error, error) {
		var eips []netip.Addr
		for _, eip := range targets {
			eips = append(eips, eip)
		}
		undo := func() error {
			var errs []error
			for _, eip := range eips {
				err := dp.DeleteForwardPort(dataplane.ProtoUDP, netip.AddrPortFrom(eip, flowDstPort))
				if !errors.Is(err, ebpf.ErrKeyNotExist) {
					errs = append(errs, err)
				}
			}
			return errors.Join(append(errs, deleteNatEIPs(dp, eips))...)
		}
		for priv, eip := range targets {
			if err := dp.SetNatEIP(eip); err != nil {
				return nil, errors.Join(err, undo())
			}
			if err := dp.SetForwardPort(dataplane.ForwardPort{Protocol: dataplane.ProtoUDP,
				External: netip.AddrPortFrom(eip, flowDstPort), Internal: netip.AddrPortFrom(priv, flowDstPort)}); err != nil {
				return nil, errors.Join(err, undo())
			}
		}
		return undo, nil
	})
}

func deleteNatEIPs(dp *dataplane.Dataplane, eips []netip.Addr) error {
	var errs []error
	for _, eip := range eips {
		if err := dp.DeleteNatEIP(eip); err != nil && !errors.Is(err, dataplane.ErrNotBound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// eipgwNatAt runs eipgw as a NAT gateway configured by configure: the 1:1 bindings,
// which cover the same addresses, give way to it. Every flow of open gets one packet
// before the window, so the window measures established sessions; with no flows to
// open, the window opens its own (the new-flow cases). The teardown purges the
// sessions, undoes the configuration and puts the bindings back.
func eipgwNatAt(hook dataplane.Hook, open flows, configure func(*dataplane.Dataplane) (func() error, error)) func(b *bed) (func() error, error) {
	attach := eipgwAt(hook)
	return func(b *bed) (func() error, error) {
		dp, err := b.eipgw()
		if err != nil {
			return nil, err
		}
		var unconfigure func() error
		restore := func() error {
			if _, err := dp.PurgeSessions(func(dataplane.Session) bool { return true }); err != nil {
				return err
			}
			if unconfigure != nil {
				if err := unconfigure(); err != nil {
					return err
				}
			}
			for priv, e := range bindings() {
				if err := dp.SetBinding(e, priv); err != nil {
					return err
				}
			}
			return nil
		}
		for _, e := range bindings() {
			if err := dp.DeleteBinding(e); err != nil {
				return nil, errors.Join(err, restore())
			}
		}
		if unconfigure, err = configure(dp); err != nil {
			return nil, errors.Join(err, restore())
		}
		detach, err := attach(b)
		if err != nil {
			return nil, errors.Join(err, restore())
		}
		undo := func() error { return errors.Join(detach(), restore()) }
		// A few packets of the first pass can be lost while the new attachment
		// settles: pass again until every flow has its session.
		want, have := int(open.count()), 0
		for pass := 0; pass < 3 && have != want; pass++ {
			if err := b.openFlows(open); err != nil {
				return nil, errors.Join(err, undo())
			}
			ss, err := dp.Sessions(nil)
			if err != nil {
				return nil, errors.Join(err, undo())
			}
			have = len(ss)
		}
		if have != want {
			return nil, errors.Join(fmt.Errorf("opened %d sessions of %d", have, want), undo())
		}
		return undo, nil
	}
}

// eipgw opens a dataplane with the session capacity of the case being set up, once
// per run and capacity, on a private bpffs, with the bindings.
func (b *bed) eipgw() (*dataplane.Dataplane, error) {
	if e := b.dps[b.capacity]; e != nil {
		return e.dp, nil
	}
	if b.bpffs == nil {
		fs, err := testbed.MountBPFFS()
		if err != nil {
			return nil, err
		}
		b.bpffs = fs
	}
	dp, err := dataplane.Open(dataplane.Config{PinDir: filepath.Join(b.bpffs.Dir, fmt.Sprintf("eipgw-%d", b.capacity)), MaxSessions: uint32(b.capacity)})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*dataplane.Dataplane, error) {
		dp.Close() // Remove refuses a dataplane that is still held
		_ = dataplane.Remove(dp.PinDir())
		return nil, err
	}
	// Every generator host sends from the generator's MAC: register each of its
	// addresses with it, as eipd registers an instance's, so the edge lets them through.
	var sources []netip.Addr
	for a := snatSource.Addr(); snatSource.Contains(a); a = a.Next() {
		sources = append(sources, a)
	}
	for priv, eip := range bindings() {
		sources = append(sources, priv)
		if err := dp.SetBinding(eip, priv); err != nil {
			return fail(err)
		}
	}
	for priv := range inboundTargets() {
		sources = append(sources, priv)
	}
	for _, a := range sources {
		if err := dp.SetSource(dataplane.Source{Addr: a, MAC: b.genMAC}); err != nil {
			return fail(err)
		}
	}
	// Next hops cached from the gateway's tables and kept current, as eipd does.
	ctx, cancel := context.WithCancel(context.Background())
	w := &dataplane.NextHopWatcher{DP: dp}
	var wait func()
	if err := b.gw.Do(func() error { var err error; wait, err = w.Start(ctx); return err }); err != nil {
		cancel()
		return fail(err)
	}
	if b.dps == nil {
		b.dps = map[int]*eipgwDataplane{}
	}
	b.dps[b.capacity] = &eipgwDataplane{dp: dp, stopHops: func() { cancel(); wait() }}
	return dp, nil
}
