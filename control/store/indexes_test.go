package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipgw/eipgw/control/model"
	bolt "go.etcd.io/bbolt"
)

// indexWorld is a store with a model over it.
type indexWorld struct {
	t    *testing.T
	path string
	st   *Store
	svc  *model.Service
}

func newIndexWorld(t *testing.T) *indexWorld {
	path := filepath.Join(t.TempDir(), "state.db")
	st, err := Open(path, true)
	if err != nil {
		t.Fatal(err)
	}
	w := &indexWorld{t: t, path: path, st: st, svc: &model.Service{Region: "eipgw-1", Pool: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}}
	t.Cleanup(func() { w.st.Close() })
	return w
}

// do runs one action in its own write and returns its response's fields.
func (w *indexWorld) do(account, action string, kv ...string) map[string]any {
	w.t.Helper()
	p := model.Params{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	var fields map[string]any
	err := w.st.Update(func(tx model.Tx) error {
		resp, err := w.svc.Do(tx, account, action, p, time.Now())
		if err != nil {
			return err
		}
		raw, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, &fields)
	})
	if err != nil {
		w.t.Fatalf("%s: %v", action, err)
	}
	return fields
}

// populate registers n instances with an EIP each, associates every other one and
// settles them, as a running gateway leaves them.
func (w *indexWorld) populate(n int) {
	w.t.Helper()
	for i := range n {
		id := fmt.Sprintf("i-%04d", i)
		w.do("admin", "RegisterInstance", "InstanceId", id, "VpcId", "vpc-1", "PrivateIpAddress", fmt.Sprintf("10.0.0.%d", i+1),
			"MacAddress", fmt.Sprintf("02:00:00:00:00:%02x", i))
		eip := w.do("tenant", "AllocateEipAddress", "Bandwidth", "20")["AllocationId"].(string)
		if i%2 == 0 {
			w.do("tenant", "AssociateEipAddress", "AllocationId", eip, "InstanceId", id)
		}
	}
	if err := w.st.Update(func(tx model.Tx) error {
		pending, err := model.Pending(tx)
		if err != nil {
			return err
		}
		_, err = model.Settle(tx, pending)
		return err
	}); err != nil {
		w.t.Fatal(err)
	}
}

// indexDump is every EIP index entry the store shows, one line each.
func (w *indexWorld) indexDump() string {
	w.t.Helper()
	var b strings.Builder
	if err := w.st.View(func(tx model.Tx) error { return dumpIndexes(tx, &b) }); err != nil {
		w.t.Fatal(err)
	}
	return b.String()
}

func dumpIndexes(tx model.Tx, b *strings.Builder) error {
	for _, k := range model.EIPIndexKinds {
		if err := tx.ForEach(k, func(key string, v []byte) error {
			fmt.Fprintf(b, "%s %s=%s\n", k, key, v)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (w *indexWorld) reopen() {
	w.t.Helper()
	w.st.Close()
	var err error
	if w.st, err = Open(w.path, false); err != nil {
		w.t.Fatalf("reopen: %v", err)
	}
}

// TestIndexesAreRebuiltAtOpen: the EIP indexes are not in the file, and a reopened
// store shows the same ones as the store that wrote the records.
func TestIndexesAreRebuiltAtOpen(t *testing.T) {
	w := newIndexWorld(t)
	w.populate(6)
	before := w.indexDump()
	for _, want := range []string{"eip_by_ip 198.51.100.", "eip_by_target EcsInstance|i-0000|", "eip_by_private 10.0.0.1=198.51.100.", "eip_bandwidth 198.51.100."} {
		if !strings.Contains(before, want) {
			t.Fatalf("indexes lack %q:\n%s", want, before)
		}
	}
	if strings.Contains(before, "eip_pending") {
		t.Fatalf("settled EIPs still pending:\n%s", before)
	}
	w.st.Close()
	fileHoldsNoIndexes(t, w.path)
	w.reopen()
	if after := w.indexDump(); after != before {
		t.Fatalf("indexes after reopen:\n%s\nbefore:\n%s", after, before)
	}
	sum, err := func() (Summary, error) { w.st.Close(); return Inspect(w.path) }()
	if err != nil || sum.EIPs != 6 || sum.Associations != 3 {
		t.Fatalf("Inspect: %+v, %v; want 6 EIPs, 3 associated", sum, err)
	}
	w.reopen()
}

// TestSchema1IsMigrated: a file written with the indexes in it (schema 1) opens, its
// index buckets are dropped (stale entries in them with them) and the indexes come
// from its records; a build of schema 1 would then refuse the file.
func TestSchema1IsMigrated(t *testing.T) {
	w := newIndexWorld(t)
	w.populate(4)
	want := w.indexDump()
	w.st.Close()
	db, err := bolt.Open(w.path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte(metaBucket)).Put([]byte(schemaKey), []byte(schemaWithIndexes)); err != nil {
			return err
		}
		for _, k := range model.EIPIndexKinds {
			b, err := tx.CreateBucket([]byte(k))
			if err != nil {
				return err
			}
			if err := b.Put([]byte("stale"), []byte("left by schema 1")); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if sum, err := Inspect(w.path); err != nil || sum.EIPs != 4 {
		t.Fatalf("Inspect of a schema 1 file: %+v, %v", sum, err)
	}
	w.reopen()
	if got := w.indexDump(); got != want {
		t.Fatalf("indexes of the migrated file:\n%s\nwant:\n%s", got, want)
	}
	w.st.Close()
	fileHoldsNoIndexes(t, w.path)
	w.reopen()
}

// fileHoldsNoIndexes fails unless the closed state file at path is of this build's
// schema and has no index bucket.
func fileHoldsNoIndexes(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := string(tx.Bucket([]byte(metaBucket)).Get([]byte(schemaKey))); v != schemaVersion {
			t.Errorf("the file's schema is %q, want %q", v, schemaVersion)
		}
		for _, k := range model.EIPIndexKinds {
			if tx.Bucket([]byte(k)) != nil {
				t.Errorf("the file has index bucket %s", k)
			}
		}
		return nil
	})
}

// TestDamagedEIPRecordIsRefused: an EIP record the indexes cannot be built from makes
// the file corrupt, not a store with an EIP missing from its indexes.
func TestDamagedEIPRecordIsRefused(t *testing.T) {
	w := newIndexWorld(t)
	w.populate(2)
	if err := w.st.Update(func(tx model.Tx) error { return tx.Put(model.KindEIP, "eip-damaged", []byte("{not json")) }); err != nil {
		t.Fatal(err)
	}
	w.st.Close()
	if _, err := Open(w.path, false); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "eip-damaged") {
		t.Fatalf("open with a damaged EIP record: %v, want ErrCorrupt naming it", err)
	}
	if _, err := Inspect(w.path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Inspect with a damaged EIP record: %v, want ErrCorrupt", err)
	}
	var err error
	w.st, err = Open(filepath.Join(t.TempDir(), "other.db"), true) // for the cleanup
	if err != nil {
		t.Fatal(err)
	}
}

// TestFailedWriteLeavesIndexesAlone: a write that fails, or panics, after changing
// the indexes leaves them as they were, like its records.
func TestFailedWriteLeavesIndexesAlone(t *testing.T) {
	w := newIndexWorld(t)
	w.populate(4)
	before := w.indexDump()
	eip := w.do("tenant", "AllocateEipAddress")["AllocationId"].(string)
	afterAllocate := w.indexDump()
	boom := errors.New("boom")
	err := w.st.Update(func(tx model.Tx) error {
		if _, err := w.svc.Do(tx, "tenant", "AssociateEipAddress", model.Params{"AllocationId": eip, "InstanceId": "i-0001"}, time.Now()); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("write: %v, want boom", err)
	}
	if got := w.indexDump(); got != afterAllocate {
		t.Fatalf("a failed write changed the indexes:\n%s\nwant:\n%s", got, afterAllocate)
	}
	func() {
		defer func() { _ = recover() }()
		_ = w.st.Update(func(tx model.Tx) error {
			_, _ = w.svc.Do(tx, "tenant", "ReleaseEipAddress", model.Params{"AllocationId": eip}, time.Now())
			panic("write panics")
		})
	}()
	if got := w.indexDump(); got != afterAllocate {
		t.Fatalf("a panicking write changed the indexes:\n%s\nwant:\n%s", got, afterAllocate)
	}
	w.do("tenant", "ReleaseEipAddress", "AllocationId", eip)
	if got := w.indexDump(); got != before {
		t.Fatalf("after release:\n%s\nwant:\n%s", got, before)
	}
}

// TestReadersSeeTheirCommitsIndexes: a read that began before a write committed sees
// the indexes of its own snapshot, a read after it the new ones; writers and readers
// running together never see an index that disagrees with the records (run with
// -race too).
func TestReadersSeeTheirCommitsIndexes(t *testing.T) {
	w := newIndexWorld(t)
	w.populate(2)
	inRead, wrote := make(chan struct{}), make(chan struct{})
	var seen string
	done := make(chan error)
	go func() {
		done <- w.st.View(func(tx model.Tx) error {
			close(inRead)
			<-wrote
			var b strings.Builder
			err := dumpIndexes(tx, &b)
			seen = b.String()
			return err
		})
	}()
	<-inRead
	before := w.indexDump()
	w.do("tenant", "AllocateEipAddress")
	close(wrote)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if seen != before {
		t.Fatalf("a read begun before the write saw:\n%s\nwant:\n%s", seen, before)
	}
	if w.indexDump() == before {
		t.Fatal("a read after the write does not see it")
	}

	// Writers allocate and release; readers check that every EIP record is in the
	// address index and that the index names no other.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := w.st.View(recordsMatchAddressIndex); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 40 {
		id := w.do("tenant", "AllocateEipAddress")["AllocationId"].(string)
		w.do("tenant", "ReleaseEipAddress", "AllocationId", id)
	}
	close(stop)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// recordsMatchAddressIndex fails when the address index and the EIP records disagree.
func recordsMatchAddressIndex(tx model.Tx) error {
	byIP := map[string]string{}
	if err := tx.ForEach("eip_by_ip", func(ip string, id []byte) error { byIP[string(id)] = ip; return nil }); err != nil {
		return err
	}
	n := 0
	if err := tx.ForEach(model.KindEIP, func(id string, raw []byte) error {
		n++
		var e model.EIP
		if err := json.Unmarshal(raw, &e); err != nil {
			return err
		}
		if byIP[id] != e.IPAddress {
			return fmt.Errorf("EIP %s at %s, the index says %q", id, e.IPAddress, byIP[id])
		}
		return nil
	}); err != nil {
		return err
	}
	if n != len(byIP) {
		return fmt.Errorf("%d EIP records, %d in the address index", n, len(byIP))
	}
	return nil
}

// TestSortedByKey: the sort on eight bytes past the shared prefix orders keys as a
// plain string sort does, with keys that tie on those bytes, that are prefixes of
// each other, and that hold zero bytes.
func TestSortedByKey(t *testing.T) {
	keys := []string{"198.51.100.10", "198.51.100.2", "198.51.100.100", "198.51.100.1", "198.51.100.1\x00", "198.51.100.12345678a",
		"198.51.100.12345678", "198.51.100.12345678b", "198.51.100.9", "198.51.100.", "198.51.100.255"}
	for _, extra := range [][]string{nil, {"1"}, {"EcsInstance|i-1|eip-b", "EcsInstance|i-1|eip-a", "EcsInstance|i-10|eip-c"}} {
		in := append(append([]string(nil), keys...), extra...)
		es := make([]model.IndexEntry, len(in))
		for i, k := range in {
			es[i] = model.IndexEntry{Kind: "k", Key: k, Value: fmt.Sprint(i)}
		}
		want := append([]string(nil), in...)
		slices.Sort(want)
		var got []string
		for _, e := range sortedByKey(es) {
			got = append(got, e.Key)
		}
		if !slices.Equal(got, want) {
			t.Errorf("sorted:\n%q\nwant:\n%q", got, want)
		}
	}
}

// TestIndexEntriesOfAnyLength: entries that fit in an item and entries that do not
// are read back whole, in key order, by Get, ForEach and ForEachRaw; one longer than
// the limit is refused.
func TestIndexEntriesOfAnyLength(t *testing.T) {
	w := newIndexWorld(t)
	kind := model.EIPIndexKinds[1]
	want := map[string]string{}
	for _, n := range []int{1, 40, 79, 80, 81, 200} {
		key := fmt.Sprintf("%03d|%s", n, strings.Repeat("k", n))
		want[key] = strings.Repeat("v", n)
	}
	want["000|empty value"] = ""
	if err := w.st.Update(func(tx model.Tx) error {
		for k, v := range want {
			if err := tx.Put(kind, k, []byte(v)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.st.Update(func(tx model.Tx) error {
		return tx.Put(kind, "huge", make([]byte, maxEntryBytes))
	}); err == nil {
		t.Fatal("an entry over the limit was taken")
	}
	keys := slices.Sorted(maps.Keys(want))
	_ = w.st.View(func(tx model.Tx) error {
		for k, v := range want {
			if got, err := tx.Get(kind, k); err != nil || string(got) != v {
				t.Errorf("Get %q: %q, %v; want %q", k, got, err, v)
			}
		}
		var seen, seenRaw []string
		_ = tx.ForEach(kind, func(k string, v []byte) error {
			seen = append(seen, k)
			if string(v) != want[k] {
				t.Errorf("ForEach %q: %q", k, v)
			}
			return nil
		})
		_ = tx.ForEachRaw(kind, func(k, v []byte) error {
			seenRaw = append(seenRaw, string(k))
			if string(v) != want[string(k)] {
				t.Errorf("ForEachRaw %q: %q", k, v)
			}
			return nil
		})
		if !slices.Equal(seen, keys) || !slices.Equal(seenRaw, keys) {
			t.Errorf("walks visit %q and %q, want %q", seen, seenRaw, keys)
		}
		var prefixed []string
		_ = tx.ForEachPrefix(kind, "08", func(k string, _ []byte) error { prefixed = append(prefixed, k); return nil })
		if len(prefixed) != 2 || !strings.HasPrefix(prefixed[0], "080|") || !strings.HasPrefix(prefixed[1], "081|") {
			t.Errorf("prefix 08: %q", prefixed)
		}
		return nil
	})
}
