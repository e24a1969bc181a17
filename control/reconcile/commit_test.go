package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
)

// committerLab: three registered instances, four EIPs, and a reconciler that has made
// its first pass (so 1:1 transitions can be applied inside a write's commit).
func committerLab(t *testing.T) (*memStore, *fakeDP, *Committer, []string) {
	t.Helper()
	s := &memStore{tx: model.MemTx{}}
	dp := &fakeDP{b: map[netip.Addr]netip.Addr{}}
	for i, ip := range []string{"10.0.1.11", "10.0.1.12", "10.0.1.13"} {
		do(t, s, "RegisterInstance", "InstanceId", "i-"+string(rune('1'+i)), "VpcId", "v", "PrivateIpAddress", ip)
	}
	ids := allocate(t, s, 4)
	r := &Reconciler{Store: s, Dataplane: dp}
	if _, err := r.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, dp, &Committer{Reconciler: r}, ids
}

// write is an API write of action through c, as the API server makes it.
func write(c *Committer, action string, kv ...string) func() error {
	svc := &model.Service{Region: "r", Pool: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}}
	p := model.Params{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return func() error {
		return c.Update(func(tx model.Tx) error {
			_, err := svc.Do(tx, "ak", action, p, time.Now())
			return err
		})
	}
}

// TestCommitterCarriesAWriteInItsCommit: when an association's Update returns, the
// dataplane carries it and the EIP is InUse, for one store commit.
func TestCommitterCarriesAWriteInItsCommit(t *testing.T) {
	s, dp, c, ids := committerLab(t)
	commits := s.updates
	if err := write(c, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")(); err != nil {
		t.Fatal(err)
	}
	if s.updates != commits+1 || len(dp.b) != 1 || eipStatus(t, s, ids[0]) != model.StatusInUse {
		t.Fatalf("after the write: %d commits, bindings %v, status %s", s.updates-commits, dp.b, eipStatus(t, s, ids[0]))
	}
	// A refused write commits nothing and changes nothing.
	err := write(c, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-1")()
	var apiErr *model.Error
	if !errors.As(err, &apiErr) || len(dp.b) != 1 || eipStatus(t, s, ids[1]) != model.StatusAvailable {
		t.Fatalf("a second EIP for i-1: %v, bindings %v, status %s", err, dp.b, eipStatus(t, s, ids[1]))
	}
	if err := write(c, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")(); err != nil {
		t.Fatal(err)
	}
	if len(dp.b) != 0 || eipStatus(t, s, ids[0]) != model.StatusAvailable {
		t.Fatalf("after the disassociation: bindings %v, status %s", dp.b, eipStatus(t, s, ids[0]))
	}
}

// queuedBehindACommit runs writes while a commit is under way, once every one of them
// is queued behind it, and returns their errors and the commits they took.
func queuedBehindACommit(t *testing.T, s *memStore, c *Committer, writes ...func() error) ([]error, int) {
	t.Helper()
	inCommit, release := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- c.Update(func(tx model.Tx) error {
			close(inCommit)
			<-release
			return nil
		})
	}()
	<-inCommit
	commits := s.updates
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = w() }()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		c.mu.Lock()
		queued := len(c.queue)
		c.mu.Unlock()
		if queued == len(writes) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", queued, len(writes))
		}
	}
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	return errs, s.updates - commits
}

// TestCommitterGroupsConcurrentWrites: writes that arrive while a commit is under way
// share the next commit, and each is carried when its Update returns; one that fails
// in a group gets its own error and leaves no trace, and the others are carried.
func TestCommitterGroupsConcurrentWrites(t *testing.T) {
	s, dp, c, ids := committerLab(t)
	errs, commits := queuedBehindACommit(t, s, c,
		write(c, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1"),
		write(c, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2"))
	if errs[0] != nil || errs[1] != nil || commits != 1 || len(dp.b) != 2 {
		t.Fatalf("two queued writes: errors %v, %d commits, bindings %v", errs, commits, dp.b)
	}
	if eipStatus(t, s, ids[0]) != model.StatusInUse || eipStatus(t, s, ids[1]) != model.StatusInUse {
		t.Fatalf("the grouped EIPs are %s and %s", eipStatus(t, s, ids[0]), eipStatus(t, s, ids[1]))
	}
	// i-1 already has an EIP: that write is refused, and the other one is made.
	errs, commits = queuedBehindACommit(t, s, c,
		write(c, "AssociateEipAddress", "AllocationId", ids[2], "InstanceId", "i-1"),
		write(c, "AssociateEipAddress", "AllocationId", ids[3], "InstanceId", "i-3"))
	var apiErr *model.Error
	if !errors.As(errs[0], &apiErr) || errs[1] != nil || len(dp.b) != 3 {
		t.Fatalf("a failing write in a group: errors %v, bindings %v", errs, dp.b)
	}
	if eipStatus(t, s, ids[2]) != model.StatusAvailable || eipStatus(t, s, ids[3]) != model.StatusInUse {
		t.Fatalf("after the split group: %s and %s", eipStatus(t, s, ids[2]), eipStatus(t, s, ids[3]))
	}
	if commits > 3 {
		t.Errorf("the split group took %d commits", commits)
	}
}

// TestCommitterUndoesWhatAFailedCommitApplied: a commit that fails leaves the
// dataplane as the store still says; a binding the dataplane refuses leaves the
// write committed and pending, for the pass after it to retry and report.
func TestCommitterUndoesWhatAFailedCommitApplied(t *testing.T) {
	s, dp, c, ids := committerLab(t)
	if err := write(c, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")(); err != nil {
		t.Fatal(err)
	}
	before := dp.b[netip.MustParseAddr(mustIP(t, s, ids[0]))]
	s.failCommit = errors.New("disk full")
	if err := write(c, "UnassociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")(); err == nil {
		t.Fatal("a failed commit was reported as made")
	}
	if got := dp.b[netip.MustParseAddr(mustIP(t, s, ids[0]))]; got != before || eipStatus(t, s, ids[0]) != model.StatusInUse {
		t.Fatalf("after the failed commit: bound to %v (want %v), status %s", got, before, eipStatus(t, s, ids[0]))
	}
	s.failCommit = errors.New("disk full")
	if err := write(c, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")(); err == nil {
		t.Fatal("a failed commit was reported as made")
	}
	if len(dp.b) != 1 || eipStatus(t, s, ids[1]) != model.StatusAvailable {
		t.Fatalf("after the failed commit: bindings %v, status %s", dp.b, eipStatus(t, s, ids[1]))
	}
	dp.fail = errors.New("map full")
	if err := write(c, "AssociateEipAddress", "AllocationId", ids[1], "InstanceId", "i-2")(); err != nil {
		t.Fatalf("a write the dataplane cannot carry yet: %v", err)
	}
	if len(dp.b) != 1 || eipStatus(t, s, ids[1]) != model.StatusAssociating {
		t.Fatalf("a refused binding: bindings %v, status %s", dp.b, eipStatus(t, s, ids[1]))
	}
	if _, err := c.Reconciler.ReconcilePending(context.Background()); !errors.Is(err, dp.fail) {
		t.Fatalf("the pass after the write: %v", err)
	}
	dp.fail = nil
	if _, err := c.Reconciler.ReconcilePending(context.Background()); err != nil || eipStatus(t, s, ids[1]) != model.StatusInUse {
		t.Fatalf("the pass once the dataplane takes it: %v, status %s", err, eipStatus(t, s, ids[1]))
	}
}

func mustIP(t *testing.T, s *memStore, id string) string {
	t.Helper()
	var e model.EIP
	raw, _ := s.tx.Get(model.KindEIP, id)
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e.IPAddress
}

// TestCommitterSurvivesAPanickingWrite: a write that panics fails alone, with the
// panic as its error, commits nothing, and the next writes are taken as usual.
func TestCommitterSurvivesAPanickingWrite(t *testing.T) {
	s, dp, c, ids := committerLab(t)
	err := c.Update(func(tx model.Tx) error {
		if err := tx.Put(model.KindEIP, "eip-junk", []byte("{}")); err != nil {
			return err
		}
		panic("a bug")
	})
	if err == nil || !strings.Contains(err.Error(), "a bug") {
		t.Fatalf("a panicking write: %v", err)
	}
	if raw, _ := s.tx.Get(model.KindEIP, "eip-junk"); raw != nil {
		t.Error("the panicking write committed")
	}
	if err := write(c, "AssociateEipAddress", "AllocationId", ids[0], "InstanceId", "i-1")(); err != nil || len(dp.b) != 1 {
		t.Fatalf("the write after it: %v, bindings %v", err, dp.b)
	}
}
