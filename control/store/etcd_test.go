package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
	"github.com/eipgw/eipgw/internal/testbed"
)

// etcdFixture is an etcd server in a namespace of its own and a way to open stores on
// it, their clients dialing from inside that namespace.
func etcdFixture(t *testing.T) (*testbed.Etcd, func(prefix string) *Etcd) {
	t.Helper()
	srv, dial := testbed.EtcdForTest(t)
	open := func(prefix string) *Etcd {
		t.Helper()
		e, err := OpenEtcd(EtcdConfig{Endpoints: []string{"127.0.0.1:2379"}, Prefix: prefix, Timeout: time.Second, Dial: dial})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	return srv, open
}

// TestEtcdTransactions: a write's reads see its own writes, ForEach walks keys in
// order merging them, a failed write leaves nothing, and another prefix is another
// store.
func TestEtcdTransactions(t *testing.T) {
	_, open := etcdFixture(t)
	e := open("/a")
	if err := e.Update(func(tx model.Tx) error {
		for _, id := range []string{"b", "d", "f"} {
			if err := tx.Put(model.KindEIP, id, []byte("v-"+id)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	walk := func(tx model.Tx) string {
		var out []string
		if err := tx.ForEach(model.KindEIP, func(id string, v []byte) error { out = append(out, id+"="+string(v)); return nil }); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ",")
	}
	if err := e.Update(func(tx model.Tx) error {
		tx.Put(model.KindEIP, "a", []byte("new"))
		tx.Put(model.KindEIP, "d", []byte("changed"))
		tx.Delete(model.KindEIP, "f")
		tx.Put(model.KindEIP, "g", []byte("last"))
		if got := walk(tx); got != "a=new,b=v-b,d=changed,g=last" {
			t.Errorf("a walk inside the write: %s", got)
		}
		if v, _ := tx.Get(model.KindEIP, "f"); v != nil {
			t.Errorf("a deleted key read back: %q", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.Update(func(tx model.Tx) error {
		tx.Put(model.KindEIP, "z", []byte("never"))
		return errors.New("refused")
	}); err == nil {
		t.Fatal("a failing write succeeded")
	}
	e.View(func(tx model.Tx) error {
		if got := walk(tx); got != "a=new,b=v-b,d=changed,g=last" {
			t.Errorf("after the writes: %s", got)
		}
		return nil
	})
	other := open("/b")
	other.View(func(tx model.Tx) error {
		if got := walk(tx); got != "" {
			t.Errorf("another prefix sees %s", got)
		}
		return nil
	})
}

// TestEtcdConflict: of two writes over the same snapshot, exactly one commits, the
// other fails with ErrStoreConflict and writes nothing; many writers racing on one
// counter lose no increment among those that succeeded.
func TestEtcdConflict(t *testing.T) {
	_, open := etcdFixture(t)
	a, b := open("/c"), open("/c")
	inA := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- a.Update(func(tx model.Tx) error {
			tx.Get(model.KindEIP, "x")
			<-inA // b commits meanwhile
			return tx.Put(model.KindEIP, "x", []byte("from-a"))
		})
	}()
	time.Sleep(100 * time.Millisecond)
	if err := b.Update(func(tx model.Tx) error { return tx.Put(model.KindEIP, "x", []byte("from-b")) }); err != nil {
		t.Fatal(err)
	}
	close(inA)
	if err := <-done; !errors.Is(err, model.ErrStoreConflict) {
		t.Fatalf("the overtaken write: %v, want ErrStoreConflict", err)
	}
	a.View(func(tx model.Tx) error {
		if v, _ := tx.Get(model.KindEIP, "x"); string(v) != "from-b" {
			t.Errorf("x is %q, want the winner's", v)
		}
		return nil
	})

	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := open("/c")
			for i := 0; i < 10; i++ {
				err := s.Update(func(tx model.Tx) error {
					v, _ := tx.Get(model.KindEIP, "n")
					var n int
					fmt.Sscan(string(v), &n)
					return tx.Put(model.KindEIP, "n", []byte(fmt.Sprint(n+1)))
				})
				if err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, model.ErrStoreConflict) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	// a's mirror follows the others' writes by its watch, some time after their
	// replies: a lost increment never shows, a late one within the deadline.
	var seen string
	for deadline := time.Now().Add(5 * time.Second); seen != fmt.Sprint(wins) && time.Now().Before(deadline); {
		a.View(func(tx model.Tx) error {
			v, _ := tx.Get(model.KindEIP, "n")
			seen = string(v)
			return nil
		})
		if seen != fmt.Sprint(wins) {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if seen != fmt.Sprint(wins) {
		t.Errorf("counter %s 5 s after %d successful increments", seen, wins)
	}
	if wins == 0 {
		t.Error("no racing write won")
	}
}

// TestEtcdCreateOnce: of eight stores racing to create one key, exactly one does,
// whatever they read; a transaction that read the kind still commits (CreateOnce
// rewrites no guard); every mirror then holds the winner's value; with etcd stopped,
// it fails with ErrStoreUnavailable.
func TestEtcdCreateOnce(t *testing.T) {
	srv, open := etcdFixture(t)
	reader := open("/o")
	// A write that read the kind before the creations, committed after them.
	readDone, inRead := make(chan error), make(chan struct{})
	go func() {
		readDone <- reader.Update(func(tx model.Tx) error {
			if v, _ := tx.Get(model.KindNonce, "n"); v != nil {
				return fmt.Errorf("read %q before any creation", v)
			}
			<-inRead
			return tx.Put(model.KindEIP, "x", []byte("1"))
		})
	}()
	time.Sleep(100 * time.Millisecond)
	stores := make([]*Etcd, 8)
	for i := range stores {
		stores[i] = open("/o")
	}
	var wg sync.WaitGroup
	created := make([]bool, len(stores))
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if created[i], err = s.CreateOnce(model.KindNonce, "n", []byte(fmt.Sprint(i))); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(inRead)
	if err := <-readDone; err != nil {
		t.Errorf("a write that read the kind, committed after a creation: %v", err)
	}
	winner := -1
	for i, c := range created {
		if c && winner >= 0 {
			t.Fatalf("stores %d and %d both created the key", winner, i)
		}
		if c {
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("no store created the key")
	}
	if again, err := stores[winner].CreateOnce(model.KindNonce, "n", []byte("again")); again || err != nil {
		t.Errorf("the winner creating the key again: %v, %v", again, err)
	}
	for i, s := range append(stores, reader) {
		var seen string
		for deadline := time.Now().Add(5 * time.Second); seen != fmt.Sprint(winner) && time.Now().Before(deadline); {
			s.View(func(tx model.Tx) error {
				v, _ := tx.Get(model.KindNonce, "n")
				seen = string(v)
				return nil
			})
			if seen != fmt.Sprint(winner) {
				time.Sleep(50 * time.Millisecond)
			}
		}
		if seen != fmt.Sprint(winner) {
			t.Errorf("store %d reads %q 5 s after store %d created the key", i, seen, winner)
		}
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if _, err := reader.CreateOnce(model.KindNonce, "m", []byte("1")); !errors.Is(err, model.ErrStoreUnavailable) || time.Since(t0) > 3*time.Second {
		t.Errorf("CreateOnce with etcd stopped: %v after %v", err, time.Since(t0))
	}
}

// TestEtcdUnavailableAndWatch: a change by another client is reported by Watch; with
// etcd stopped a write fails with ErrStoreUnavailable within the timeout, and reads
// are served from the mirror, flagged stale; once it is back writes work again,
// nothing committed was lost, and the mirrors are current.
func TestEtcdUnavailableAndWatch(t *testing.T) {
	srv, open := etcdFixture(t)
	a, b := open("/w"), open("/w")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes := a.Watch(ctx)
	time.Sleep(200 * time.Millisecond)
	if err := b.Update(func(tx model.Tx) error { return tx.Put(model.KindEIP, "k", []byte("1")) }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changes:
	case <-time.After(2 * time.Second):
		t.Fatal("no change reported within 2 s of another client's write")
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	err := a.Update(func(tx model.Tx) error { return tx.Put(model.KindEIP, "k", []byte("2")) })
	if !errors.Is(err, model.ErrStoreUnavailable) || time.Since(t0) > 3*time.Second {
		t.Errorf("a write with etcd stopped: %v after %v", err, time.Since(t0))
	}
	// Reads are served from the mirror, flagged stale once a look at etcd failed.
	waitStale := time.Now()
	for !a.Stale() && time.Since(waitStale) < 3*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	if !a.Stale() {
		t.Error("etcd stopped for 3 s and the mirror does not say it may be stale")
	}
	if err := a.View(func(tx model.Tx) error {
		v, err := tx.Get(model.KindEIP, "k")
		if string(v) != "1" {
			t.Errorf("a read with etcd stopped: %q, want the last value", v)
		}
		return err
	}); err != nil {
		t.Errorf("a read with etcd stopped: %v", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = a.Update(func(tx model.Tx) error { return tx.Put(model.KindEIP, "k2", []byte("3")) })
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a write once etcd is back: %v", err)
	}
	a.View(func(tx model.Tx) error {
		v1, _ := tx.Get(model.KindEIP, "k")
		v2, _ := tx.Get(model.KindEIP, "k2")
		if string(v1) != "1" || string(v2) != "3" {
			t.Errorf("after the restart: k=%q k2=%q", v1, v2)
		}
		return nil
	})
	// The other client's mirror follows too, and neither is stale any more.
	deadline = time.Now().Add(5 * time.Second)
	for (a.Stale() || b.Stale()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if a.Stale() || b.Stale() {
		t.Error("still stale 5 s after etcd came back")
	}
	// Its watch delivers the write some time after the writer's reply: not stale is
	// not caught up.
	var seen string
	for deadline = time.Now().Add(5 * time.Second); seen != "3" && time.Now().Before(deadline); {
		b.View(func(tx model.Tx) error {
			v, _ := tx.Get(model.KindEIP, "k2")
			seen = string(v)
			return nil
		})
		if seen != "3" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if seen != "3" {
		t.Errorf("the other client reads k2=%q 5 s after the restart", seen)
	}
}
