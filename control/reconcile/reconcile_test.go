package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/desired"
)

type memStore struct {
	tx         model.MemTx
	updates    int   // read-write transactions run
	failCommit error // what the next commit fails with, after fn succeeded
}

func (m *memStore) View(fn func(model.Tx) error) error { return fn(m.tx) }
func (m *memStore) Update(fn func(model.Tx) error) error {
	m.updates++
	c := m.tx.Clone()
	if err := fn(c); err != nil {
		return err
	}
	if err := m.failCommit; err != nil {
		m.failCommit = nil
		return err
	}
	m.tx = c
	return nil
}

type fakeDP struct {
	onSet func(eip netip.Addr) // runs inside SetBinding, as a concurrent API write would
	b     map[netip.Addr]netip.Addr
	cut   map[netip.Addr]string // EIP -> ENI MAC
	src   map[string]bool       // desired.Source.String(): address@MAC
	calls int
	lists int // whole-table reads: Bindings, CutThroughs, Sources
	fail  error
}

func (f *fakeDP) Bindings() ([]desired.Binding, error) {
	f.lists++
	var out []desired.Binding
	for k, v := range f.b {
		out = append(out, desired.Binding{EIP: k, Private: v})
	}
	return out, nil
}

// SetBinding behaves as dataplane.SetBinding: a private address has one EIP, and
// an EIP bound elsewhere moves.
func (f *fakeDP) SetBinding(e, p netip.Addr) error {
	if f.onSet != nil {
		f.onSet(e)
	}
	f.calls++
	if f.fail != nil {
		return f.fail
	}
	for k, v := range f.b {
		if v == p && k != e {
			return errors.New("private address bound to another EIP")
		}
	}
	f.b[e] = p
	return nil
}

func (f *fakeDP) DeleteBinding(e netip.Addr) error { f.calls++; delete(f.b, e); return nil }

func (f *fakeDP) BindingOf(e netip.Addr) (netip.Addr, bool, error) {
	p, ok := f.b[e]
	return p, ok, nil
}

func (f *fakeDP) CutThroughs() ([]desired.CutThrough, error) {
	f.lists++
	var out []desired.CutThrough
	for k, v := range f.cut {
		mac, err := net.ParseMAC(v)
		if err != nil {
			return nil, err
		}
		out = append(out, desired.CutThrough{EIP: k, ENIMAC: mac})
	}
	return out, nil
}

func (f *fakeDP) SetCutThrough(e netip.Addr, mac net.HardwareAddr) error {
	f.calls++
	if f.cut == nil {
		f.cut = map[netip.Addr]string{}
	}
	f.cut[e] = mac.String()
	return nil
}

func (f *fakeDP) DeleteCutThrough(e netip.Addr) error { f.calls++; delete(f.cut, e); return nil }

func (f *fakeDP) Sources() ([]desired.Source, error) {
	f.lists++
	var out []desired.Source
	for s := range f.src {
		addr, mac, _ := strings.Cut(s, "@")
		hw, err := net.ParseMAC(mac)
		if err != nil {
			return nil, err
		}
		out = append(out, desired.Source{Addr: netip.MustParseAddr(addr), MAC: hw})
	}
	return out, nil
}

func (f *fakeDP) SetSource(s desired.Source) error {
	f.calls++
	if f.src == nil {
		f.src = map[string]bool{}
	}
	f.src[s.String()] = true
	return nil
}

func (f *fakeDP) DeleteSource(s desired.Source) error {
	f.calls++
	delete(f.src, s.String())
	return nil
}

type fakeRoutes struct{ eips []netip.Addr }

func (r *fakeRoutes) Sync(eips []netip.Addr) error { r.eips = eips; return nil }

// routedWorld is an empty store and dataplane, and a reconciler over them that keeps
// the gateway's routes too.
func routedWorld() (*memStore, *fakeDP, *fakeRoutes, *Reconciler) {
	s := &memStore{tx: model.MemTx{}}
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{}}
	routes := &fakeRoutes{}
	return s, dp, routes, &Reconciler{Store: s, Dataplane: dp, Routes: routes}
}

func TestReconcileCutThrough(t *testing.T) {
	s, dp, routes, r := routedWorld()
	do(t, s, "CreateNetworkInterface", "NetworkInterfaceId", "eni-1", "VpcId", "v", "PrimaryIpAddress", "10.0.3.1", "MacAddress", "02:00:00:00:00:31")
	ids := allocate(t, s, 1)
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "eni-1", "InstanceType", "NetworkInterface", "Mode", "BINDED")
	res, err := r.Reconcile(context.Background())
	// The ENI's address with its MAC, and the cut-through EIP.
	if err != nil || res.Added != 2 || res.Settled != 1 || len(dp.cut) != 1 || len(routes.eips) != 1 || len(dp.b) != 0 {
		t.Fatalf("cut-through pass: %v, %v, dataplane %v, routes %v", res, err, dp.cut, routes.eips)
	}
	for _, mac := range dp.cut {
		if mac != "02:00:00:00:00:31" {
			t.Errorf("cut-through MAC %q", mac)
		}
	}
	do(t, s, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "eni-1")
	if res, err = r.Reconcile(context.Background()); err != nil || res.Removed != 1 || len(dp.cut) != 0 || len(routes.eips) != 0 {
		t.Fatalf("disassociating pass: %v, %v, dataplane %v, routes %v", res, err, dp.cut, routes.eips)
	}
}

// TestReconcileSources: the dataplane translates a VPC address only from the MAC it is
// registered with: an instance's primary ENI, a HaVip from each instance it is
// associated with, a load balancer's VIP from its MAC; a stale source goes.
func TestReconcileSources(t *testing.T) {
	s := &memStore{tx: model.MemTx{}}
	stale := "10.0.9.9@02:00:00:00:09:09"
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{}, src: map[string]bool{stale: true}}
	r := &Reconciler{Store: s, Dataplane: dp}
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11", "MacAddress", "02:00:00:00:01:11")
	do(t, s, "RegisterInstance", "InstanceId", "i-2", "VpcId", "v", "PrivateIpAddress", "10.0.1.12", "MacAddress", "02:00:00:00:01:12")
	do(t, s, "RegisterInstance", "InstanceId", "i-nomac", "VpcId", "v", "PrivateIpAddress", "10.0.1.13")
	do(t, s, "CreateHaVip", "HaVipId", "havip-1", "VpcId", "v", "IpAddress", "10.0.1.200")
	do(t, s, "AssociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-1")
	do(t, s, "AssociateHaVip", "HaVipId", "havip-1", "InstanceId", "i-2")
	do(t, s, "RegisterLoadBalancer", "LoadBalancerId", "lb-1", "VpcId", "v", "Address", "10.0.2.100", "MacAddress", "02:00:00:00:02:AA")
	if _, err := r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	src := func(addr, mac string) string { return addr + "@" + strings.ToLower(mac) }
	want := map[string]bool{
		src("10.0.1.11", "02:00:00:00:01:11"): true, src("10.0.1.12", "02:00:00:00:01:12"): true,
		src("10.0.1.200", "02:00:00:00:01:11"): true, src("10.0.1.200", "02:00:00:00:01:12"): true,
		src("10.0.2.100", "02:00:00:00:02:aa"): true,
	}
	if len(dp.src) != len(want) {
		t.Errorf("sources %v, want %v", dp.src, want)
	}
	for w := range want {
		if !dp.src[w] {
			t.Errorf("source %s missing; have %v", w, dp.src)
		}
	}
	// A later registration reaches the dataplane on the next pass.
	do(t, s, "RegisterInstance", "InstanceId", "i-4", "VpcId", "v", "PrivateIpAddress", "10.0.1.14", "MacAddress", "02:00:00:00:01:14")
	if _, err := r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !dp.src[src("10.0.1.14", "02:00:00:00:01:14")] || len(dp.src) != len(want)+1 {
		t.Errorf("after a new registration: %v", dp.src)
	}
}

// TestSettleOnlyWhatThePassApplied: an EIP disassociated while a pass runs (after it
// read the desired state) is not settled by that pass: it stays Unassociating while its
// binding is still in the dataplane, and the next pass finishes it.
func TestSettleOnlyWhatThePassApplied(t *testing.T) {
	s := &memStore{tx: model.MemTx{}}
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{}}
	r := &Reconciler{Store: s, Dataplane: dp}
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11")
	do(t, s, "RegisterInstance", "InstanceId", "i-2", "VpcId", "v", "PrivateIpAddress", "10.0.1.12")
	ids := allocate(t, s, 2)
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	if _, err := r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	do(t, s, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")
	dp.onSet = func(netip.Addr) {
		dp.onSet = nil
		do(t, s, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	}
	if _, err := r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(dp.b) != 2 {
		t.Fatalf("the pass applied %v, want both bindings (the disassociation came after it read)", dp.b)
	}
	if st := eipStatus(t, s, ids[0]); st != model.StatusUnassociating {
		t.Errorf("the EIP disassociated during the pass is %s while still bound; want Unassociating", st)
	}
	if st := eipStatus(t, s, ids[1]); st != model.StatusInUse {
		t.Errorf("the EIP the pass bound is %s, want InUse", st)
	}
	if _, err := r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := eipStatus(t, s, ids[0]); st != model.StatusAvailable || len(dp.b) != 1 {
		t.Errorf("after the next pass: %s, bindings %v", st, dp.b)
	}
}

func eipStatus(t *testing.T, s *memStore, id string) string {
	t.Helper()
	var e model.EIP
	if err := json.Unmarshal([]byte(status(t, s)[id]), &e); err != nil {
		t.Fatalf("EIP %s: %v", id, err)
	}
	return e.Status
}

func do(t *testing.T, s *memStore, action string, kv ...string) {
	t.Helper()
	svc := &model.Service{Region: "r", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	p := model.Params{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	err := s.Update(func(tx model.Tx) error {
		_, err := svc.Do(tx, "ak", action, p, time.Now())
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", action, err)
	}
}

func status(t *testing.T, s *memStore) map[string]string {
	out := map[string]string{}
	_ = s.tx.ForEach(model.KindEIP, func(id string, raw []byte) error {
		out[id] = string(raw)
		return nil
	})
	return out
}

func TestReconcileAppliesOnlyTheDifference(t *testing.T) {
	s := &memStore{tx: model.MemTx{}}
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{
		// Left from before: a binding the store no longer has.
		netip.MustParseAddr("203.0.113.200"): netip.MustParseAddr("10.9.9.9"),
	}}
	r := &Reconciler{Store: s, Dataplane: dp}
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11")
	do(t, s, "RegisterInstance", "InstanceId", "i-2", "VpcId", "v", "PrivateIpAddress", "10.0.1.12")
	ids := allocate(t, s, 2)
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	do(t, s, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")

	res, err := r.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 2 || res.Removed != 1 || res.Settled != 2 {
		t.Errorf("first pass: %v", res)
	}
	// Nothing to do the second time: not a single dataplane call.
	dp.calls = 0
	if res, err = r.Reconcile(context.Background()); err != nil || res.Changed() || dp.calls != 0 {
		t.Errorf("second pass: %v, %v, %d dataplane calls", res, err, dp.calls)
	}
	// Disassociating takes the binding out in the next pass, then the EIP is free
	// for another instance.
	do(t, s, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	do(t, s, "UnassociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")
	if res, err = r.Reconcile(context.Background()); err != nil || res.Removed != 2 || res.Settled != 2 || len(dp.b) != 0 {
		t.Fatalf("disassociating pass: %v, %v, dataplane %v", res, err, dp.b)
	}
	do(t, s, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-1")
	if res, err = r.Reconcile(context.Background()); err != nil || res.Added != 1 {
		t.Fatalf("reassociating pass: %v, %v", res, err)
	}
	// Drift: the dataplane translates the EIP to another address. It is moved back.
	for eip := range dp.b {
		dp.b[eip] = netip.MustParseAddr("10.0.1.99")
	}
	if res, err = r.Reconcile(context.Background()); err != nil || res.Moved != 1 || res.Added != 0 {
		t.Fatalf("drift pass: %v, %v", res, err)
	}
	for _, priv := range dp.b {
		if priv != netip.MustParseAddr("10.0.1.11") {
			t.Errorf("after repairing drift: %v", dp.b)
		}
	}
}

func TestFailedApplyLeavesStatusesAsTheyAre(t *testing.T) {
	s := &memStore{tx: model.MemTx{}}
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{}, fail: errors.New("map full")}
	r := &Reconciler{Store: s, Dataplane: dp}
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11")
	ids := allocate(t, s, 1)
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	before := status(t, s)
	if _, err := r.Reconcile(context.Background()); err == nil {
		t.Fatal("a failing dataplane did not fail the pass")
	}
	if after := status(t, s); after[ids[0]] != before[ids[0]] {
		t.Errorf("status changed although the dataplane failed")
	}
	dp.fail = nil
	if res, err := r.Reconcile(context.Background()); err != nil || res.Settled != 1 {
		t.Errorf("retry: %v, %v", res, err)
	}
}

func allocate(t *testing.T, s *memStore, n int) []string {
	t.Helper()
	before := map[string]bool{}
	for id := range status(t, s) {
		before[id] = true
	}
	for i := 0; i < n; i++ {
		do(t, s, "AllocateEipAddress")
	}
	var ids []string
	for id := range status(t, s) {
		if !before[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) != n {
		t.Fatalf("allocated %d, want %d", len(ids), n)
	}
	return ids
}

// batchDP is a fakeDP that adds new bindings in batches, or refuses them all.
type batchDP struct {
	*fakeDP
	batches int
	refuse  bool
}

func (b *batchDP) AddBindings(bs []desired.Binding) error {
	if b.refuse {
		return errors.New("refused")
	}
	b.batches++
	for _, x := range bs {
		if _, ok := b.b[x.EIP]; ok {
			return errors.New("bound already")
		}
		b.b[x.EIP] = x.Private
	}
	return nil
}

// TestReconcileBatchesNewBindings: a pass with many new bindings hands them over in
// one batch; a refused batch falls back to one at a time; a few go one at a time.
func TestReconcileBatchesNewBindings(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		s := &memStore{tx: model.MemTx{}}
		dp := &batchDP{fakeDP: &fakeDP{b: map[netip.Addr]netip.Addr{}}, refuse: refuse}
		r := &Reconciler{Store: s, Dataplane: dp}
		const n = 100
		ids := allocate(t, s, n)
		for i := range n {
			id := fmt.Sprintf("i-%d", i)
			do(t, s, "RegisterInstance", "InstanceId", id, "VpcId", "v", "PrivateIpAddress", fmt.Sprintf("10.0.%d.%d", i/200, 1+i%200))
			do(t, s, "AssociateEipAddress", "AllocationId", ids[i], "InstanceId", id)
		}
		res, err := r.Reconcile(context.Background())
		if err != nil || res.Added != n || len(dp.b) != n {
			t.Fatalf("refuse=%v: %v %v, %d bindings", refuse, res, err, len(dp.b))
		}
		if refuse && (dp.batches != 0 || dp.calls != n) {
			t.Errorf("refused batch: %d batches, %d single calls", dp.batches, dp.calls)
		}
		if !refuse && (dp.batches != 1 || dp.calls != 0) {
			t.Errorf("%d new bindings took %d batches and %d single calls", n, dp.batches, dp.calls)
		}
		if res.Settled != n {
			t.Errorf("settled %d", res.Settled)
		}
	}
}

// oneAssociation is a store with one EIP being associated with an instance, not yet
// reconciled.
func oneAssociation(t *testing.T) (*memStore, *fakeDP, *Reconciler, []string) {
	t.Helper()
	s := &memStore{tx: model.MemTx{}}
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{}}
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11")
	ids := allocate(t, s, 1)
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	return s, dp, &Reconciler{Store: s, Dataplane: dp}, ids
}

// TestReconcileEndsWithItsContext: a pass whose context ends stops before its next
// step, with the context's error, and settles nothing; a later pass finishes it.
func TestReconcileEndsWithItsContext(t *testing.T) {
	s, dp, r, ids := oneAssociation(t)
	before := status(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	dp.onSet = func(netip.Addr) { dp.onSet = nil; cancel() } // the daemon stops mid-pass
	if res, err := r.Reconcile(ctx); !errors.Is(err, context.Canceled) || res.Settled != 0 {
		t.Fatalf("a pass whose context ended: %v, %v", res, err)
	}
	if after := status(t, s); after[ids[0]] != before[ids[0]] {
		t.Errorf("the interrupted pass settled %s", ids[0])
	}
	if _, err := r.Reconcile(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("a pass with an ended context started: %v", err)
	}
	if res, err := r.Reconcile(context.Background()); err != nil || res.Settled != 1 {
		t.Errorf("the next pass: %v, %v", res, err)
	}
}

// TestStopWaitsForThePass: Stop returns only once the running pass is over, and no
// pass starts after it (what it uses may close then).
func TestStopWaitsForThePass(t *testing.T) {
	_, dp, r, _ := oneAssociation(t)
	inPass, release := make(chan struct{}), make(chan struct{})
	dp.onSet = func(netip.Addr) { close(inPass); <-release }
	passDone := make(chan error, 1)
	go func() { _, err := r.Reconcile(context.Background()); passDone <- err }()
	<-inPass
	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a pass was running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-passDone; err != nil {
		t.Fatalf("the running pass: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Stop did not return after the pass")
	}
	if _, err := r.Reconcile(context.Background()); !errors.Is(err, ErrStopped) {
		t.Errorf("a pass after Stop: %v", err)
	}
}

// TestReconcilePendingTouchesOnlyTheWrite: after a full pass, associating and
// disassociating 1:1 EIPs is applied and settled without reading the whole dataplane
// or the rest of the store; a transition that needs more (a cut-through EIP) or a new
// interface gets a full pass, and so does the first pass of a reconciler.
func TestReconcilePendingTouchesOnlyTheWrite(t *testing.T) {
	s, dp, routes, r := routedWorld()
	do(t, s, "RegisterInstance", "InstanceId", "i-1", "VpcId", "v", "PrivateIpAddress", "10.0.1.11", "MacAddress", "02:00:00:00:01:11")
	do(t, s, "RegisterInstance", "InstanceId", "i-2", "VpcId", "v", "PrivateIpAddress", "10.0.1.12", "MacAddress", "02:00:00:00:01:12")
	ids := allocate(t, s, 3)
	do(t, s, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	// The first pass of a reconciler is a full one.
	if res, err := r.ReconcilePending(context.Background()); err != nil || res.Added != 3 || res.Settled != 1 || dp.lists == 0 {
		t.Fatalf("first pass: %v, %v (%d whole-table reads)", res, err, dp.lists)
	}
	dp.lists = 0
	do(t, s, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")
	res, err := r.ReconcilePending(context.Background())
	if err != nil || res.Added != 1 || res.Settled != 1 || len(dp.b) != 2 || dp.lists != 0 {
		t.Fatalf("an association: %v, %v, bindings %v (%d whole-table reads)", res, err, dp.b, dp.lists)
	}
	if st := eipStatus(t, s, ids[1]); st != model.StatusInUse {
		t.Errorf("the associated EIP is %s", st)
	}
	do(t, s, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")
	res, err = r.ReconcilePending(context.Background())
	if err != nil || res.Removed != 1 || res.Settled != 1 || len(dp.b) != 1 || dp.lists != 0 {
		t.Fatalf("a disassociation: %v, %v, bindings %v (%d whole-table reads)", res, err, dp.b, dp.lists)
	}
	if st := eipStatus(t, s, ids[0]); st != model.StatusAvailable {
		t.Errorf("the disassociated EIP is %s", st)
	}
	// A second writer whose transition the first writer's pass applied finds nothing
	// to do, and writes nothing.
	writes := s.updates
	if res, err := r.ReconcilePending(context.Background()); err != nil || res != (Result{}) || s.updates != writes {
		t.Fatalf("a pass with nothing pending: %v, %v, %d store writes", res, err, s.updates-writes)
	}
	// A cut-through EIP needs its route and MAC: a full pass.
	do(t, s, "CreateNetworkInterface", "NetworkInterfaceId", "eni-1", "VpcId", "v", "PrimaryIpAddress", "10.0.3.1", "MacAddress", "02:00:00:00:00:31")
	do(t, s, "AssociateEipAddress", "AllocationId", ids[2], "InstanceId", "eni-1", "InstanceType", "NetworkInterface", "Mode", "BINDED")
	res, err = r.ReconcilePending(context.Background())
	if err != nil || res.Settled != 1 || len(dp.cut) != 1 || len(routes.eips) != 1 || dp.lists == 0 {
		t.Fatalf("a cut-through association: %v, %v, cut-throughs %v (%d whole-table reads)", res, err, dp.cut, dp.lists)
	}
	// A new interface changes the sources: a full pass, even for a 1:1 association.
	dp.lists = 0
	do(t, s, "UnassociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")
	do(t, s, "RegisterInstance", "InstanceId", "i-3", "VpcId", "v", "PrivateIpAddress", "10.0.1.13", "MacAddress", "02:00:00:00:01:13")
	res, err = r.ReconcilePending(context.Background())
	if err != nil || res.Removed != 1 || !dp.src["10.0.1.13@02:00:00:00:01:13"] || dp.lists == 0 {
		t.Fatalf("after a registration: %v, %v, sources %v (%d whole-table reads)", res, err, dp.src, dp.lists)
	}
}

// TestLastByEIPMatchesAStableSort: for shuffled bindings with repeated EIPs, lastByEIP
// (an integer sort, then the bindings moved in place along the permutation's cycles)
// gives what a stable sort by EIP keeping each run's last does; an IPv6 EIP among them
// takes the comparison sort instead, with the same result.
func TestLastByEIPMatchesAStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		n := rng.IntN(300)
		in := make([]desired.Binding, n)
		for i := range in {
			eip := netip.AddrFrom4([4]byte{198, 51, 100, byte(rng.IntN(64))})
			if round%10 == 9 && i == 0 {
				eip = netip.MustParseAddr("2001:db8::1")
			}
			in[i] = desired.Binding{EIP: eip, Private: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})}
		}
		want := slices.Clone(in)
		slices.SortStableFunc(want, compareEIPs)
		var kept []desired.Binding
		for i, b := range want {
			if i+1 == len(want) || want[i+1].EIP != b.EIP {
				kept = append(kept, b)
			}
		}
		if got := lastByEIP(slices.Clone(in)); !slices.Equal(got, kept) {
			t.Fatalf("round %d, %d bindings:\n got %v\nwant %v", round, n, got, kept)
		}
	}
}

// TestLastByEIP: bindings come out sorted by EIP as addresses sort (10.0.0.9 before
// 10.0.0.10), one per EIP, the last given winning (a NAT gateway's IP mapping after
// the EIP's own association).
func TestLastByEIP(t *testing.T) {
	a := netip.MustParseAddr
	in := []desired.Binding{
		{EIP: a("203.0.113.10"), Private: a("10.0.0.1")},
		{EIP: a("203.0.113.9"), Private: a("10.0.0.2")},
		{EIP: a("198.51.100.200"), Private: a("10.0.0.3")},
		{EIP: a("203.0.113.10"), Private: a("10.0.0.4")},
		{EIP: a("203.0.113.9"), Private: a("10.0.0.5")},
		{EIP: a("203.0.113.10"), Private: a("10.0.0.6")},
	}
	want := []desired.Binding{
		{EIP: a("198.51.100.200"), Private: a("10.0.0.3")},
		{EIP: a("203.0.113.9"), Private: a("10.0.0.5")},
		{EIP: a("203.0.113.10"), Private: a("10.0.0.6")},
	}
	if got := lastByEIP(in); !slices.Equal(got, want) {
		t.Fatalf("lastByEIP:\n got %v\nwant %v", got, want)
	}
}
