package main

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"time"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/internal/progrun"
	"github.com/eipgw/eipgw/internal/testbed"
	"golang.org/x/sys/unix"
)

// flows is the set of 5-tuples the generator walks: hosts x ports source pairs to
// one destination.
type flows struct {
	Hosts, Ports uint32
	Base         uint16 // first source port; 0 means portBase
	// Once: a window sends each flow at most once, so every packet opens a new
	// connection; the window ends early rather than repeat one.
	Once bool
	// Inbound flows go from internet clients (the sink's side) to the EIPs, one EIP
	// per flow; the others from the generator's private hosts to the internet.
	Inbound bool
}

// count is the number of distinct flows.
func (f flows) count() uint64 { return uint64(f.Hosts) * uint64(f.Ports) }

func (f flows) base() uint16 {
	if f.Base == 0 {
		return portBase
	}
	return f.Base
}

var (
	oneFlow   = flows{Hosts: 1, Ports: 1}
	manyFlows = flows{Hosts: manyHosts, Ports: manyPorts}
	// newFlows: 250 hosts x 1,000 ports, each sent once a window. 250,000 fill the
	// session table and conntrack, both sized by tableCapacity, to at most half; the
	// ports are apart from the other cases' flows.
	newFlows = flows{Hosts: 250, Ports: 1000, Base: 30000, Once: true}
	// inFlows: 50 clients x 256 ports, spread over the inboundEIPs EIPs.
	inFlows = flows{Hosts: manyHosts, Ports: manyPorts, Inbound: true}
)

func (f flows) String() string { return fmt.Sprintf("%d flows", f.Hosts*f.Ports) }

// window is what one generator run delivered.
type window struct {
	Sent, Late                      uint64
	Translated, Untranslated, Other uint64
	Checked, BadChecksum            uint64
	Elapsed                         time.Duration
}

func (w window) rate(translated bool) float64 {
	n := w.Untranslated
	if translated {
		n = w.Translated
	}
	return float64(n) / w.Elapsed.Seconds()
}

// template is the frame the live-frames pages start from; the generator rewrites
// every header byte of every packet, the payload stays as it is here.
func template() ([]byte, uint32) {
	frame := make([]byte, 14+20+int(trafficFrameLayoutFRAME_UDP_LEN))
	payload := frame[14+20+8:]
	for i := range payload {
		payload[i] = byte(0x5a + i)
	}
	var sum uint32
	for i := 0; i+1 < len(payload); i += 2 {
		// The BPF side adds 16-bit words as loaded on a little-endian CPU.
		sum += uint32(binary.NativeEndian.Uint16(payload[i:]))
	}
	if len(payload)%2 == 1 {
		var last [2]byte
		last[0] = payload[len(payload)-1]
		sum += uint32(binary.NativeEndian.Uint16(last[:]))
	}
	return frame, sum
}

func (b *bed) sinkCounts() ([trafficSinkClassSINK_MAX]uint64, error) {
	var out [trafficSinkClassSINK_MAX]uint64
	for c := range out {
		var perCPU []uint64
		if err := b.objs.SinkCounts.Lookup(uint32(c), &perCPU); err != nil {
			return out, fmt.Errorf("read sink counter %d: %w", c, err)
		}
		for _, n := range perCPU {
			out[c] += n
		}
	}
	return out, nil
}

// generate sends packets frames of the flows at pps (0: as fast as the generator
// can) and returns what the sink counted.
func (b *bed) generate(f flows, pps float64, packets uint64) (window, error) {
	frame, payloadSum := template()
	if f.Inbound {
		// 12,800 flows over 16 EIPs: each client port always meets the same EIP.
		cfg := trafficGenConfig{
			SrcBase: ipBE(clientBase), DstBase: ipBE(eipBase), SrcHosts: f.Hosts, DstHosts: inboundEIPs,
			SrcPorts: f.Ports, PortBase: f.base(), DstPort: flowDstPort, PayloadSum: payloadSum,
		}
		copy(cfg.SrcMac[:], b.sinkMAC)
		copy(cfg.DstMac[:], b.gwUpMAC)
		return b.send(b.sink, b.sinkIf, cfg, frame, pps, packets)
	}
	cfg := trafficGenConfig{
		SrcBase: ipBE(srcBase), DstBase: ipBE(flowDst), SrcHosts: f.Hosts, DstHosts: 1,
		SrcPorts: f.Ports, PortBase: f.base(), DstPort: flowDstPort, PayloadSum: payloadSum,
	}
	copy(cfg.SrcMac[:], b.genIf.HardwareAddr)
	copy(cfg.DstMac[:], b.gwVPCMAC)
	return b.send(b.gen, b.genIf.Index, cfg, frame, pps, packets)
}

// reply sends, from the sink's side, one packet back to every flow of f as the EIP
// made it (one host, so the NAT kept the source ports): what makes the kernel's
// connection tracking call the flows established.
func (b *bed) reply(f flows, eip string) error {
	frame, payloadSum := template()
	cfg := trafficGenConfig{
		SrcBase: ipBE(flowDst), DstBase: ipBE(eip), SrcHosts: 1, DstHosts: 1, SrcPorts: f.Ports, PortBase: f.base(),
		DstPort: flowDstPort, PayloadSum: payloadSum, WalkDstPort: 1, IntervalNs: 10_000,
	}
	copy(cfg.SrcMac[:], b.sinkMAC)
	copy(cfg.DstMac[:], b.gwUpMAC)
	_, err := b.send(b.sink, b.sinkIf, cfg, frame, 0, uint64(f.Ports))
	return err
}

// send runs the generator on a host's interface and returns what the sink counted.
func (b *bed) send(h *testbed.Host, ifindex int, cfg trafficGenConfig, frame []byte, pps float64, packets uint64) (window, error) {
	if pps > 0 {
		cfg.IntervalNs = uint64(1e9 / pps)
	}
	if err := b.objs.GenConfigs.Put(uint32(0), cfg); err != nil {
		return window{}, fmt.Errorf("configure generator: %w", err)
	}
	if err := b.objs.GenStates.Put(uint32(0), trafficGenState{}); err != nil {
		return window{}, fmt.Errorf("reset generator: %w", err)
	}
	ctx, err := progrun.XDPContext(b.types, uint32(ifindex), len(frame))
	if err != nil {
		return window{}, err
	}
	before, err := b.sinkCounts()
	if err != nil {
		return window{}, err
	}
	var elapsed time.Duration
	err = h.Do(func() error {
		// The thread is locked and in gen's namespace for the whole run.
		var set unix.CPUSet
		set.Set(genCPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin generator: %w", err)
		}
		start := time.Now()
		_, err := b.objs.Gen.Run(&ebpf.RunOptions{
			Data: frame, Context: ctx, Repeat: uint32(packets), Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		})
		elapsed = time.Since(start)
		runtime.KeepAlive(frame)
		return err
	})
	if err != nil {
		return window{}, fmt.Errorf("generator: %w", err)
	}
	// Let the gateway drain what is queued before counting.
	time.Sleep(30 * time.Millisecond)
	after, err := b.sinkCounts()
	if err != nil {
		return window{}, err
	}
	var st trafficGenState
	if err := b.objs.GenStates.Lookup(uint32(0), &st); err != nil {
		return window{}, err
	}
	d := func(c trafficSinkClass) uint64 { return after[c] - before[c] }
	return window{
		Sent: st.Sent, Late: st.Late, Elapsed: elapsed,
		Translated: d(trafficSinkClassSINK_TRANSLATED), Untranslated: d(trafficSinkClassSINK_UNTRANSLATED),
		Other: d(trafficSinkClassSINK_OTHER), Checked: d(trafficSinkClassSINK_CHECKED),
		BadChecksum: d(trafficSinkClassSINK_BAD_CHECKSUM),
	}, nil
}
