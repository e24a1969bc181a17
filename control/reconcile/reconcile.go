// Package reconcile makes the dataplane carry what the store says: it computes the
// 1:1 bindings of every association, applies only the difference to the dataplane,
// and then settles the EIPs' transitional statuses. It runs after every API write,
// at start and periodically, and is idempotent.
package reconcile

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/eipgw/eipgw/control/model"
)

// Dataplane is what the reconciler needs of the dataplane; dataplane.Dataplane
// provides it through a small adapter, and tests fake it.
type Dataplane interface {
	Bindings() (map[netip.Addr]netip.Addr, error) // EIP -> private
	SetBinding(eip, private netip.Addr) error
	DeleteBinding(eip netip.Addr) error
	CutThroughs() (map[netip.Addr]string, error) // EIP -> ENI MAC
	SetCutThrough(eip netip.Addr, mac string) error
	DeleteCutThrough(eip netip.Addr) error
}

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
}

func (r Result) String() string {
	return fmt.Sprintf("%d added, %d moved, %d removed, %d settled", r.Added, r.Moved, r.Removed, r.Settled)
}

// Changed tells whether the pass touched the dataplane.
func (r Result) Changed() bool { return r.Added+r.Moved+r.Removed > 0 }

// Reconciler applies the store to the dataplane, one pass at a time.
type Reconciler struct {
	Store     Store
	Dataplane Dataplane
	Routes    Routes // nil: the gateway's routes are not managed
	mu        sync.Mutex
}

// Reconcile runs one pass. Removals go first: a disassociated EIP stops carrying
// inbound traffic before anything else happens, and its private address is free for
// a new EIP in the same pass.
func (r *Reconciler) Reconcile() (Result, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var res Result
	var desired []model.Binding
	var cuts []model.CutThrough
	if err := r.Store.View(func(tx model.Tx) error {
		var err error
		if desired, err = model.DesiredBindings(tx); err != nil {
			return err
		}
		cuts, err = model.DesiredCutThroughs(tx)
		return err
	}); err != nil {
		return res, fmt.Errorf("reconcile: read desired state: %w", err)
	}
	want := map[netip.Addr]netip.Addr{}
	for _, b := range desired {
		want[b.EIP] = b.Private
	}
	have, err := r.Dataplane.Bindings()
	if err != nil {
		return res, fmt.Errorf("reconcile: read dataplane: %w", err)
	}
	for eip := range have {
		if _, ok := want[eip]; !ok {
			if err := r.Dataplane.DeleteBinding(eip); err != nil {
				return res, fmt.Errorf("reconcile: remove %v: %w", eip, err)
			}
			res.Removed++
		}
	}
	// An EIP bound to another address is moved in place: the dataplane replaces
	// the binding without a gap and keeps its counters.
	for eip, priv := range want {
		old, had := have[eip]
		if had && old == priv {
			continue
		}
		if err := r.Dataplane.SetBinding(eip, priv); err != nil {
			return res, fmt.Errorf("reconcile: bind %v to %v: %w", eip, priv, err)
		}
		if had {
			res.Moved++
		} else {
			res.Added++
		}
	}
	if err := r.reconcileCutThroughs(cuts, &res); err != nil {
		return res, err
	}
	// The dataplane now carries every association: settle their statuses.
	if err := r.Store.Update(func(tx model.Tx) error {
		n, err := model.Settle(tx)
		res.Settled = n
		return err
	}); err != nil {
		return res, fmt.Errorf("reconcile: settle: %w", err)
	}
	return res, nil
}

// reconcileCutThroughs brings the cut-through EIPs and the gateway's routes to them
// in line. The route goes in before the EIP is forwarded, and out after it stops.
func (r *Reconciler) reconcileCutThroughs(cuts []model.CutThrough, res *Result) error {
	want := map[netip.Addr]string{}
	var eips []netip.Addr
	for _, c := range cuts {
		want[c.EIP] = c.ENIMAC
		eips = append(eips, c.EIP)
	}
	have, err := r.Dataplane.CutThroughs()
	if err != nil {
		return fmt.Errorf("reconcile: read cut-through EIPs: %w", err)
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
		if had && old == mac {
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
