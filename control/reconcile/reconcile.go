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
	if err := r.Store.View(func(tx model.Tx) error {
		var err error
		desired, err = model.DesiredBindings(tx)
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
