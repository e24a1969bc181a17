package reconcile

import (
	"errors"
	"fmt"
	"sync"

	"github.com/eipgw/eipgw/control/model"
)

// Committer is the store as API writes see it. Writes that arrive while a commit is
// under way are grouped into the next one (one fsync for all of them), and the 1:1
// transitions a group leaves pending are applied to the dataplane and settled inside
// that same transaction: when Update returns, the write is both committed and carried,
// at the cost of one commit. If the commit fails, the bindings it applied are put
// back. Anything more than 1:1 bindings (a cut-through or NAT gateway transition, a
// change to the inventory) is committed as it is and left pending for a pass.
//
// A lone writer never waits for company: the first write finds no commit under way
// and makes its own at once.
type Committer struct {
	Reconciler *Reconciler

	mu      sync.Mutex
	queue   []*groupedWrite
	leading bool // a writer is committing groups
}

// groupedWrite is one Update waiting in the queue.
type groupedWrite struct {
	fn   func(model.Tx) error
	done chan groupedResult
}

// groupedResult answers a write: its error, or that it is to lead the next group.
type groupedResult struct {
	err  error
	lead bool
}

// maxGroup bounds a group: a commit's work, and so a write's wait, stays bounded.
const maxGroup = 256

// View reads the store.
func (c *Committer) View(fn func(model.Tx) error) error { return c.Reconciler.Store.View(fn) }

// Update commits fn, grouped with the writes that queued meanwhile. Its error is fn's
// own (nothing of fn committed) or the commit's.
func (c *Committer) Update(fn func(model.Tx) error) error {
	w := &groupedWrite{fn: fn, done: make(chan groupedResult, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, w)
	if c.leading {
		c.mu.Unlock()
		if res := <-w.done; !res.lead {
			return res.err
		}
		c.mu.Lock()
	}
	c.leading = true
	// This writer leads: it commits the queue as a group, its own write included (a
	// writer woken to lead is still in the queue), then hands the lead to the first
	// writer left waiting, so no writer commits for others longer than one group.
	group := c.queue[:min(len(c.queue), maxGroup)]
	c.queue = c.queue[len(group):]
	c.mu.Unlock()

	errs := c.commit(group, true)
	var mine error
	for i, g := range group {
		if g == w {
			mine = errs[i]
		} else {
			g.done <- groupedResult{err: errs[i]}
		}
	}
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- groupedResult{lead: true}
	} else {
		c.leading = false
	}
	c.mu.Unlock()
	return mine
}

// errGroupSplit rolls a group's transaction back when one of its writes failed.
var errGroupSplit = errors.New("a grouped write failed")

// errApplyInCommit rolls a group's transaction back when its bindings could not be
// applied: the group is then committed without applying them.
var errApplyInCommit = errors.New("applying the group's bindings failed")

// commit commits group's writes in one transaction, in order, and returns each one's
// error. A write that fails has nothing of it committed and gets its own error as if
// it had been alone: the writes before it are committed as a group, it is run alone,
// and the writes after it form the next group. Groups are deterministic on the
// store's state, so running the writes again gives them the same results.
func (c *Committer) commit(group []*groupedWrite, apply bool) []error {
	errs := make([]error, len(group))
	if len(group) == 0 {
		return errs
	}
	var failed int
	var fnErr error
	// Another gateway's commit overtaking this one (a cluster's store) undid nothing
	// but this one, whose writes run again on the newer state.
	err := model.RetryConflicts(func() error {
		var err error
		failed, fnErr, err = c.commitOnce(group, apply)
		return err
	})
	switch {
	case errors.Is(err, errGroupSplit) && len(group) == 1:
		errs[0] = fnErr
	case errors.Is(err, errGroupSplit):
		copy(errs, c.commit(group[:failed], apply))
		errs[failed] = c.commit(group[failed:failed+1], apply)[0]
		copy(errs[failed+1:], c.commit(group[failed+1:], apply))
	case errors.Is(err, errApplyInCommit):
		// The pass after the write applies them again and says why they fail.
		return c.commit(group, false)
	case err != nil:
		for i := range errs {
			errs[i] = err
		}
	}
	return errs
}

// commitOnce runs group's writes in one transaction (applying their 1:1 transitions
// with apply) and commits it; when a write fails, it says which and why. Under r.mu,
// released however the transaction ends, a panicking write included: that write
// fails with the panic, and the gateway keeps taking writes.
func (c *Committer) commitOnce(group []*groupedWrite, apply bool) (failed int, fnErr, err error) {
	r := c.Reconciler
	r.mu.Lock()
	defer r.mu.Unlock()
	failed = -1
	var changes []bindingChange
	err = r.Store.Update(func(tx model.Tx) error {
		for i, g := range group {
			if err := runWrite(g.fn, tx); err != nil {
				failed, fnErr = i, err
				return errGroupSplit
			}
		}
		if !apply || r.stopped {
			return nil
		}
		var err error
		if changes, err = r.applyInCommit(tx); err != nil {
			return fmt.Errorf("%w: %w", errApplyInCommit, err)
		}
		return nil
	})
	if err != nil && len(changes) > 0 {
		// Nothing committed: the dataplane goes back to what the store still says.
		if uerr := r.undoBindings(changes); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}
	return failed, fnErr, err
}

// runWrite runs one write, a panic in it becoming its error.
func runWrite(fn func(model.Tx) error, tx model.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("reconcile: the write panicked: %v", p)
		}
	}()
	return fn(tx)
}

// applyInCommit applies and settles, inside the write transaction tx, the pending
// transitions when each is a 1:1 EIP's and the inventory has not changed since the
// last pass; otherwise it leaves them for a pass after the commit. Under r.mu.
func (r *Reconciler) applyInCommit(tx model.Tx) ([]bindingChange, error) {
	pending, err := model.ReadPendingBindings(tx)
	if err != nil {
		return nil, fmt.Errorf("read pending transitions: %w", err)
	}
	if !pending.OnlyBindings || len(pending.Applied) == 0 || !r.appliedOK {
		return nil, nil
	}
	if gen, err := model.InventoryGeneration(tx); err != nil {
		return nil, err
	} else if gen != r.appliedGen {
		return nil, nil
	}
	rates, err := model.BandwidthsOf(tx, bindingEIPs(pending.Set))
	if err != nil {
		return nil, err
	}
	var res Result
	changes, err := r.applyBindings(pending.Set, pending.Unbind, rates, &res)
	if err != nil {
		return changes, err
	}
	_, err = pending.SettleRead(tx)
	return changes, err
}
