package store

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/eipgw/eipgw/control/model"
	"github.com/google/btree"
	bolt "go.etcd.io/bbolt"
)

// The EIP indexes (model.EIPIndexKinds) are not written to the state file: they are
// rebuilt from the EIP records at open and kept in memory, one B-tree a kind. On disk
// each index is a bucket whose every change dirties a three-level path of pages at
// 100,000 EIPs, so an association, which changes three or four indexes, committed 16
// pages; without them it commits 5. The file holds what cannot be rebuilt; a crash can
// lose no index entry, since the indexes are recomputed from what was committed.
//
// Each committed transaction has its own version of the indexes, so a reader sees the
// indexes of the very commit its bbolt snapshot is from: a write works on a
// copy-on-write clone of the last version, installed as the pending version before
// bbolt commits and made the current one after.

// indexItem is one index entry.
type indexItem struct{ key, value []byte }

func itemLess(a, b indexItem) bool { return bytes.Compare(a.key, b.key) < 0 }

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

// buildIndexes computes the indexes of the EIP records in tx.
func buildIndexes(tx *bolt.Tx) (*indexVersion, error) {
	v := &indexVersion{txid: tx.ID(), trees: map[string]*btree.BTreeG[indexItem]{}}
	for _, k := range model.EIPIndexKinds {
		v.trees[k] = btree.NewG(indexDegree, itemLess)
	}
	eips := tx.Bucket([]byte(model.KindEIP))
	if eips == nil {
		return v, nil
	}
	err := eips.ForEach(func(id, raw []byte) error {
		entries, err := model.EIPIndexEntries(raw)
		if err != nil {
			return fmt.Errorf("EIP %s: %w", id, err)
		}
		for _, e := range entries {
			if _, dup := v.trees[e.Kind].ReplaceOrInsert(indexItem{[]byte(e.Key), []byte(e.Value)}); dup {
				return fmt.Errorf("EIP %s: index %s already has %q (two EIPs claim it)", id, e.Kind, e.Key)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild EIP indexes: %w", err)
	}
	return v, nil
}

// memIndex is one index kind as a transaction sees it; writable only in a write
// transaction's own version.
type memIndex struct {
	tree     *btree.BTreeG[indexItem]
	writable bool
}

func (m memIndex) get(key string) []byte {
	it, ok := m.tree.Get(indexItem{key: []byte(key)})
	if !ok {
		return nil
	}
	return bytes.Clone(it.value)
}

func (m memIndex) put(key string, value []byte) error {
	if !m.writable {
		return bolt.ErrTxNotWritable
	}
	m.tree.ReplaceOrInsert(indexItem{[]byte(key), bytes.Clone(value)})
	return nil
}

func (m memIndex) delete(key string) error {
	if !m.writable {
		return bolt.ErrTxNotWritable
	}
	m.tree.Delete(indexItem{key: []byte(key)})
	return nil
}

// forEachPrefix visits the entries whose key starts with prefix, in key order. In a
// write transaction it walks a clone, so fn may change the index as it goes (bbolt
// allows that of its cursors too).
func (m memIndex) forEachPrefix(prefix []byte, fn func(key, value []byte) error) error {
	tree := m.tree
	if m.writable {
		tree = tree.Clone()
	}
	var err error
	tree.AscendGreaterOrEqual(indexItem{key: prefix}, func(it indexItem) bool {
		if !bytes.HasPrefix(it.key, prefix) {
			return false
		}
		err = fn(it.key, it.value)
		return err == nil
	})
	return err
}
