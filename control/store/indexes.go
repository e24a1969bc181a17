package store

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/eipgw/eipgw/control/model"
	"github.com/google/btree"
	bolt "go.etcd.io/bbolt"
)

// The EIP indexes (model.EIPIndexKinds) are not written to the state file: they are
// rebuilt from the EIP records at open and kept in memory, one B-tree a kind. On disk
// each index is a bucket whose every change dirties a three-level path of pages at
// 100,000 EIPs, so an association, which changes three or four indexes, wrote 16
// pages at its commit; without them it writes 6. The file holds what cannot be
// rebuilt; a crash can lose no index entry, since the indexes are recomputed from
// what was committed.
//
// Each committed transaction has its own version of the indexes, so a reader sees the
// indexes of the very commit its bbolt snapshot is from: a write works on a
// copy-on-write clone of the last version, installed as the pending version before
// bbolt commits and made the current one after.

// indexItem is one index entry. Key and value lie in the item itself when together
// no longer than inlineBytes, in the B-tree node's own array: a walk then reads
// memory in order, and the garbage collector finds no pointer to follow in the item
// (with a pointer an entry, their marking took a fifth of a start-up reconcile at
// 100,000 EIPs). 48 bytes hold the entries of the indexes a start-up walks (an
// address and an address, a status, an AllocationId or a bandwidth); longer ones
// (a target index key with a long instance ID) are in long. Each byte more costs
// about 4 MB at a million EIPs (four million entries).
type indexItem struct {
	long   string // key and value, when longer together than inlineBytes
	keyLen uint16
	size   uint16 // of key and value together
	inline [inlineBytes]byte
}

const inlineBytes = 48

// maxEntryBytes bounds an entry's key and value together (bbolt's own key limit is
// 32 KiB).
const maxEntryBytes = 1<<16 - 1

func newItem(key string, value []byte) indexItem {
	it := indexItem{keyLen: uint16(len(key)), size: uint16(len(key) + len(value))}
	if len(key)+len(value) > inlineBytes {
		it.long = key + string(value)
	} else {
		copy(it.inline[copy(it.inline[:], key):], value)
	}
	return it
}

// kv is the entry's key and value, one after the other; read only.
func (it *indexItem) kv() []byte {
	if it.long != "" {
		return unsafe.Slice(unsafe.StringData(it.long), len(it.long))
	}
	return it.inline[:it.size]
}

func itemLess(a, b indexItem) bool {
	return bytes.Compare(a.kv()[:a.keyLen], b.kv()[:b.keyLen]) < 0
}

// probe is an item to search for.
func probe(key string) indexItem { return newItem(key, nil) }

// indexDegree is the B-trees' degree: nodes of up to 63 entries.
const indexDegree = 32

// indexVersion is the indexes as of one committed bbolt transaction.
type indexVersion struct {
	txid  int
	trees map[string]*btree.BTreeG[indexItem]
}

// clone is a copy of v that can be changed without changing v, for transaction txid.
// Each tree is shared until written (copy on write). Clone must not run concurrently
// with another clone of v; bbolt runs one writer at a time.
func (v *indexVersion) clone(txid int) *indexVersion {
	out := &indexVersion{txid: txid, trees: make(map[string]*btree.BTreeG[indexItem], len(v.trees))}
	for k, t := range v.trees {
		out.trees[k] = t.Clone()
	}
	return out
}

// indexVersions hands each transaction the version of the indexes it must see.
type indexVersions struct {
	mu      sync.Mutex
	current *indexVersion // as of the last commit
	pending *indexVersion // a write being committed, from just before its bbolt commit
}

// forRead is the version a read transaction with bbolt id txid sees; false when a
// commit overtook the reader between its begin and this call (it begins again).
func (vs *indexVersions) forRead(txid int) (*indexVersion, bool) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	switch {
	case vs.current.txid == txid:
		return vs.current, true
	case vs.pending != nil && vs.pending.txid == txid:
		return vs.pending, true
	}
	return nil, false
}

// forWrite is a private copy of the current version for a write transaction.
func (vs *indexVersions) forWrite(txid int) *indexVersion {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	return vs.current.clone(txid)
}

// commit commits tx, whose index changes are in work: readers that begin after the
// bbolt commit see work.
func (vs *indexVersions) commit(tx *bolt.Tx, work *indexVersion) error {
	vs.mu.Lock()
	vs.pending = work
	vs.mu.Unlock()
	err := tx.Commit()
	vs.mu.Lock()
	if err == nil {
		vs.current = work
	}
	vs.pending = nil
	vs.mu.Unlock()
	return err
}

// isIndexKind tells whether kind is kept in memory (an EIP index).
func isIndexKind(kind string) bool { return slices.Contains(model.EIPIndexKinds, kind) }

// buildIndexes computes the indexes of the EIP records in tx. The records are decoded
// on every CPU; each kind's entries are sorted, then inserted in order. Inserting
// them as the records come (in AllocationId order, random in every index) cost a
// cache miss a comparison: 22 s at a million EIPs, against 2 s this way.
func buildIndexes(tx *bolt.Tx) (*indexVersion, error) {
	entries, err := decodeIndexEntries(tx)
	if err != nil {
		return nil, fmt.Errorf("rebuild EIP indexes: %w", err)
	}
	v := &indexVersion{txid: tx.ID(), trees: map[string]*btree.BTreeG[indexItem]{}}
	for _, kind := range model.EIPIndexKinds {
		es := sortedByKey(entries[kind])
		for i, e := range es {
			if i > 0 && es[i-1].Key == e.Key {
				return nil, fmt.Errorf("rebuild EIP indexes: %s has %q twice (two EIPs claim it)", kind, e.Key)
			}
			if len(e.Key)+len(e.Value) > maxEntryBytes {
				return nil, fmt.Errorf("rebuild EIP indexes: %s entry %q is %d bytes long", kind, e.Key, len(e.Key)+len(e.Value))
			}
		}
		// In key order a B-tree splits each full node in two halves and never adds to
		// the left one again: every node ends half full. So the even entries go in
		// first (nodes of half the most), then the odd ones, each between two that a
		// node already holds: the nodes fill without a split. A tree of a million
		// entries takes half the memory.
		tree := btree.NewG(indexDegree, itemLess)
		for _, first := range []int{0, 1} {
			for i := first; i < len(es); i += 2 {
				tree.ReplaceOrInsert(newItem(es[i].Key, []byte(es[i].Value)))
			}
		}
		v.trees[kind] = tree
	}
	return v, nil
}

// decodeIndexEntries is the index entries of every EIP record in tx, by kind, decoded
// by one goroutine a CPU (JSON decoding is most of a rebuild's time).
func decodeIndexEntries(tx *bolt.Tx) (map[string][]model.IndexEntry, error) {
	var ids, raws [][]byte // valid while tx is open
	if eips := tx.Bucket([]byte(model.KindEIP)); eips != nil {
		_ = eips.ForEach(func(id, raw []byte) error {
			ids, raws = append(ids, id), append(raws, raw)
			return nil
		})
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), len(raws)/1024))
	parts := make([][]model.IndexEntry, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(raws)/workers, (w+1)*len(raws)/workers
		wg.Go(func() {
			part := make([]model.IndexEntry, 0, 4*(hi-lo)) // an associated EIP has four
			for i := lo; i < hi; i++ {
				es, err := model.EIPIndexEntries(raws[i])
				if err != nil {
					errs[w] = fmt.Errorf("EIP %s: %w", ids[i], err)
					return
				}
				part = append(part, es...)
			}
			parts[w] = part
		})
	}
	wg.Wait()
	counts := map[string]int{}
	for w, part := range parts {
		if errs[w] != nil {
			return nil, errs[w]
		}
		for _, e := range part {
			counts[e.Kind]++
		}
	}
	out := map[string][]model.IndexEntry{}
	for kind, n := range counts {
		out[kind] = make([]model.IndexEntry, 0, n)
	}
	for _, part := range parts {
		for _, e := range part {
			out[e.Kind] = append(out[e.Kind], e)
		}
	}
	return out, nil
}

// sortedByKey is es in key order. The sort compares eight bytes of each key past
// the prefix all the keys share (a pool's "198.51.100."), kept in the sort's own
// array, and reads the keys themselves only on a tie: each key is a separate
// allocation, and comparing them directly cost a cache miss a comparison.
func sortedByKey(es []model.IndexEntry) []model.IndexEntry {
	if len(es) == 0 {
		return es
	}
	shared := len(es[0].Key)
	for _, e := range es[1:] {
		shared = min(shared, len(e.Key))
		for i := range shared {
			if e.Key[i] != es[0].Key[i] {
				shared = i
				break
			}
		}
	}
	type ref struct {
		head uint64 // the eight bytes after the shared prefix, big-endian, zero-padded
		i    int
	}
	refs := make([]ref, len(es))
	for i, e := range es {
		var head [8]byte
		copy(head[:], e.Key[shared:])
		refs[i] = ref{binary.BigEndian.Uint64(head[:]), i}
	}
	slices.SortFunc(refs, func(a, b ref) int {
		if c := cmp.Compare(a.head, b.head); c != 0 {
			return c
		}
		return strings.Compare(es[a.i].Key, es[b.i].Key)
	})
	out := make([]model.IndexEntry, len(es))
	for i, r := range refs {
		out[i] = es[r.i]
	}
	return out
}

// memIndex is one index kind as a transaction sees it; writable only in a write
// transaction's own version.
type memIndex struct {
	tree     *btree.BTreeG[indexItem]
	writable bool
}

func (m memIndex) get(key string) []byte {
	it, ok := m.tree.Get(probe(key))
	if !ok {
		return nil
	}
	return bytes.Clone(it.kv()[it.keyLen:])
}

func (m memIndex) put(key string, value []byte) error {
	if !m.writable {
		return bolt.ErrTxNotWritable
	}
	if len(key)+len(value) > maxEntryBytes {
		return fmt.Errorf("index entry %q is %d bytes long, at most %d", key, len(key)+len(value), maxEntryBytes)
	}
	m.tree.ReplaceOrInsert(newItem(key, value))
	return nil
}

func (m memIndex) delete(key string) error {
	if !m.writable {
		return bolt.ErrTxNotWritable
	}
	m.tree.Delete(probe(key))
	return nil
}

// forEachPrefix visits the entries whose key starts with prefix, in key order; key
// and value are valid only during fn (they are copied into one buffer, reused). In a
// write transaction it walks a clone, so fn may change the index as it goes (bbolt
// allows that of its cursors too).
func (m memIndex) forEachPrefix(prefix string, fn func(key, value []byte) error) error {
	tree := m.tree
	if m.writable {
		tree = tree.Clone()
	}
	var err error
	var entry []byte
	want := []byte(prefix)
	tree.AscendGreaterOrEqual(probe(prefix), func(it indexItem) bool {
		entry = append(entry[:0], it.kv()...)
		key := entry[:it.keyLen]
		if !bytes.HasPrefix(key, want) {
			return false
		}
		err = fn(key, entry[it.keyLen:])
		return err == nil
	})
	return err
}
