package dataplane

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// The programs are verified and loaded on first use, each on the pinned maps, not all
// when the dataplane opens: the verifier takes 100-200 ms a program here, a reader
// (eipdp) runs none, and an owner runs only those of the hooks it attaches at (five at
// XDP, three at TC, of seven).
type programLoader struct {
	spec  *ebpf.CollectionSpec
	maps  map[string]*ebpf.Map // every pinned map, by name
	cache *btf.Cache           // the kernel's BTF, decoded once for every load
}

// programFor loads the named program into *slot on first use and returns it.
func (d *Dataplane) programFor(slot **ebpf.Program, name string) (*ebpf.Program, error) {
	d.progMu.Lock()
	defer d.progMu.Unlock()
	if *slot != nil {
		return *slot, nil
	}
	if d.cfg.ReadOnly || d.programs.spec == nil {
		return nil, fmt.Errorf("program %s: %w", name, ErrReadOnly)
	}
	spec := d.programs.spec.Copy()
	for other := range spec.Programs {
		if other != name {
			delete(spec.Programs, other)
		}
	}
	if _, ok := spec.Programs[name]; !ok {
		return nil, fmt.Errorf("program %s: not in the BPF object", name)
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{
		MapReplacements: d.programs.maps, Cache: d.programs.cache})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) && os.Getenv("EIPGW_VERIFIER_LOG") != "" {
			fmt.Fprintf(os.Stderr, "%+v\n", verr)
		}
		return nil, fmt.Errorf("load BPF program %s (set EIPGW_VERIFIER_LOG=1 for the verifier's log): %w", name, err)
	}
	defer coll.Close()
	prog := coll.DetachProgram(name)
	if prog == nil {
		return nil, fmt.Errorf("load BPF program %s: not in the loaded collection", name)
	}
	*slot = prog
	return prog, nil
}

func (d *Dataplane) expireProgram() (*ebpf.Program, error) {
	return d.programFor(&d.objs.ExpireSessions, natProgExpireSessions)
}
