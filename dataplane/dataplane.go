// Package dataplane owns the BPF side of eipgw: it loads the NAT programs, pins their
// maps and links under a bpffs directory so that traffic keeps flowing when the owning
// process exits, adopts those pins on the next start, attaches to interfaces at XDP or
// TC, and offers typed operations on bindings and counters. It is the only package that
// touches the BPF maps.
package dataplane

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

var (
	// ErrIncompatiblePins means the pinned dataplane was made by a build whose maps
	// have another layout; it is refused rather than recreated (state loss) or used
	// (corruption). Remove it with Remove, or run the matching build.
	ErrIncompatiblePins = errors.New("pinned dataplane has an incompatible layout")
	// ErrBusy means another process holds the pinned dataplane.
	ErrBusy = errors.New("pinned dataplane is held by another process")
	// ErrNotBPFFS means the pin directory's parent is not a bpffs mount.
	ErrNotBPFFS = errors.New("pin directory is not on a bpffs mount")
	// ErrNotPinned means a read-only open found no pinned dataplane.
	ErrNotPinned = errors.New("no dataplane is pinned there")
	// ErrReadOnly means a change was asked of a read-only handle.
	ErrReadOnly = errors.New("dataplane handle is read-only")
)

// maxNatEIPs bounds Config.MaxNatEIPs: 1.5 GiB of port bitmaps.
const maxNatEIPs = 65536

// Config says where the dataplane lives and how big it is.
type Config struct {
	// PinDir is the directory on a bpffs mount that holds the pinned maps and links,
	// for example /sys/fs/bpf/eipgw. Its parent must exist.
	PinDir string
	// MaxBindings is the capacity of the 1:1 binding maps; 0 means the BPF object's
	// (MAX_BINDINGS in bpf/lib/maps.h, 131,072). A pinned dataplane with another
	// capacity is refused as incompatible.
	MaxBindings uint32
	// MaxSessions is the capacity of the NAT gateway session table (and of the
	// mapping and port tables beside it); 0 means the object's (MAX_SESSIONS,
	// 262,144). Also part of the pinned layout.
	MaxSessions uint32
	// MaxSources is the capacity of the VPC source table (registered addresses with
	// their MACs, with an EIP or not); 0 means the object's (MAX_VPC_SOURCES,
	// 131,072). Also part of the pinned layout.
	MaxSources uint32
	// MaxNatEIPs is the number of NAT gateway EIPs the dataplane can hold; each has
	// 24 KiB of port bitmaps, allocated with the dataplane. 0 means the object's
	// (MAX_NAT_EIPS, 1,024). Also part of the pinned layout.
	MaxNatEIPs uint32
	// ReadOnly opens existing pins to read bindings and counters beside the process
	// that owns them: it takes no lock, creates nothing and changes nothing.
	ReadOnly bool
}

// Dataplane is an open handle on the loaded (or adopted) BPF objects.
type Dataplane struct {
	cfg     Config
	objs    natObjects
	lock    *os.File
	adopted bool

	mu    sync.Mutex // serialises binding and source changes and the slot allocator
	slots *slotAllocator
	// The NAT EIPs' blocks of port_bitmaps, one each.
	portBlocks *slotAllocator
	sources    sourceSet // the owner's copy of vpc_sources
	// expireMu makes one user of expire_queue at a time: the collector or a purge.
	expireMu sync.Mutex
	// The owner's copies of the inbound binding halves (EIP -> private) and of the
	// cut-through EIPs (EIP -> ENI MAC): a reconcile pass lists them without walking
	// maps whose cost follows their capacity, not their use.
	bound map[uint32]uint32
	cuts  map[uint32][6]uint8
	// The owner's copy of each EIP's counter slot (1:1, cut-through and NAT gateway
	// EIPs), under mu: bandwidth limits are read and set by slot.
	slotByEIP map[uint32]uint32
	// The bucket pair of each shared bandwidth that has EIPs here (desired.Limit.Shared),
	// under mu; after a restart, BandwidthChanges takes them back from the limits.
	sharedBuckets map[string]uint32
	// The owner's copy of forward_ports (65,536 buckets to walk otherwise), under its
	// own lock: forward port changes do not take mu.
	fwdMu sync.Mutex
	fwd   map[natEndpoint]natForwardTarget
	hops  nextHopState // the owner's copy of the next-hop cache
	// hopsWanted tells a NextHopWatcher that a destination it may not know yet came
	// (a binding, a source, a cut-through EIP).
	hopsWanted chan struct{}

	// The process's own references to what it pinned or adopted, so that a removed
	// pin (rm -rf, a bpffs remount) detaches nothing and can be put back (guard.go).
	guard    sync.Mutex
	heldMaps map[string]*ebpf.Map  // pin name -> map (the abi marker included)
	links    map[string]link.Link  // link pin path -> link
	wants    map[string]attachment // interface -> what Attach put there

	// progMu guards the programs in objs, loaded on first use (programs.go).
	progMu   sync.Mutex
	programs programLoader
}

const (
	abiMapName = "abi"
	linksDir   = "links"
	bpffsMagic = 0xcafe4a11
)

// Open loads the dataplane, or adopts it when PinDir already holds one. A new
// dataplane is pinned into a temporary directory that is renamed into place, so the
// pins appear whole or not at all. The returned handle holds an exclusive lock on the
// pins until Close.
func Open(cfg Config) (*Dataplane, error) {
	if cfg.PinDir == "" {
		return nil, errors.New("open dataplane: no pin directory configured")
	}
	parent := filepath.Dir(cfg.PinDir)
	var fs unix.Statfs_t
	if err := unix.Statfs(parent, &fs); err != nil {
		return nil, fmt.Errorf("open dataplane: %w", err)
	}
	if uint32(fs.Type) != bpffsMagic {
		return nil, fmt.Errorf("open dataplane: %s: %w (mount one with: mount -t bpf bpf %s)", parent, ErrNotBPFFS, parent)
	}

	spec, err := loadNat()
	if err != nil {
		return nil, fmt.Errorf("open dataplane: parse embedded BPF object: %w", err)
	}
	// The capacities a zero field leaves to the object: as maps.h sizes its maps.
	if cfg.MaxBindings == 0 {
		cfg.MaxBindings = spec.Maps[natMapCountersBySlot].MaxEntries
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = sessionCapacity(spec.Maps[natMapSessionTable].MaxEntries)
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = spec.Maps[natMapVpcSources].MaxEntries
	}
	if cfg.MaxNatEIPs == 0 {
		cfg.MaxNatEIPs = spec.Maps[natMapNatEips].MaxEntries
	}
	if cfg.MaxNatEIPs > maxNatEIPs {
		return nil, fmt.Errorf("open dataplane: %d NAT EIPs asked, at most %d (their port bitmaps take 24 KiB each)", cfg.MaxNatEIPs, maxNatEIPs)
	}
	if cfg.ReadOnly {
		// A reader takes the capacities the owner pinned, whatever they are.
		if err := adoptCapacities(&cfg); err != nil {
			return nil, err
		}
	}
	// One spare entry in each binding map: moving a binding adds its new outbound
	// half before removing the old one, also when the table is full.
	spec.Maps[natMapInboundBindings].MaxEntries = cfg.MaxBindings + 1
	spec.Maps[natMapOutboundBindings].MaxEntries = cfg.MaxBindings + 1
	spec.Maps[natMapCutThroughs].MaxEntries = cfg.MaxBindings
	spec.Maps[natMapCountersBySlot].MaxEntries = cfg.MaxBindings
	spec.Maps[natMapRatesBySlot].MaxEntries = cfg.MaxBindings
	spec.Maps[natMapCapsBySlot].MaxEntries = cfg.MaxBindings
	spec.Maps[natMapBucketsBySlot].MaxEntries = 2 * (cfg.MaxBindings + MaxSharedBandwidths)
	spec.Maps[natMapCreditsBySlot].MaxEntries = 2 * (cfg.MaxBindings + MaxSharedBandwidths)
	spec.Maps[natMapVpcSources].MaxEntries = cfg.MaxSources
	spec.Maps[natMapNextHops].MaxEntries = cfg.MaxSources // the addresses of registered sources
	spec.Maps[natMapNatEips].MaxEntries = cfg.MaxNatEIPs
	spec.Maps[natMapPortBitmaps].MaxEntries = cfg.MaxNatEIPs * uint32(portBlockWords)
	spec.Maps[natMapSessionTable].MaxEntries = sessionBuckets(cfg.MaxSessions)
	spec.Maps[natMapSessionOverflows].MaxEntries = sessionBuckets(cfg.MaxSessions) // a count per window start
	abi, err := layoutFingerprint(spec)
	if err != nil {
		return nil, fmt.Errorf("open dataplane: %w", err)
	}

	// The parent lock only covers creation, so two processes cannot both create.
	parentLock, err := lockDir(parent, false)
	if err != nil {
		return nil, fmt.Errorf("open dataplane: lock %s: %w", parent, err)
	}
	defer parentLock.Close()

	d := &Dataplane{cfg: cfg, hopsWanted: make(chan struct{}, 1)}
	if _, err := os.Stat(cfg.PinDir); errors.Is(err, os.ErrNotExist) && cfg.ReadOnly {
		return nil, fmt.Errorf("open dataplane %s: %w", cfg.PinDir, ErrNotPinned)
	} else if errors.Is(err, os.ErrNotExist) {
		if err := create(cfg.PinDir, spec, abi); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("open dataplane: %w", err)
	} else {
		d.adopted = true
	}

	if cfg.ReadOnly {
		if err := d.load(spec, abi); err != nil {
			return nil, err
		}
		return d, nil
	}
	d.lock, err = lockDir(cfg.PinDir, true)
	if err != nil {
		return nil, fmt.Errorf("open dataplane %s: %w", cfg.PinDir, err)
	}
	if err := d.load(spec, abi); err != nil {
		d.lock.Close()
		return nil, err
	}
	if err := d.recoverBindings(); err != nil {
		d.Close()
		return nil, err
	}
	if d.sources, err = d.sourceKeys(); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.ensureNatConfig(); err != nil {
		d.Close()
		return nil, err
	}
	// A fresh dataplane refuses the default special-purpose sources from the start;
	// an adopted one keeps what its owner set.
	if !d.adopted {
		if err := d.SetEdgeConfig(DefaultEdgeConfig()); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// Adopted tells whether Open found pins left by an earlier process.
func (d *Dataplane) Adopted() bool { return d.adopted }

// PinDir is where the maps and links are pinned.
func (d *Dataplane) PinDir() string { return d.cfg.PinDir }

// create loads fresh maps and pins them, atomically by rename.
func create(pinDir string, spec *ebpf.CollectionSpec, abi []byte) error {
	// bpffs refuses names with a dot.
	tmp := fmt.Sprintf("%s-tmp-%d", pinDir, os.Getpid())
	_ = os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("create dataplane pins: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Mkdir(filepath.Join(tmp, linksDir), 0o700); err != nil {
		return fmt.Errorf("create dataplane pins: %w", err)
	}
	for name, ms := range spec.Maps {
		if !pinnedMap(name) {
			continue
		}
		m, err := ebpf.NewMap(ms)
		if err != nil {
			return fmt.Errorf("create map %s: %w", name, err)
		}
		err = m.Pin(filepath.Join(tmp, name))
		m.Close()
		if err != nil {
			return fmt.Errorf("pin map %s: %w", name, err)
		}
	}
	abiMap, err := ebpf.NewMap(abiMapSpec())
	if err != nil {
		return fmt.Errorf("create abi map: %w", err)
	}
	defer abiMap.Close()
	if err := abiMap.Put(uint32(0), abi); err != nil {
		return fmt.Errorf("write abi map: %w", err)
	}
	if err := abiMap.Pin(filepath.Join(tmp, abiMapName)); err != nil {
		return fmt.Errorf("pin abi map: %w", err)
	}
	if err := os.Rename(tmp, pinDir); err != nil {
		return fmt.Errorf("publish dataplane pins: %w", err)
	}
	ok = true
	return nil
}

// pinnedMap tells which maps outlive the process: all but the compiler's own
// .rodata/.bss style sections.
func pinnedMap(name string) bool {
	return !strings.HasPrefix(name, ".")
}

func abiMapSpec() *ebpf.MapSpec {
	return &ebpf.MapSpec{Name: "eipgw_abi", Type: ebpf.Array, KeySize: 4, ValueSize: 32, MaxEntries: 1}
}

// load opens the pinned maps, checks them against this build, and loads the programs
// onto them.
func (d *Dataplane) load(spec *ebpf.CollectionSpec, abi []byte) error {
	dir := d.cfg.PinDir
	abiMap, err := ebpf.LoadPinnedMap(filepath.Join(dir, abiMapName), nil)
	if err != nil {
		return fmt.Errorf("open dataplane %s: %w: no layout marker (%v)", dir, ErrIncompatiblePins, err)
	}
	var pinnedABI [32]byte
	err = abiMap.Lookup(uint32(0), &pinnedABI)
	abiMap.Close()
	if err != nil {
		return fmt.Errorf("open dataplane %s: read layout marker: %w", dir, err)
	}
	if string(pinnedABI[:]) != string(abi) {
		return fmt.Errorf("open dataplane %s: %w: layout %x, this build has %x", dir, ErrIncompatiblePins, pinnedABI[:6], abi[:6])
	}

	replacements := map[string]*ebpf.Map{}
	kept := false
	defer func() {
		if kept {
			return
		}
		for _, m := range replacements {
			m.Close()
		}
	}()
	for name, ms := range spec.Maps {
		if !pinnedMap(name) {
			continue
		}
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			return fmt.Errorf("open dataplane %s: map %s: %w (%v)", dir, name, ErrIncompatiblePins, err)
		}
		replacements[name] = m
		if err := ms.Compatible(m); err != nil {
			return fmt.Errorf("open dataplane %s: map %s: %w: %v", dir, name, ErrIncompatiblePins, err)
		}
	}
	// The maps only: the programs are loaded when first used (programs.go).
	if err := spec.LoadAndAssign(&d.objs.natMaps, &ebpf.CollectionOptions{MapReplacements: replacements}); err != nil {
		return fmt.Errorf("open dataplane %s: %w", dir, err)
	}
	if !d.cfg.ReadOnly {
		// The pinned maps without the layout marker, which the object does not name.
		d.programs = programLoader{spec: spec, maps: maps.Clone(replacements), cache: btf.NewCache()}
		abiHeld, err := ebpf.LoadPinnedMap(filepath.Join(dir, abiMapName), nil)
		if err != nil {
			return fmt.Errorf("open dataplane %s: hold layout marker: %w", dir, err)
		}
		replacements[abiMapName] = abiHeld
		d.heldMaps, kept = replacements, true
	}
	return nil
}

// Close releases this process's handles. The pins, and so the maps, the links and the
// traffic they carry, stay.
func (d *Dataplane) Close() error {
	d.guard.Lock()
	for _, m := range d.heldMaps {
		m.Close()
	}
	for _, l := range d.links {
		l.Close()
	}
	d.heldMaps, d.links = nil, nil
	d.guard.Unlock()
	err := d.objs.Close()
	if d.lock != nil {
		d.lock.Close()
	}
	return err
}

// Remove detaches every pinned link and deletes the pins: traffic stops being
// translated. It is the only way pinned state is destroyed. A dataplane that a
// process holds open (eipd, eipdp serve, or an Open not yet closed) is refused with
// ErrBusy and left as it is: that process's guard would pin again what Remove
// deleted, and half a dataplane would be left. Removing what is not there is not an
// error.
func Remove(pinDir string) error {
	// Creation takes the parent's lock, then the pin directory's, before releasing
	// the first: holding the parent's lock, Remove cannot see a directory that a
	// concurrent Open made and has not locked yet.
	parentLock, err := lockDir(filepath.Dir(pinDir), false)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove dataplane: lock %s: %w", filepath.Dir(pinDir), err)
	}
	defer parentLock.Close()
	lock, err := lockDir(pinDir, true)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove dataplane %s: %w", pinDir, err)
	}
	defer lock.Close()
	links, err := os.ReadDir(filepath.Join(pinDir, linksDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove dataplane: %w", err)
	}
	for _, l := range links {
		if err := detachPinned(filepath.Join(pinDir, linksDir, l.Name())); err != nil {
			return fmt.Errorf("remove dataplane: %w", err)
		}
	}
	if err := os.RemoveAll(pinDir); err != nil {
		return fmt.Errorf("remove dataplane: %w", err)
	}
	return nil
}

func lockDir(path string, exclusiveNoWait bool) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if exclusiveNoWait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrBusy
		}
		return nil, err
	}
	return f, nil
}

// Capacities is how many entries each of the dataplane's tables holds.
type Capacities struct {
	Bindings     uint32 // counter slots: 1:1 bindings, cut-through and NAT gateway EIPs together
	Sources      uint32 // (address, MAC) pairs of the VPC
	NatEIPs      uint32
	SnatRules    uint32
	ForwardPorts uint32
	Sessions     uint32
}

// Capacities reads the table sizes of the loaded (or adopted) dataplane.
func (d *Dataplane) Capacities() Capacities {
	return Capacities{
		Bindings:     d.objs.CountersBySlot.MaxEntries(),
		Sources:      d.objs.VpcSources.MaxEntries(),
		NatEIPs:      d.objs.NatEips.MaxEntries(),
		SnatRules:    d.objs.SnatRules.MaxEntries(),
		ForwardPorts: d.objs.ForwardPorts.MaxEntries(),
		Sessions:     sessionCapacity(d.objs.SessionTable.MaxEntries()),
	}
}

// adoptCapacities reads the table sizes of the pinned maps into cfg: the pins carry
// them, so a reader needs no flag to match the owner's configuration.
func adoptCapacities(cfg *Config) error {
	for _, c := range []struct {
		name     string
		dst      *uint32
		capacity func(entries uint32) uint32 // nil: the map's entries
	}{
		{natMapCountersBySlot, &cfg.MaxBindings, nil},
		{natMapVpcSources, &cfg.MaxSources, nil},
		{natMapSessionTable, &cfg.MaxSessions, sessionCapacity},
		{natMapNatEips, &cfg.MaxNatEIPs, nil},
	} {
		m, err := ebpf.LoadPinnedMap(filepath.Join(cfg.PinDir, c.name), &ebpf.LoadPinOptions{ReadOnly: true})
		if errors.Is(err, os.ErrNotExist) {
			if _, statErr := os.Stat(cfg.PinDir); errors.Is(statErr, os.ErrNotExist) {
				return fmt.Errorf("open dataplane %s: %w", cfg.PinDir, ErrNotPinned)
			}
			return fmt.Errorf("open dataplane %s: map %s: %w (%v)", cfg.PinDir, c.name, ErrIncompatiblePins, err)
		}
		if err != nil {
			return fmt.Errorf("open dataplane %s: map %s: %w", cfg.PinDir, c.name, err)
		}
		*c.dst = m.MaxEntries()
		if c.capacity != nil {
			*c.dst = c.capacity(m.MaxEntries())
		}
		m.Close()
	}
	return nil
}
