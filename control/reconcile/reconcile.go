// Package reconcile makes the dataplane carry what the store says: it computes the
// 1:1 bindings of every association, applies only the difference to the dataplane,
// and then settles the EIPs' transitional statuses. It runs after every API write,
// at start and periodically, and is idempotent.
package reconcile

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/desired"
	"github.com/eipgw/eipgw/internal/intsort"
)

// Dataplane is what the reconciler needs of the dataplane, in the desired state's own
// types: dataplane.Dataplane provides it as it is, and tests fake it.
type Dataplane interface {
	Bindings() ([]desired.Binding, error)
	BindingOf(eip netip.Addr) (private netip.Addr, bound bool, err error)
	SetBinding(eip, private netip.Addr) error
	DeleteBinding(eip netip.Addr) error
	CutThroughs() ([]desired.CutThrough, error)
	SetCutThrough(eip netip.Addr, mac net.HardwareAddr) error
	DeleteCutThrough(eip netip.Addr) error
	// The VPC sources that may be translated: an address with its sender's MAC.
	Sources() ([]desired.Source, error)
	SetSource(s desired.Source) error
	DeleteSource(s desired.Source) error
}

// NatDataplane is what the reconciler needs of the dataplane for NAT gateways.
type NatDataplane interface {
	NatEIPs() ([]netip.Addr, error)
	SetNatEIP(eip netip.Addr) error
	DeleteNatEIP(eip netip.Addr) error // purges its sessions
	SnatRules() ([]desired.SnatRule, error)
	SetSnatRule(r desired.SnatRule) error
	DeleteSnatRule(source netip.Prefix) error // purges its sessions
	ForwardPorts() ([]desired.ForwardPort, error)
	SetForwardPort(p desired.ForwardPort) error
	// DeleteForwardPorts removes them all, then purges their sessions in one pass.
	DeleteForwardPorts(ps []desired.ExternalPort) error
}

// Policer is a Dataplane that limits each EIP's bandwidth, both ways.
type Policer interface {
	// BandwidthChanges compares the desired limits (all of them: an EIP not named
	// has none) with the dataplane's, for the EIPs it carries, and returns the limits
	// to set (Bits 0: none) that would make them equal.
	BandwidthChanges(want []desired.Limit) ([]desired.Limit, error)
	// SetBandwidths limits EIPs the dataplane carries (Bits 0 lifts the limit), all
	// it can: an error names those it could not.
	SetBandwidths(limits []desired.Limit) error
}

// BindingBatcher is a Dataplane that can add many new bindings at once (neither the
// EIP nor the private address bound yet): the start-up reconcile of an empty
// dataplane.
type BindingBatcher interface {
	AddBindings(bs []desired.Binding) error
}

// SourceBatcher is a Dataplane that can add many sources at once.
type SourceBatcher interface {
	AddSources(ss []desired.Source) error
}

// batchAtLeast is how many new bindings or sources a pass must add to batch them.
const batchAtLeast = 64

// Routes keeps the gateway's own routes to cut-through EIPs (on-link, out of the VPC
// side, where the instance answers for its EIP) equal to a set.
type Routes interface {
	Sync(eips []netip.Addr) error
}

// Store is what the reconciler needs of the store.
type Store interface {
	View(func(model.Tx) error) error
	Update(func(model.Tx) error) error
}

// Result counts what one pass changed.
type Result struct {
	Added, Moved, Removed, Settled int
	Policed                        int // EIPs whose bandwidth limit changed
}

func (r Result) String() string {
	return fmt.Sprintf("%d added, %d moved, %d removed, %d settled, %d limits changed", r.Added, r.Moved, r.Removed, r.Settled, r.Policed)
}

// Changed tells whether the pass touched the dataplane.
func (r Result) Changed() bool { return r.Added+r.Moved+r.Removed+r.Policed > 0 }

// Reconciler applies the store to the dataplane, one pass at a time.
type Reconciler struct {
	Store     Store
	Dataplane Dataplane
	Routes    Routes       // nil: the gateway's routes are not managed
	Nat       NatDataplane // nil: NAT gateways are not carried
	// OwnsNatGateway, in a cluster, says which NAT gateways this gateway carries
	// (control/cluster); nil: all of them.
	OwnsNatGateway func(natGatewayID string) bool
	mu             sync.Mutex
	stopped        bool // Stop ran: no pass starts any more

	// The desired sources of the last inventory generation read: decoding every ENI
	// on every pass would cost a write at 100,000 instances far more than its own work.
	sources    []desired.Source
	sourcesGen uint64
	sourcesOK  bool
	// The generation whose sources the dataplane was last brought to. Only this
	// process writes the dataplane's sources (it holds the pins' lock), so until the
	// inventory changes they need no second look.
	appliedGen uint64
	appliedOK  bool
	// The generation whose sources the store's snapshot holds (or a later one).
	snapshotGen uint64
	snapshotOK  bool
}

// ErrStopped is Reconcile's answer once Stop ran.
var ErrStopped = errors.New("reconcile: stopped")

// Stop waits for the running pass, if any, and makes every later Reconcile return
// ErrStopped: what the pass uses (the store, the dataplane) may then close.
func (r *Reconciler) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
}

// Reconcile runs one pass. Removals go first: a disassociated EIP stops carrying
// inbound traffic before anything else happens, and its private address is free for
// a new EIP in the same pass. When ctx ends the pass stops between two steps with
// ctx's error, having settled nothing: a pass is idempotent, and the next one
// finishes the work.
func (r *Reconciler) Reconcile(ctx context.Context) (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return Result{}, ErrStopped
	}
	return r.reconcileLocked(ctx)
}

// ReconcilePending applies what the pending transitions ask for, when each is a 1:1
// EIP's and the inventory (the sources) has not changed since the last pass: a binding
// set or removed for each, and those settled, without reading the rest of the store
// or comparing the whole dataplane. What an API write of an association needs before
// its reply: its cost follows the write, not the number of associations. Anything
// else (a cut-through or NAT gateway transition, a new interface) gets a full pass.
func (r *Reconciler) ReconcilePending(ctx context.Context) (Result, error) {
	// Nothing pending: the write's own commit (Committer) or another pass carried
	// it. Known without the lock, which a commit under way holds.
	var pending bool
	if err := r.Store.View(func(tx model.Tx) error {
		var err error
		pending, err = model.AnyPending(tx)
		return err
	}); err != nil {
		return Result{}, fmt.Errorf("reconcile: read pending transitions: %w", err)
	} else if !pending {
		return Result{}, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var res Result
	if r.stopped {
		return res, ErrStopped
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	var transitions *model.PendingBindingSet
	var gen uint64
	var rates map[netip.Addr]desired.Limit
	if err := r.Store.View(func(tx model.Tx) error {
		var err error
		if transitions, err = model.ReadPendingBindings(tx); err != nil {
			return err
		}
		if rates, err = model.BandwidthsOf(tx, bindingEIPs(transitions.Set)); err != nil {
			return err
		}
		gen, err = model.InventoryGeneration(tx)
		return err
	}); err != nil {
		return res, fmt.Errorf("reconcile: read pending transitions: %w", err)
	}
	if !transitions.OnlyBindings || !r.appliedOK || r.appliedGen != gen {
		return r.reconcileLocked(ctx)
	}
	// Nothing pending: another writer's pass, which ran while this one waited for the
	// lock, applied this write too. No commit either: concurrent writes share one.
	if len(transitions.Applied) == 0 {
		return res, nil
	}
	if _, err := r.applyBindings(transitions.Set, transitions.Unbind, rates, &res); err != nil {
		return res, err
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	if err := model.UpdateRetrying(r.Store.Update, func(tx model.Tx) error {
		n, err := model.Settle(tx, transitions.Applied)
		res.Settled = n
		return err
	}); err != nil {
		return res, fmt.Errorf("reconcile: settle: %w", err)
	}
	return res, nil
}

// bindingChange is one binding as it was before applyBindings changed it.
type bindingChange struct {
	eip, old netip.Addr
	bound    bool
}

// applyBindings removes the bindings of unbind and sets those of set, removals first
// as in a full pass (a private address unbound here may be the one a binding below
// takes), each new binding limited to its rate (bits per second) where the dataplane
// polices, and returns what each change replaced, for undoing them; on an error,
// those made so far.
func (r *Reconciler) applyBindings(set []desired.Binding, unbind []netip.Addr, rates map[netip.Addr]desired.Limit, res *Result) ([]bindingChange, error) {
	policer, _ := r.Dataplane.(Policer)
	var changes []bindingChange
	for _, eip := range unbind {
		old, bound, err := r.Dataplane.BindingOf(eip)
		if err != nil {
			return changes, fmt.Errorf("reconcile: read binding of %v: %w", eip, err)
		}
		if !bound {
			continue
		}
		if err := r.Dataplane.DeleteBinding(eip); err != nil {
			return changes, fmt.Errorf("reconcile: remove %v: %w", eip, err)
		}
		changes = append(changes, bindingChange{eip: eip, old: old, bound: true})
		res.Removed++
	}
	for _, b := range set {
		old, bound, err := r.Dataplane.BindingOf(b.EIP)
		if err != nil {
			return changes, fmt.Errorf("reconcile: read binding of %v: %w", b.EIP, err)
		}
		if bound && old == b.Private {
			continue
		}
		if err := r.Dataplane.SetBinding(b.EIP, b.Private); err != nil {
			return changes, fmt.Errorf("reconcile: bind %v to %v: %w", b.EIP, b.Private, err)
		}
		changes = append(changes, bindingChange{eip: b.EIP, old: old, bound: bound})
		// A binding made anew starts unlimited: its limit goes on before the reply.
		if limit := rates[b.EIP]; policer != nil && limit.Bits != 0 {
			if err := policer.SetBandwidths([]desired.Limit{limit}); err != nil {
				return changes, fmt.Errorf("reconcile: limit %v to %d bit/s: %w", b.EIP, limit.Bits, err)
			}
		}
		if bound {
			res.Moved++
		} else {
			res.Added++
		}
	}
	return changes, nil
}

// undoBindings puts back what applyBindings changed, last change first.
func (r *Reconciler) undoBindings(changes []bindingChange) error {
	var errs []error
	for i := len(changes) - 1; i >= 0; i-- {
		c := changes[i]
		var err error
		if c.bound {
			err = r.Dataplane.SetBinding(c.eip, c.old)
		} else {
			err = r.Dataplane.DeleteBinding(c.eip)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile: undo the binding of %v: %w", c.eip, err))
		}
	}
	return errors.Join(errs...)
}

// reconcileLocked is a full pass, under r.mu.
func (r *Reconciler) reconcileLocked(ctx context.Context) (Result, error) {
	var res Result
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	var bindings []desired.Binding
	var cuts []desired.CutThrough
	var nat model.DesiredNat
	var sources []desired.Source
	var pending map[string]string
	var limits []desired.Limit
	if err := r.Store.View(func(tx model.Tx) error {
		var err error
		if pending, err = model.Pending(tx); err != nil {
			return err
		}
		if bindings, err = model.DesiredBindings(tx); err != nil {
			return err
		}
		gen, err := model.InventoryGeneration(tx)
		if err != nil {
			return err
		}
		if !r.sourcesOK || gen != r.sourcesGen {
			if r.sources, err = model.DesiredSources(tx); err != nil {
				return err
			}
			if current, err := model.SourcesSnapshotCurrent(tx); err != nil {
				return err
			} else if current {
				r.snapshotGen, r.snapshotOK = gen, true
			}
			r.sourcesGen, r.sourcesOK = gen, true
		}
		sources = r.sources
		if r.Nat != nil {
			if nat, err = model.DesiredNatState(tx); err != nil {
				return err
			}
			if r.OwnsNatGateway != nil {
				nat = nat.Only(r.OwnsNatGateway)
			}
			bindings = append(bindings, nat.IPMappings...)
		}
		if _, ok := r.Dataplane.(Policer); ok {
			if limits, err = model.DesiredBandwidths(tx); err != nil {
				return err
			}
		}
		cuts, err = model.DesiredCutThroughs(tx)
		return err
	}); err != nil {
		return res, fmt.Errorf("reconcile: read desired state: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	// Sources go in before the bindings that translate them, and out last.
	removeSources := func() error { return nil }
	sourcesGen := r.sourcesGen
	if !r.appliedOK || r.appliedGen != sourcesGen {
		var err error
		if removeSources, err = r.reconcileSources(sources, &res); err != nil {
			return res, err
		}
	}
	// Sorted by EIP, the last binding of an EIP winning, then merged with the
	// dataplane's (sorted too): at 100,000 bindings, hash maps of both cost a start
	// more than the rest of the comparison.
	want := lastByEIP(bindings)
	// NAT gateway entries go first when they are removed (an EIP leaving NAT for
	// an IP mapping), and their additions come after the bindings below.
	var natAdds func() error
	if r.Nat != nil {
		var err error
		if natAdds, err = r.reconcileNat(nat, &res); err != nil {
			return res, err
		}
	}
	have, err := r.Dataplane.Bindings()
	if err != nil {
		return res, fmt.Errorf("reconcile: read dataplane: %w", err)
	}
	if !slices.IsSortedFunc(have, compareEIPs) { // the dataplane's are, as a rule
		slices.SortFunc(have, compareEIPs)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	var fresh, moved []desired.Binding
	if err := mergeSorted(want, have, compareEIPs,
		func(b desired.Binding) error { fresh = append(fresh, b); return nil },
		func(b desired.Binding) error {
			if err := r.Dataplane.DeleteBinding(b.EIP); err != nil {
				return fmt.Errorf("reconcile: remove %v: %w", b.EIP, err)
			}
			res.Removed++
			return nil
		},
		func(w, h desired.Binding) {
			if w.Private != h.Private {
				moved = append(moved, w)
			}
		}); err != nil {
		return res, err
	}
	// An EIP bound to another address is moved in place: the dataplane replaces
	// the binding without a gap and keeps its counters. Before the new bindings,
	// which may take the address a move left.
	for _, b := range moved {
		if err := r.Dataplane.SetBinding(b.EIP, b.Private); err != nil {
			return res, fmt.Errorf("reconcile: bind %v to %v: %w", b.EIP, b.Private, err)
		}
		res.Moved++
	}
	// New bindings, many at once where the dataplane can (a start on empty maps); if
	// the batch is refused, one at a time below says which binding and why.
	if batcher, ok := r.Dataplane.(BindingBatcher); ok && len(fresh) >= batchAtLeast && batcher.AddBindings(fresh) == nil {
		res.Added += len(fresh)
		fresh = nil
	}
	for _, b := range fresh {
		if err := r.Dataplane.SetBinding(b.EIP, b.Private); err != nil {
			return res, fmt.Errorf("reconcile: bind %v to %v: %w", b.EIP, b.Private, err)
		}
		res.Added++
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	if natAdds != nil {
		if err := natAdds(); err != nil {
			return res, err
		}
	}
	if err := r.reconcileCutThroughs(cuts, &res); err != nil {
		return res, err
	}
	// Every EIP carried now gets its bandwidth: new bindings, cut-through and NAT
	// gateway EIPs start unlimited.
	if err := r.reconcileBandwidths(limits, &res); err != nil {
		return res, err
	}
	if err := removeSources(); err != nil {
		return res, err
	}
	r.appliedGen, r.appliedOK = sourcesGen, true
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("reconcile: %w", err)
	}
	// The dataplane now carries every association this pass read: settle those. The
	// sources go in the store's snapshot, for the next start to read.
	if len(pending) == 0 && r.snapshotOK && r.snapshotGen == sourcesGen {
		return res, nil
	}
	if err := model.UpdateRetrying(r.Store.Update, func(tx model.Tx) error {
		n, err := model.Settle(tx, pending)
		res.Settled = n
		if err != nil {
			return err
		}
		return model.SaveSourcesSnapshot(tx, sourcesGen, sources)
	}); err != nil {
		return res, fmt.Errorf("reconcile: settle: %w", err)
	}
	r.snapshotGen, r.snapshotOK = sourcesGen, true
	return res, nil
}

// reconcileSources adds the sources the dataplane lacks and returns the removal of
// those it should no longer have, to run after the bindings that used them are gone.
func (r *Reconciler) reconcileSources(want []desired.Source, res *Result) (func() error, error) {
	have, err := r.Dataplane.Sources()
	if err != nil {
		return nil, fmt.Errorf("reconcile: read sources: %w", err)
	}
	// Both sorted, then merged: at 100,000 sources, two hash sets cost a start more
	// than everything else it compares.
	// Both come sorted as a rule (the model's and the dataplane's are).
	if !slices.IsSortedFunc(want, desired.Source.Compare) {
		want = slices.Clone(want)
		slices.SortFunc(want, desired.Source.Compare)
	}
	if !slices.IsSortedFunc(have, desired.Source.Compare) {
		slices.SortFunc(have, desired.Source.Compare)
	}
	var fresh, stale []desired.Source
	_ = mergeSorted(want, have, desired.Source.Compare,
		func(s desired.Source) error { fresh = append(fresh, s); return nil },
		func(s desired.Source) error { stale = append(stale, s); return nil },
		func(desired.Source, desired.Source) {})
	// Many at once where the dataplane can (a start on empty maps); if the batch is
	// refused, one at a time below says which source and why.
	if batcher, ok := r.Dataplane.(SourceBatcher); ok && len(fresh) >= batchAtLeast && batcher.AddSources(fresh) == nil {
		res.Added += len(fresh)
		fresh = nil
	}
	for _, s := range fresh {
		if err := r.Dataplane.SetSource(s); err != nil {
			return nil, fmt.Errorf("reconcile: source %v from %s: %w", s.Addr, s.MAC, err)
		}
		res.Added++
	}
	return func() error {
		for _, s := range stale {
			if err := r.Dataplane.DeleteSource(s); err != nil {
				return fmt.Errorf("reconcile: remove source %v from %s: %w", s.Addr, s.MAC, err)
			}
			res.Removed++
		}
		return nil
	}, nil
}

func compareEIPs(a, b desired.Binding) int { return a.EIP.Compare(b.EIP) }

// lastByEIP sorts bindings by EIP and keeps the last of each EIP's, in bindings' own
// array: a sorted copy was 5 MB of the 41 a start's pass allocated at 100,000
// bindings, each page of it a fault in a new process. IPv4 EIPs (all of them, as a
// rule) are sorted as integers, the EIP above the binding's position, so that no
// comparison function runs and equal EIPs stay in order: a stable sort of 100,000
// bindings by address costs a start more than the rest of the comparison.
func lastByEIP(bindings []desired.Binding) []desired.Binding {
	packed := make([]uint64, len(bindings))
	for i, b := range bindings {
		if !b.EIP.Is4() {
			slices.SortStableFunc(bindings, compareEIPs)
			return lastOfRuns(bindings)
		}
		a := b.EIP.As4()
		packed[i] = uint64(binary.BigEndian.Uint32(a[:]))<<32 | uint64(i)
	}
	intsort.ByHigh32(packed)
	gather(bindings, packed)
	return lastOfRuns(bindings)
}

// gather reorders bindings in place so that the k-th is the one at the position in
// the low 31 bits of order[k] (a permutation), following each cycle of it once;
// order's bit 31 marks the positions done.
func gather(bindings []desired.Binding, order []uint64) {
	const done = 1 << 31
	for k := range order {
		if order[k]&done != 0 {
			continue
		}
		first := bindings[k]
		for j := k; ; {
			from := int(uint32(order[j]) &^ done)
			order[j] |= done
			if from == k {
				bindings[j] = first
				break
			}
			bindings[j] = bindings[from]
			j = from
		}
	}
}

// lastOfRuns keeps, of bindings sorted by EIP, the last of each EIP's run, moved to
// the front of bindings' array.
func lastOfRuns(bindings []desired.Binding) []desired.Binding {
	n := 0
	for i, b := range bindings {
		if i+1 < len(bindings) && bindings[i+1].EIP == b.EIP {
			continue
		}
		bindings[n] = b
		n++
	}
	clear(bindings[n:])
	return bindings[:n]
}

// mergeSorted walks want and have, both sorted by cmp, in step: onlyWant and onlyHave
// get the items of one list that the other lacks, both the pairs of equal ones. It
// stops at the first error.
func mergeSorted[T any](want, have []T, cmp func(T, T) int, onlyWant, onlyHave func(T) error, both func(w, h T)) error {
	i, j := 0, 0
	for i < len(want) && j < len(have) {
		switch c := cmp(want[i], have[j]); {
		case c < 0:
			if err := onlyWant(want[i]); err != nil {
				return err
			}
			i++
		case c > 0:
			if err := onlyHave(have[j]); err != nil {
				return err
			}
			j++
		default:
			both(want[i], have[j])
			i, j = i+1, j+1
		}
	}
	for ; i < len(want); i++ {
		if err := onlyWant(want[i]); err != nil {
			return err
		}
	}
	for ; j < len(have); j++ {
		if err := onlyHave(have[j]); err != nil {
			return err
		}
	}
	return nil
}

// reconcileCutThroughs brings the cut-through EIPs and the gateway's routes to them
// in line. The route goes in before the EIP is forwarded, and out after it stops.
func (r *Reconciler) reconcileCutThroughs(cuts []desired.CutThrough, res *Result) error {
	want := map[netip.Addr]net.HardwareAddr{}
	var eips []netip.Addr
	for _, c := range cuts {
		want[c.EIP] = c.ENIMAC
		eips = append(eips, c.EIP)
	}
	haveCuts, err := r.Dataplane.CutThroughs()
	if err != nil {
		return fmt.Errorf("reconcile: read cut-through EIPs: %w", err)
	}
	have := make(map[netip.Addr]net.HardwareAddr, len(haveCuts))
	for _, c := range haveCuts {
		have[c.EIP] = c.ENIMAC
	}
	for eip := range have {
		if _, ok := want[eip]; !ok {
			if err := r.Dataplane.DeleteCutThrough(eip); err != nil {
				return fmt.Errorf("reconcile: remove cut-through %v: %w", eip, err)
			}
			res.Removed++
		}
	}
	if r.Routes != nil {
		if err := r.Routes.Sync(eips); err != nil {
			return fmt.Errorf("reconcile: gateway routes: %w", err)
		}
	}
	for eip, mac := range want {
		old, had := have[eip]
		if had && bytes.Equal(old, mac) {
			continue
		}
		if err := r.Dataplane.SetCutThrough(eip, mac); err != nil {
			return fmt.Errorf("reconcile: cut-through %v: %w", eip, err)
		}
		if had {
			res.Moved++
		} else {
			res.Added++
		}
	}
	return nil
}

// reconcileNat removes what the NAT gateways no longer have (forward ports and SNAT
// rules before the EIPs they use; each removal purges its sessions) and returns the
// additions to run after the bindings: EIPs before the rules and ports that use them.
func (r *Reconciler) reconcileNat(want model.DesiredNat, res *Result) (func() error, error) {
	haveEIPs, err := r.Nat.NatEIPs()
	if err != nil {
		return nil, fmt.Errorf("reconcile: read NAT EIPs: %w", err)
	}
	haveRules, err := r.Nat.SnatRules()
	if err != nil {
		return nil, fmt.Errorf("reconcile: read SNAT rules: %w", err)
	}
	havePorts, err := r.Nat.ForwardPorts()
	if err != nil {
		return nil, fmt.Errorf("reconcile: read forward ports: %w", err)
	}
	wantPorts := map[desired.ExternalPort]desired.ForwardPort{}
	for _, p := range want.Ports {
		wantPorts[desired.ExternalPort{Protocol: p.Protocol, External: p.External}] = p
	}
	wantRules := map[netip.Prefix]desired.SnatRule{}
	for _, rule := range want.Rules {
		wantRules[rule.Source] = rule
	}
	wantEIPs := map[netip.Addr]bool{}
	for _, e := range want.EIPs {
		wantEIPs[e] = true
	}
	havePort := map[desired.ExternalPort]desired.ForwardPort{}
	var stale []desired.ExternalPort
	for _, p := range havePorts {
		key := desired.ExternalPort{Protocol: p.Protocol, External: p.External}
		if w, ok := wantPorts[key]; !ok || w.Internal != p.Internal {
			stale = append(stale, key)
			continue
		}
		havePort[key] = p
	}
	// An entry's whole port range goes in one call: one pass over the sessions.
	if len(stale) > 0 {
		if err := r.Nat.DeleteForwardPorts(stale); err != nil {
			return nil, fmt.Errorf("reconcile: remove %d forward ports: %w", len(stale), err)
		}
		res.Removed += len(stale)
	}
	haveRule := map[netip.Prefix]desired.SnatRule{}
	for _, rule := range haveRules {
		haveRule[rule.Source] = rule
		if _, ok := wantRules[rule.Source]; !ok {
			if err := r.Nat.DeleteSnatRule(rule.Source); err != nil {
				return nil, fmt.Errorf("reconcile: remove SNAT rule %v: %w", rule.Source, err)
			}
			delete(haveRule, rule.Source)
			res.Removed++
		}
	}
	haveEIP := map[netip.Addr]bool{}
	for _, e := range haveEIPs {
		haveEIP[e] = true
		if !wantEIPs[e] {
			if err := r.Nat.DeleteNatEIP(e); err != nil {
				return nil, fmt.Errorf("reconcile: remove NAT EIP %v: %w", e, err)
			}
			delete(haveEIP, e)
			res.Removed++
		}
	}
	return func() error {
		for _, e := range want.EIPs {
			if !haveEIP[e] {
				if err := r.Nat.SetNatEIP(e); err != nil {
					return fmt.Errorf("reconcile: NAT EIP %v: %w", e, err)
				}
				res.Added++
			}
		}
		for _, rule := range want.Rules {
			if old, ok := haveRule[rule.Source]; ok && sameRule(old, rule) {
				continue
			}
			if err := r.Nat.SetSnatRule(rule); err != nil {
				return fmt.Errorf("reconcile: SNAT rule %v: %w", rule.Source, err)
			}
			res.Added++
		}
		for key, p := range wantPorts {
			if _, ok := havePort[key]; ok {
				continue
			}
			if err := r.Nat.SetForwardPort(p); err != nil {
				return fmt.Errorf("reconcile: forward port %v/%s: %w", key.External, desired.ProtoName(key.Protocol), err)
			}
			res.Added++
		}
		return nil
	}, nil
}

func sameRule(a, b desired.SnatRule) bool {
	if a.Affinity != b.Affinity || len(a.Pool) != len(b.Pool) {
		return false
	}
	for i := range a.Pool {
		if a.Pool[i] != b.Pool[i] {
			return false
		}
	}
	return true
}

func bindingEIPs(bs []desired.Binding) []netip.Addr {
	out := make([]netip.Addr, len(bs))
	for i, b := range bs {
		out[i] = b.EIP
	}
	return out
}

// reconcileBandwidths gives every EIP the dataplane carries its desired limit (want;
// an EIP absent from it has none), where the dataplane polices.
func (r *Reconciler) reconcileBandwidths(want []desired.Limit, res *Result) error {
	policer, ok := r.Dataplane.(Policer)
	if !ok {
		return nil
	}
	changes, err := policer.BandwidthChanges(want)
	if err != nil {
		return fmt.Errorf("reconcile: compare bandwidths: %w", err)
	}
	if len(changes) == 0 {
		return nil
	}
	if err := policer.SetBandwidths(changes); err != nil {
		return fmt.Errorf("reconcile: bandwidth limits: %w", err)
	}
	res.Policed += len(changes)
	return nil
}
