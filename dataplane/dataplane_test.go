package dataplane

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/eipgw/eipgw/internal/testbed"
)

func TestReasonNamesMatchEnum(t *testing.T) {
	if len(reasonNames) != int(ReasonMax) {
		t.Fatalf("reasonNames has %d names, enum reason has %d values", len(reasonNames), ReasonMax)
	}
	seen := map[string]bool{}
	for r := Reason(0); r < ReasonMax; r++ {
		name := reasonNames[r]
		if name == "" || seen[name] {
			t.Errorf("reason %d has a missing or repeated name %q", r, name)
		}
		seen[name] = true
		// Every reason has a kind in bpf/lib/stats.h's reason_kinds, and its name says it.
		switch r.kind() {
		case natReasonKindREASON_KIND_PASS, natReasonKindREASON_KIND_HELD, natReasonKindREASON_KIND_DROP:
		default:
			t.Errorf("reason %s has no kind in reason_kinds", name)
		}
		if r.IsDrop() != (name[:5] == "drop_") {
			t.Errorf("reason %s: IsDrop()=%v disagrees with its name", name, r.IsDrop())
		}
	}
	// Get refuses a size mismatch: REASON_SLOTS and reasonSlots agree.
	if _, err := reasonKinds(); err != nil {
		t.Fatal(err)
	}
}

func pinDir(t *testing.T) string {
	t.Helper()
	testbed.Require(t)
	fs, err := testbed.MountBPFFS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fs.Close() })
	return filepath.Join(fs.Dir, "eipgw")
}

func mustOpen(t *testing.T, cfg Config) *Dataplane {
	t.Helper()
	dp, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return dp
}

var (
	eipA, privA = netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("10.0.1.1")
	eipB, privB = netip.MustParseAddr("203.0.113.2"), netip.MustParseAddr("10.0.1.2")
)

func TestAdoptKeepsBindingsAndCounters(t *testing.T) {
	cfg := Config{PinDir: pinDir(t), MaxBindings: 64}
	dp := mustOpen(t, cfg)
	if dp.Adopted() {
		t.Fatal("a fresh pin directory was reported as adopted")
	}
	if err := dp.SetBinding(eipA, privA); err != nil {
		t.Fatal(err)
	}
	// Count something in A's slot, as traffic would.
	var b natBinding
	if err := dp.objs.InboundBindings.Lookup(mustKey(t, eipA), &b); err != nil {
		t.Fatal(err)
	}
	n, _ := ebpf.PossibleCPU()
	perCPU := make([]natEipCounters, n)
	perCPU[0].InPackets = 5
	if err := dp.objs.CountersBySlot.Put(b.CounterSlot, perCPU); err != nil {
		t.Fatal(err)
	}
	dp.Close()

	dp = mustOpen(t, cfg)
	defer dp.Close()
	if !dp.Adopted() {
		t.Fatal("pins left by the first handle were not adopted")
	}
	got, err := dp.Bindings()
	if err != nil || len(got) != 1 || got[0] != (Binding{EIP: eipA, Private: privA}) {
		t.Fatalf("bindings after adoption: %v, %v", got, err)
	}
	if c, err := dp.Counters(eipA); err != nil || c.InPackets != 5 {
		t.Fatalf("counters after adoption: %+v, %v", c, err)
	}
	// A new binding must not reuse the adopted binding's counter slot.
	if err := dp.SetBinding(eipB, privB); err != nil {
		t.Fatal(err)
	}
	if c, err := dp.Counters(eipB); err != nil || c != (EIPCounters{}) {
		t.Fatalf("a new binding starts with counters %+v, %v", c, err)
	}
	if c, _ := dp.Counters(eipA); c.InPackets != 5 {
		t.Fatalf("binding B disturbed A's counters: %+v", c)
	}
}

func mustKey(t *testing.T, a netip.Addr) uint32 {
	k, err := beKey(a)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestIncompatiblePinsRefused(t *testing.T) {
	dir := pinDir(t)
	dp := mustOpen(t, Config{PinDir: dir, MaxBindings: 64})
	if err := dp.SetBinding(eipA, privA); err != nil {
		t.Fatal(err)
	}
	dp.Close()

	if _, err := Open(Config{PinDir: dir, MaxBindings: 128}); !errors.Is(err, ErrIncompatiblePins) {
		t.Fatalf("opening pins of another capacity: %v, want ErrIncompatiblePins", err)
	}
	// A marker from another build is refused too.
	abi, err := ebpf.LoadPinnedMap(filepath.Join(dir, abiMapName), nil)
	if err != nil {
		t.Fatal(err)
	}
	var other [32]byte
	other[0] = 1
	if err := abi.Put(uint32(0), other); err != nil {
		t.Fatal(err)
	}
	abi.Close()
	if _, err := Open(Config{PinDir: dir, MaxBindings: 64}); !errors.Is(err, ErrIncompatiblePins) {
		t.Fatalf("opening pins with another layout marker: %v, want ErrIncompatiblePins", err)
	}
	// Refusing must not have touched the state.
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, natMapInboundBindings), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var b natBinding
	if err := m.Lookup(mustKey(t, eipA), &b); err != nil || b.Addr != mustKey(t, privA) {
		t.Fatalf("binding after refused opens: %+v, %v", b, err)
	}
}

func TestSecondOwnerIsRefused(t *testing.T) {
	cfg := Config{PinDir: pinDir(t), MaxBindings: 64}
	dp := mustOpen(t, cfg)
	if _, err := Open(cfg); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Open while the first holds the pins: %v, want ErrBusy", err)
	}
	dp.Close()
	dp = mustOpen(t, cfg)
	dp.Close()
}

// TestRemoveRefusesAHeldDataplane: Remove leaves a dataplane that a process holds as
// it is, bindings and pins, with ErrBusy; once the holder closed it, Remove deletes
// it, and removing it again is no error.
func TestRemoveRefusesAHeldDataplane(t *testing.T) {
	cfg := Config{PinDir: pinDir(t), MaxBindings: 64}
	dp := mustOpen(t, cfg)
	if err := dp.SetBinding(eipA, privA); err != nil {
		t.Fatal(err)
	}
	if err := Remove(cfg.PinDir); !errors.Is(err, ErrBusy) {
		t.Fatalf("Remove while the dataplane is held: %v, want ErrBusy", err)
	}
	dp.Close()
	dp = mustOpen(t, cfg)
	if !dp.Adopted() {
		t.Fatal("the refused Remove deleted the pins")
	}
	if got, err := dp.Bindings(); err != nil || len(got) != 1 || got[0] != (Binding{EIP: eipA, Private: privA}) {
		t.Fatalf("bindings after the refused Remove: %v, %v", got, err)
	}
	dp.Close()
	if err := Remove(cfg.PinDir); err != nil {
		t.Fatalf("Remove of a dataplane nobody holds: %v", err)
	}
	if _, err := os.Stat(cfg.PinDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("pin directory after Remove: %v", err)
	}
	if err := Remove(cfg.PinDir); err != nil {
		t.Fatalf("Remove of a removed dataplane: %v", err)
	}
}

func TestHalfMadeBindingIsRemovedOnAdoption(t *testing.T) {
	cfg := Config{PinDir: pinDir(t), MaxBindings: 64}
	dp := mustOpen(t, cfg)
	// What a process that died between SetBinding's two writes leaves: the outbound
	// half only.
	if err := dp.objs.OutboundBindings.Put(mustKey(t, privA), natBinding{Addr: mustKey(t, eipA), CounterSlot: 3}); err != nil {
		t.Fatal(err)
	}
	if err := dp.SetBinding(eipB, privB); err != nil {
		t.Fatal(err)
	}
	dp.Close()
	dp = mustOpen(t, cfg)
	defer dp.Close()
	var b natBinding
	if err := dp.objs.OutboundBindings.Lookup(mustKey(t, privA), &b); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Fatalf("half-made binding survived adoption: %+v, %v", b, err)
	}
	if err := dp.objs.OutboundBindings.Lookup(mustKey(t, privB), &b); err != nil {
		t.Fatalf("a whole binding was removed: %v", err)
	}
}

func TestBindingRules(t *testing.T) {
	dp := mustOpen(t, Config{PinDir: pinDir(t), MaxBindings: 2})
	defer dp.Close()
	v6 := netip.MustParseAddr("2001:db8::1")
	if err := dp.SetBinding(v6, privA); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("IPv6 EIP: %v, want ErrNotIPv4", err)
	}
	if err := dp.SetBinding(eipA, v6); !errors.Is(err, ErrNotIPv4) {
		t.Errorf("IPv6 private address: %v, want ErrNotIPv4", err)
	}
	if err := dp.SetBinding(eipA, privA); err != nil {
		t.Fatal(err)
	}
	if err := dp.SetBinding(eipA, privA); err != nil {
		t.Errorf("setting the same binding again: %v", err)
	}
	if err := dp.SetBinding(eipB, privA); !errors.Is(err, ErrPrivateBound) {
		t.Errorf("a second EIP for one private address: %v, want ErrPrivateBound", err)
	}
	if err := dp.SetBinding(eipB, privB); err != nil {
		t.Fatal(err)
	}
	if err := dp.SetBinding(netip.MustParseAddr("203.0.113.3"), netip.MustParseAddr("10.0.1.3")); !errors.Is(err, ErrFull) {
		t.Errorf("a third binding with room for two: %v, want ErrFull", err)
	}
	// Moving A to another private address keeps its slot and frees the old half.
	privC := netip.MustParseAddr("10.0.1.3")
	if err := dp.SetBinding(eipA, privC); err != nil {
		t.Fatalf("moving a binding: %v", err)
	}
	var b natBinding
	if err := dp.objs.OutboundBindings.Lookup(mustKey(t, privA), &b); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("the moved binding's old outbound half is still there: %v", err)
	}
	if err := dp.objs.OutboundBindings.Lookup(mustKey(t, privC), &b); err != nil || b.Addr != mustKey(t, eipA) {
		t.Errorf("the moved binding's new outbound half: %+v, %v", b, err)
	}
	if err := dp.DeleteBinding(eipB); err != nil {
		t.Fatal(err)
	}
	if err := dp.DeleteBinding(eipB); !errors.Is(err, ErrNotBound) {
		t.Errorf("deleting twice: %v, want ErrNotBound", err)
	}
	if _, err := dp.Counters(eipB); !errors.Is(err, ErrNotBound) {
		t.Errorf("counters of a deleted binding: %v, want ErrNotBound", err)
	}
	// The freed slot is usable again.
	if err := dp.SetBinding(eipB, privB); err != nil {
		t.Errorf("binding again after a delete: %v", err)
	}
}

func TestReadOnlyBesideTheOwner(t *testing.T) {
	cfg := Config{PinDir: pinDir(t), MaxBindings: 64}
	if _, err := Open(Config{PinDir: cfg.PinDir, MaxBindings: 64, ReadOnly: true}); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("read-only open of nothing: %v, want ErrNotPinned", err)
	}
	owner := mustOpen(t, cfg)
	defer owner.Close()
	if err := owner.SetBinding(eipA, privA); err != nil {
		t.Fatal(err)
	}
	ro := mustOpen(t, Config{PinDir: cfg.PinDir, MaxBindings: 64, ReadOnly: true})
	defer ro.Close()
	if bs, err := ro.Bindings(); err != nil || len(bs) != 1 {
		t.Fatalf("read-only bindings: %v, %v", bs, err)
	}
	if err := ro.SetBinding(eipB, privB); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only SetBinding: %v, want ErrReadOnly", err)
	}
	if err := ro.DeleteBinding(eipA); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only DeleteBinding: %v, want ErrReadOnly", err)
	}
	if _, err := ro.Attach("lo", RoleUplink, HookXDP); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Attach: %v, want ErrReadOnly", err)
	}
}

func TestProgramStatsAndMemory(t *testing.T) {
	dp := mustOpen(t, Config{PinDir: pinDir(t), MaxBindings: 64})
	defer dp.Close()
	stats, err := dp.ProgramStats()
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 4 {
		t.Fatalf("stats for %d programs, want 4", len(stats))
	}
	// The verifier walks at most a million instructions a program. A change that
	// leaves it states it cannot prune multiplies that walk long before it fails to
	// load (an inlined lookup once took xdp_vpc from 84,103 to 669,868, and the
	// load from 0.8 to 2.5 s): a quarter of the budget is the alarm.
	const verifierAlarm = 250000
	for _, s := range stats {
		if s.VerifiedInstructions == 0 || s.Instructions == 0 || s.JitedBytes == 0 {
			t.Errorf("program %s: %+v", s.Name, s)
		}
		if s.VerifiedInstructions > verifierAlarm {
			t.Errorf("program %s: the verifier walked %d instructions, over %d", s.Name, s.VerifiedInstructions, verifierAlarm)
		}
	}
	small, err := dp.MapMemory()
	if err != nil {
		t.Fatal(err)
	}
	dp.Close()
	big := mustOpen(t, Config{PinDir: pinDir(t), MaxBindings: 4096})
	defer big.Close()
	large, err := big.MapMemory()
	if err != nil {
		t.Fatal(err)
	}
	if small == 0 || large <= small {
		t.Errorf("map memory with 64 bindings %d, with 4096 %d: want it to grow with capacity", small, large)
	}
}

func TestCutThroughRules(t *testing.T) {
	dp := mustOpen(t, Config{PinDir: pinDir(t), MaxBindings: 4})
	defer dp.Close()
	mac := []byte{2, 0, 0, 0, 0, 1}
	if err := dp.SetBinding(eipA, privA); err != nil {
		t.Fatal(err)
	}
	if err := dp.SetCutThrough(eipA, mac); !errors.Is(err, ErrCutThrough) {
		t.Errorf("cut-through on a 1:1 EIP: %v, want ErrCutThrough", err)
	}
	if err := dp.SetCutThrough(eipB, mac[:4]); err == nil {
		t.Error("a 4-byte MAC was accepted")
	}
	if err := dp.SetCutThrough(eipB, mac); err != nil {
		t.Fatal(err)
	}
	if err := dp.SetBinding(eipB, privB); !errors.Is(err, ErrCutThrough) {
		t.Errorf("1:1 on a cut-through EIP: %v, want ErrCutThrough", err)
	}
	if c, err := dp.Counters(eipB); err != nil || c != (EIPCounters{}) {
		t.Errorf("counters of a new cut-through EIP: %+v, %v", c, err)
	}
	cts, err := dp.CutThroughs()
	if err != nil || len(cts) != 1 || cts[0].EIP != eipB {
		t.Errorf("cut-through list: %v, %v", cts, err)
	}
	if err := dp.DeleteCutThrough(eipB); err != nil {
		t.Fatal(err)
	}
	if err := dp.DeleteCutThrough(eipB); !errors.Is(err, ErrNotBound) {
		t.Errorf("deleting twice: %v", err)
	}
	// Its counter slot is free again: room for three more with four slots and A.
	for i, e := range []string{"203.0.113.50", "203.0.113.51", "203.0.113.52"} {
		if err := dp.SetCutThrough(netip.MustParseAddr(e), mac); err != nil {
			t.Errorf("cut-through %d: %v", i, err)
		}
	}
}

// TestReaderAdoptsPinnedCapacities: a reader needs no flag to open the pins of an owner
// configured with other capacities: it takes them from the pins.
func TestReaderAdoptsPinnedCapacities(t *testing.T) {
	dir := pinDir(t)
	owner := mustOpen(t, Config{PinDir: dir, MaxBindings: 64, MaxSessions: 4096, MaxSources: 128})
	defer owner.Close()
	ro, err := Open(Config{PinDir: dir, ReadOnly: true})
	if err != nil {
		t.Fatalf("a reader with default capacities: %v", err)
	}
	defer ro.Close()
	if got, want := ro.Capacities(), owner.Capacities(); got != want {
		t.Errorf("the reader sees capacities %+v, the owner has %+v", got, want)
	}
	if owner.Capacities().Sessions != 4096 || owner.Capacities().Bindings != 64 || owner.Capacities().Sources != 128 {
		t.Errorf("owner capacities %+v", owner.Capacities())
	}
}

// TestAddBindings: many new bindings in a few batches carry traffic like ones set one
// by one, each with its own zeroed counters; a batch that meets a bound address is
// refused without touching the binding it met.
func TestAddBindings(t *testing.T) {
	l := newLabSized(t, 8192)
	var bs []Binding
	eip, priv := netip.MustParseAddr("198.51.100.0"), netip.MustParseAddr("172.16.0.0")
	for range 5000 {
		eip, priv = eip.Next(), priv.Next()
		bs = append(bs, Binding{EIP: eip, Private: priv})
	}
	// Every slot holds counts, as a slot freed by an unbinding does.
	ncpu, err := ebpf.PossibleCPU()
	must(t, err)
	var slotKeys []uint32
	for slot := range uint32(8192) {
		slotKeys = append(slotKeys, slot)
	}
	used := make([]natEipCounters, ncpu*len(slotKeys))
	for i := range used {
		used[i] = natEipCounters{InPackets: 7, InBytes: 700, OutPackets: 3, OutBytes: 300}
	}
	if _, err := l.dp.objs.CountersBySlot.BatchUpdate(slotKeys, used, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.dp.AddBindings(bs); err != nil {
		t.Fatal(err)
	}
	have, err := l.dp.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSortedFunc(have, func(a, b Binding) int { return a.EIP.Compare(b.EIP) }) {
		t.Error("Bindings are not sorted by EIP")
	}
	got := map[netip.Addr]netip.Addr{}
	for _, b := range have {
		got[b.EIP] = b.Private
	}
	slots := map[uint32]bool{}
	for _, b := range bs {
		if got[b.EIP] != b.Private {
			t.Fatalf("%v bound to %v, want %v", b.EIP, got[b.EIP], b.Private)
		}
		var out natBinding
		if err := l.dp.objs.OutboundBindings.Lookup(mustKey(t, b.Private), &out); err != nil || out.Addr != mustKey(t, b.EIP) {
			t.Fatalf("outbound half of %v: %+v %v", b.EIP, out, err)
		}
		if slots[out.CounterSlot] {
			t.Fatalf("slot %d given twice", out.CounterSlot)
		}
		slots[out.CounterSlot] = true
		if c, err := l.dp.Counters(b.EIP); err != nil || c != (EIPCounters{}) {
			t.Fatalf("counters of %v: %+v %v", b.EIP, c, err)
		}
	}

	// A batch meeting the lab's bound privVM1 goes in not at all, and privVM1 keeps
	// its EIP.
	clash := []Binding{{EIP: netip.MustParseAddr("203.0.113.250"), Private: netip.MustParseAddr("172.16.200.1")},
		{EIP: netip.MustParseAddr("203.0.113.251"), Private: privVM1}}
	if err := l.dp.AddBindings(clash); err == nil {
		t.Fatal("a batch with a bound private address was accepted")
	}
	have, err = l.dp.Bindings()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range have {
		if b.EIP == clash[0].EIP || b.EIP == clash[1].EIP {
			t.Errorf("%v went in from a refused batch", b.EIP)
		}
		if b.Private == privVM1 && b.EIP != eipVM1 {
			t.Errorf("privVM1 now behind %v", b.EIP)
		}
	}
	var out natBinding
	if err := l.dp.objs.OutboundBindings.Lookup(mustKey(t, privVM1), &out); err != nil || out.Addr != mustKey(t, eipVM1) {
		t.Errorf("privVM1's outbound half after the refused batch: %+v %v", out, err)
	}
	if err := l.dp.objs.OutboundBindings.Lookup(mustKey(t, clash[0].Private), &out); err == nil {
		t.Errorf("the refused batch left an outbound half for %v", clash[0].Private)
	}
}
