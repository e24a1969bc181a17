// Package store persists the model in an embedded bbolt database. Every API write is
// one bbolt transaction: it commits whole or not at all, also if the process dies.
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eipgw/eipgw/control/model"
	bolt "go.etcd.io/bbolt"
)

var (
	// ErrNoState means the state file does not exist and creating it was not asked for.
	ErrNoState = errors.New("no state file")
	// ErrCorrupt means the state file exists but cannot be read as eipgw state.
	ErrCorrupt = errors.New("state file is corrupt or not eipgw state")
	// ErrInUse means another process (another eipd) holds the state file open.
	ErrInUse = errors.New("state file is in use by another process")
)

const (
	metaBucket = "meta"
	schemaKey  = "schema"
	// Schema 2 keeps the EIP indexes out of the file (indexes.go); a schema 1 file,
	// which has them, is taken as it is and its index buckets dropped at open.
	schemaVersion     = "2"
	schemaWithIndexes = "1"
)

// Store is the open state file.
type Store struct {
	db      *bolt.DB
	indexes indexVersions
}

// Open opens the state file at path. A missing file is created only when create is
// set, so a lost state directory is noticed instead of silently starting empty (and
// then unbinding every EIP). A file that is not intact eipgw state is refused.
func Open(path string, create bool) (_ *Store, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !create {
		return nil, fmt.Errorf("open state %s: %w (create it with eipd --init)", path, ErrNoState)
	}
	db, err := openBolt(path, create)
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, fmt.Errorf("open state %s: %w (is another eipd running?)", path, ErrInUse)
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w: %v", path, ErrCorrupt, err)
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("open state %s: %w: %v", path, ErrCorrupt, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket([]byte(metaBucket))
		if meta == nil {
			if tx.Bucket([]byte(model.KindEIP)) != nil {
				return fmt.Errorf("%w: no schema marker", ErrCorrupt)
			}
			if meta, err = tx.CreateBucket([]byte(metaBucket)); err != nil {
				return err
			}
			if err := meta.Put([]byte(schemaKey), []byte(schemaVersion)); err != nil {
				return err
			}
		}
		switch v := string(meta.Get([]byte(schemaKey))); v {
		case schemaVersion:
		case schemaWithIndexes:
			if err := dropIndexBuckets(tx, meta); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: schema %q, this build reads %q", ErrCorrupt, v, schemaVersion)
		}
		for _, k := range model.Kinds {
			if isIndexKind(k) {
				continue
			}
			if _, err := tx.CreateBucketIfNotExists([]byte(k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &Store{db: db}
	err = db.View(func(tx *bolt.Tx) error {
		current, err := buildIndexes(tx)
		s.indexes.current = current
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w: %v", path, ErrCorrupt, err)
	}
	return s, nil
}

// dropIndexBuckets turns a schema 1 file into schema 2: its index buckets go, as the
// indexes are rebuilt from the EIP records at each open. A build of schema 1 refuses
// the file afterwards (it checks the schema), so it never runs without its indexes.
func dropIndexBuckets(tx *bolt.Tx, meta *bolt.Bucket) error {
	for _, k := range model.EIPIndexKinds {
		if err := tx.DeleteBucket([]byte(k)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return fmt.Errorf("drop index bucket %s: %w", k, err)
		}
	}
	return meta.Put([]byte(schemaKey), []byte(schemaVersion))
}

// openBolt opens the file, turning bbolt's panics on some damaged files into errors.
// A file shorter than its own meta pages say would fault the whole process through
// the memory map (SIGBUS, which no recover catches), so that is checked first.
func openBolt(path string, create bool) (db *bolt.DB, err error) {
	if err := checkLength(path, create); err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	// The free-page list is not written at each commit but rebuilt at open (a walk of
	// the file, as the consistency check at open makes anyway): at 100,000 EIPs
	// writing it was half of each commit's time. It is kept as a map of spans: the
	// default array is merged into a new slice of every free page at each commit
	// (150 KiB a write at 100,000 EIPs, half of all a write allocated), a cost that
	// follows the file's free pages, which a single large transaction (a pass
	// settling every EIP) leaves by the hundred thousand. The array's lowest-first
	// picks did put a commit's pages side by side more often, which made a group
	// commit's sync 15% shorter with 15,000 free pages; the map's picks are in any
	// order, each page a write of its own.
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
}

// Close closes the state file.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in one read-write transaction; any error rolls everything back, a
// panic in fn too.
func (s *Store) Update(fn func(model.Tx) error) error {
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback()
		}
	}()
	work := s.indexes.forWrite(tx.ID())
	if err := fn(boltTx{tx: tx, idx: work}); err != nil {
		return err
	}
	done = true
	return s.indexes.commit(tx, work)
}

// View runs fn in a read-only transaction.
func (s *Store) View(fn func(model.Tx) error) error {
	for {
		tx, err := s.db.Begin(false)
		if err != nil {
			return err
		}
		idx, ok := s.indexes.forRead(tx.ID())
		if !ok {
			_ = tx.Rollback() // a commit came between; its version is the current one now
			continue
		}
		defer tx.Rollback()
		return fn(boltTx{tx: tx, idx: idx})
	}
}

// boltTx is one transaction: records in bbolt, the EIP indexes in idx.
type boltTx struct {
	tx  *bolt.Tx
	idx *indexVersion
}

// index is kind's in-memory index, or false when kind is stored in the file.
func (t boltTx) index(kind string) (memIndex, bool) {
	tree, ok := t.idx.trees[kind]
	return memIndex{tree: tree, writable: t.tx.Writable()}, ok
}

func (t boltTx) bucket(kind string) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(kind))
	if b == nil {
		return nil, fmt.Errorf("state has no bucket %q", kind)
	}
	return b, nil
}

func (t boltTx) Get(kind, id string) ([]byte, error) {
	if m, ok := t.index(kind); ok {
		return m.get(id), nil
	}
	b, err := t.bucket(kind)
	if err != nil {
		return nil, err
	}
	v := b.Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	return append([]byte(nil), v...), nil // bbolt's slice dies with the transaction
}

func (t boltTx) Put(kind, id string, v []byte) error {
	if m, ok := t.index(kind); ok {
		return m.put(id, v)
	}
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	return b.Put([]byte(id), v)
}

func (t boltTx) Delete(kind, id string) error {
	if m, ok := t.index(kind); ok {
		return m.delete(id)
	}
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	return b.Delete([]byte(id))
}

func (t boltTx) ForEachPrefix(kind, prefix string, fn func(string, []byte) error) error {
	if m, ok := t.index(kind); ok {
		// As bbolt's, the values stay valid after fn: callers may keep them.
		return m.forEachPrefix(prefix, func(k, v []byte) error { return fn(string(k), bytes.Clone(v)) })
	}
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

// CountKeys counts an EIP index's keys without a walk when no prefix is asked
// (model.KeyCounter).
func (t boltTx) CountKeys(kind, prefix string) (int, bool, error) {
	if m, ok := t.index(kind); ok && prefix == "" {
		return m.tree.Len(), true, nil
	}
	return 0, false, nil
}

func (t boltTx) ForEach(kind string, fn func(string, []byte) error) error {
	return t.ForEachRaw(kind, func(k, v []byte) error { return fn(string(k), v) })
}

func (t boltTx) ForEachRaw(kind string, fn func(key, value []byte) error) error {
	if m, ok := t.index(kind); ok {
		return m.forEachPrefix("", fn)
	}
	b, err := t.bucket(kind)
	if err != nil {
		return err
	}
	return b.ForEach(fn)
}

// bbolt's file layout (its meta page, little-endian on the platforms we build for):
// a 16-byte page header, then magic, version, page size, flags, the root bucket (16
// bytes), the freelist page id, the high-water page id, the transaction id.
const (
	boltMagic       = 0xED0CDAED
	metaMagicOff    = 16
	metaPageSizeOff = 24
	metaHighOff     = 56
	metaLen         = 80
)

// checkLength refuses a file that is shorter than its meta pages' high-water mark, and
// an empty one unless creating was asked for: bbolt would initialise it as a new store,
// and the start-up reconcile would then remove every binding (a truncated write, a full
// disk or a stray `> eipgw.db` leaves exactly that).
func checkLength(path string, create bool) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // bbolt creates it
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		if create {
			return nil
		}
		return errors.New("file is empty (start with eipd --init to make a new, empty state)")
	}
	head := make([]byte, metaLen)
	if _, err := f.ReadAt(head, 0); err != nil {
		return fmt.Errorf("read meta page: %w", err)
	}
	if binary.LittleEndian.Uint32(head[metaMagicOff:]) != boltMagic {
		return errors.New("not a bbolt file")
	}
	pageSize := int64(binary.LittleEndian.Uint32(head[metaPageSizeOff:]))
	if pageSize < 512 || pageSize > 1<<16 {
		return fmt.Errorf("implausible page size %d", pageSize)
	}
	for _, off := range []int64{0, pageSize} {
		if _, err := f.ReadAt(head, off); err != nil {
			return fmt.Errorf("read meta page: %w", err)
		}
		if binary.LittleEndian.Uint32(head[metaMagicOff:]) != boltMagic {
			continue
		}
		if high := int64(binary.LittleEndian.Uint64(head[metaHighOff:])); high*pageSize > st.Size() {
			return fmt.Errorf("file is %d bytes but its pages reach %d", st.Size(), high*pageSize)
		}
	}
	return nil
}

// Summary is what Inspect found in a state file.
type Summary struct {
	EIPs         int // allocated
	Associations int // associated with a resource
}

// Inspect reads the state file at path without changing it (eipd --check): the checks
// Open makes (present, not empty or short, bbolt, consistent, eipgw's schema), then
// counts. A file a running eipd holds is ErrInUse.
func Inspect(path string) (Summary, error) {
	var sum Summary
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return sum, fmt.Errorf("state %s: %w (create it with eipd --init)", path, ErrNoState)
	}
	if err := checkLength(path, false); err != nil {
		return sum, fmt.Errorf("state %s: %w: %v", path, ErrCorrupt, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		return sum, fmt.Errorf("state %s: %w (a running eipd holds it)", path, ErrInUse)
	}
	if err != nil {
		return sum, fmt.Errorf("state %s: %w: %v", path, ErrCorrupt, err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		meta := tx.Bucket([]byte(metaBucket))
		if meta == nil {
			return fmt.Errorf("%w: not eipgw state (no schema marker)", ErrCorrupt)
		}
		if v := string(meta.Get([]byte(schemaKey))); v != schemaVersion && v != schemaWithIndexes {
			return fmt.Errorf("%w: schema %q, this build reads %q", ErrCorrupt, v, schemaVersion)
		}
		idx, err := buildIndexes(tx)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		t := boltTx{tx: tx, idx: idx}
		if sum.EIPs, err = model.CountEIPs(t); err != nil {
			return err
		}
		sum.Associations, err = model.CountAssociations(t)
		return err
	})
	if err != nil {
		return sum, fmt.Errorf("state %s: %w", path, err)
	}
	return sum, nil
}

// Backup writes a consistent copy of the open state file to w, from one read
// transaction: writes go on meanwhile and land in the next copy. The copy is a state
// file as it is (Inspect reads it; put in place of the state file, eipd starts on it).
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// BackupClosed is Backup for a state file no eipd holds: opened read-only, checked as
// Inspect checks it, then copied.
func BackupClosed(path string, w io.Writer) (int64, error) {
	if _, err := Inspect(path); err != nil {
		return 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 500 * time.Millisecond})
	if errors.Is(err, bolt.ErrTimeout) {
		return 0, fmt.Errorf("state %s: %w (a running eipd holds it)", path, ErrInUse)
	}
	if err != nil {
		return 0, fmt.Errorf("state %s: %w", path, err)
	}
	defer db.Close()
	return (&Store{db: db}).Backup(w)
}
