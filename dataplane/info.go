package dataplane

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"
)

// ProgramStat describes one loaded NAT program, for benchmarks and debugging.
type ProgramStat struct {
	Name string
	// VerifiedInstructions is how many instructions the verifier walked: its cost of
	// proving the program safe, a proxy for the program's complexity.
	VerifiedInstructions uint32
	// Instructions is the program's length after the kernel's rewrites.
	Instructions int
	// JitedBytes is the size of its machine code.
	JitedBytes uint32
	// Runs and RunTime count the program's runs and the time spent in them while
	// the kernel's run-time statistics are on (ebpf.EnableStats); zero otherwise.
	Runs    uint64
	RunTime time.Duration
}

// natProgramRoles are the NAT programs by name, and where each is attached.
var natProgramRoles = []struct {
	name string
	role Role
	hook Hook
}{{natProgXdpUplink, RoleUplink, HookXDP}, {natProgXdpVpc, RoleVPC, HookXDP}, {natProgTcUplink, RoleUplink, HookTC}, {natProgTcVpc, RoleVPC, HookTC}}

// Program is the NAT program of that name (xdp_uplink, xdp_vpc, tc_uplink, tc_vpc),
// for tools that look inside it (bench's line profile).
func (d *Dataplane) Program(name string) (*ebpf.Program, error) {
	for _, p := range natProgramRoles {
		if p.name == name {
			return d.program(p.role, p.hook)
		}
	}
	return nil, fmt.Errorf("no NAT program named %q", name)
}

// ProgramStats reports on each NAT program.
func (d *Dataplane) ProgramStats() ([]ProgramStat, error) {
	var out []ProgramStat
	for _, p := range natProgramRoles {
		prog, err := d.program(p.role, p.hook)
		if err != nil {
			return nil, err
		}
		info, err := prog.Info()
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", p.name, err)
		}
		st := ProgramStat{Name: p.name}
		st.VerifiedInstructions, _ = info.VerifiedInstructions()
		if n, err := info.TranslatedSize(); err == nil {
			st.Instructions = n / 8 // one BPF instruction is 8 bytes
		}
		st.JitedBytes, _ = info.JitedSize()
		if rs, err := prog.Stats(); err == nil {
			st.Runs, st.RunTime = rs.RunCount, rs.Runtime
		}
		out = append(out, st)
	}
	return out, nil
}

// MapMemory is the kernel memory the binding and counter maps hold, in bytes (their
// memlock accounting). Hash maps are preallocated, so it follows capacity, not use.
func (d *Dataplane) MapMemory() (uint64, error) {
	return memlockOf(d.objs.InboundBindings, d.objs.OutboundBindings, d.objs.CountersBySlot, d.objs.ReasonCounters)
}

// SessionMemory is the kernel memory of the NAT gateway's session state (the session
// table's session and mapping records, its windows' skip counts, the port bitmaps), in
// bytes. Preallocated like
// the binding maps: it follows Config.MaxSessions and Config.MaxNatEIPs.
func (d *Dataplane) SessionMemory() (uint64, error) {
	return memlockOf(d.objs.SessionTable, d.objs.SessionOverflows, d.objs.PortBitmaps)
}

func memlockOf(maps ...*ebpf.Map) (uint64, error) {
	var total uint64
	for _, m := range maps {
		info, err := m.Info()
		if err != nil {
			return 0, fmt.Errorf("map info: %w", err)
		}
		n, ok := info.Memlock()
		if !ok {
			return 0, fmt.Errorf("map %s: the kernel does not report its memory", info.Name)
		}
		total += n
	}
	return total, nil
}
