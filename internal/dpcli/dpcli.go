// Package dpcli is the eipdp command: direct control of the dataplane's pinned state
// (attach, bind, counters), for the demo, tests and debugging before eipd exists to
// own it. Its I/O is injected so it can be tested in-process.
package dpcli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/signal"
	"sort"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/eipgw/eipgw/dataplane"
)

// DefaultPinDir is where the dataplane is pinned unless --pin-dir says otherwise.
const DefaultPinDir = "/sys/fs/bpf/eipgw"

const usage = `usage: eipdp [--pin-dir DIR] [--max-bindings N] [--output table|json] COMMAND [ARGS]

Commands that change state:
  attach IFACE --role uplink|vpc [--hook xdp|tc|tcx|clsact]   run the NAT on IFACE's ingress
  detach IFACE                                                remove it from IFACE
  bind EIP PRIVATE MAC                                        translate EIP <-> PRIVATE; outbound
                                                              only from MAC (the instance's)
  unbind EIP                                                  remove EIP's binding
  serve --uplink IFACE --vpc IFACE [--hook H] [--interval D]  attach both and hold the
                                                              dataplane, printing counters,
                                                              until SIGINT or SIGTERM
  remove                                                      detach everything, delete the pins;
                                                              refused while eipd or eipdp serve
                                                              holds them
Commands that read:
  bindings                                                    list bindings
  attachments                                                 list interfaces with the NAT on them
  counters                                                    per-EIP and per-reason counters
`

// Run executes one eipdp command line and returns the process exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if err := run(ctx, args, stdout); err != nil {
		fmt.Fprintf(stderr, "eipdp: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			fmt.Fprint(stderr, usage)
			return 2
		}
		return 1
	}
	return 0
}

type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

type globals struct {
	pinDir      string
	maxBindings uint
	output      string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	g := globals{}
	fs := flag.NewFlagSet("eipdp", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.pinDir, "pin-dir", DefaultPinDir, "bpffs directory of the pinned dataplane")
	fs.UintVar(&g.maxBindings, "max-bindings", 0, "binding capacity of a new dataplane, 0: the BPF object's (readers take the pinned one)")
	fs.StringVar(&g.output, "output", "table", "table or json")
	if err := fs.Parse(args); err != nil {
		return usageError{err.Error()}
	}
	if g.output != "table" && g.output != "json" {
		return usageError{fmt.Sprintf("--output %q: want table or json", g.output)}
	}
	if fs.NArg() == 0 {
		return usageError{"no command"}
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	if cmd == "remove" {
		if len(rest) != 0 {
			return usageError{"remove takes no arguments"}
		}
		err := dataplane.Remove(g.pinDir)
		if errors.Is(err, dataplane.ErrBusy) {
			return fmt.Errorf("%w: stop the process that holds it (eipd or eipdp serve) first", err)
		}
		return err
	}
	handler, ok := map[string]func(context.Context, *dataplane.Dataplane, []string, io.Writer, globals) error{
		"attach":      cmdAttach,
		"detach":      cmdDetach,
		"bind":        cmdBind,
		"unbind":      cmdUnbind,
		"bindings":    cmdBindings,
		"attachments": cmdAttachments,
		"counters":    cmdCounters,
		"serve":       cmdServe,
	}[cmd]
	if !ok {
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lift memlock limit: %w", err)
	}
	// Reading needs no ownership, so it works beside a running owner.
	readOnly := cmd == "bindings" || cmd == "counters" || cmd == "attachments"
	dp, err := dataplane.Open(dataplane.Config{PinDir: g.pinDir, MaxBindings: uint32(g.maxBindings), ReadOnly: readOnly})
	if err != nil {
		return err
	}
	defer dp.Close()
	return handler(ctx, dp, rest, stdout, g)
}

func parseAddr(what, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, usageError{fmt.Sprintf("%s %q is not an IPv4 address", what, s)}
	}
	return a, nil
}

func cmdAttach(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	fs := flag.NewFlagSet("attach", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	roleFlag := fs.String("role", "", "uplink or vpc")
	hookFlag := fs.String("hook", string(dataplane.HookXDP), "xdp, tc, tcx or clsact")
	if len(args) == 0 {
		return usageError{"attach needs an interface"}
	}
	if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 0 {
		return usageError{fmt.Sprintf("attach %v: bad arguments", args)}
	}
	role, err := dataplane.ParseRole(*roleFlag)
	if err != nil {
		return usageError{err.Error()}
	}
	hook, err := dataplane.ParseHook(*hookFlag)
	if err != nil {
		return usageError{err.Error()}
	}
	used, err := dp.Attach(args[0], role, hook)
	if err != nil {
		return err
	}
	return emit(out, g, map[string]string{"interface": args[0], "role": string(role), "hook": string(used)},
		func(w io.Writer) { fmt.Fprintf(w, "attached %s as %s at %s\n", args[0], role, used) })
}

func cmdDetach(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	if len(args) != 1 {
		return usageError{"detach takes one interface"}
	}
	return dp.Detach(args[0])
}

func cmdBind(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	if len(args) != 3 {
		return usageError{"bind takes an EIP, a private address and the instance's MAC"}
	}
	eip, err := parseAddr("EIP", args[0])
	if err != nil {
		return err
	}
	priv, err := parseAddr("private address", args[1])
	if err != nil {
		return err
	}
	mac, err := net.ParseMAC(args[2])
	if err != nil || len(mac) != 6 {
		return usageError{fmt.Sprintf("MAC %q is not an Ethernet address", args[2])}
	}
	// The source first: the binding's outbound half is usable from its first packet.
	if err := dp.SetSource(dataplane.Source{Addr: priv, MAC: mac}); err != nil {
		return err
	}
	return dp.SetBinding(eip, priv)
}

func cmdUnbind(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	if len(args) != 1 {
		return usageError{"unbind takes an EIP"}
	}
	eip, err := parseAddr("EIP", args[0])
	if err != nil {
		return err
	}
	return dp.DeleteBinding(eip)
}

type bindingRow struct {
	EIP     string `json:"eip"`
	Private string `json:"private"`
}

func cmdBindings(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	if len(args) != 0 {
		return usageError{"bindings takes no arguments"}
	}
	bs, err := dp.Bindings()
	if err != nil {
		return err
	}
	rows := make([]bindingRow, 0, len(bs))
	for _, b := range bs {
		rows = append(rows, bindingRow{b.EIP.String(), b.Private.String()})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].EIP < rows[j].EIP })
	return emit(out, g, rows, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EIP\tPRIVATE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\n", r.EIP, r.Private)
		}
		tw.Flush()
	})
}

type attachmentRow struct {
	Interface string `json:"interface"`
	Hook      string `json:"hook"`
}

func cmdAttachments(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	if len(args) != 0 {
		return usageError{"attachments takes no arguments"}
	}
	as, err := dp.Attachments()
	if err != nil {
		return err
	}
	rows := make([]attachmentRow, 0, len(as))
	for _, a := range as {
		rows = append(rows, attachmentRow{a.Interface, string(a.Hook)})
	}
	return emit(out, g, rows, func(w io.Writer) {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INTERFACE\tHOOK")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\n", r.Interface, r.Hook)
		}
		tw.Flush()
	})
}

type countersReport struct {
	EIPs    map[string]dataplane.EIPCounters `json:"eips"`
	Reasons map[string]uint64                `json:"reasons"`
}

func readCounters(dp *dataplane.Dataplane) (countersReport, error) {
	rep := countersReport{EIPs: map[string]dataplane.EIPCounters{}}
	eips, err := dp.CountedEIPs()
	if err != nil {
		return rep, err
	}
	for _, eip := range eips {
		c, err := dp.Counters(eip)
		if errors.Is(err, dataplane.ErrNotBound) {
			continue // unbound since the listing
		} else if err != nil {
			return rep, err
		}
		rep.EIPs[eip.String()] = c
	}
	rc, err := dp.ReasonCounts()
	if err != nil {
		return rep, err
	}
	rep.Reasons = rc.NonZero()
	return rep, nil
}

func printCounters(w io.Writer, rep countersReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "EIP\tIN PACKETS\tIN BYTES\tOUT PACKETS\tOUT BYTES\tIN DROPPED\tOUT DROPPED\t")
	eips := make([]string, 0, len(rep.EIPs))
	for e := range rep.EIPs {
		eips = append(eips, e)
	}
	sort.Strings(eips)
	for _, e := range eips {
		c := rep.EIPs[e]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t\n", e, c.InPackets, c.InBytes, c.OutPackets, c.OutBytes,
			c.InDroppedPackets, c.OutDroppedPackets)
	}
	tw.Flush()
	reasons := make([]string, 0, len(rep.Reasons))
	for r := range rep.Reasons {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintln(w, "REASON                 PACKETS")
	for _, r := range reasons {
		fmt.Fprintf(w, "%-22s %d\n", r, rep.Reasons[r])
	}
}

func cmdCounters(_ context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	if len(args) != 0 {
		return usageError{"counters takes no arguments"}
	}
	rep, err := readCounters(dp)
	if err != nil {
		return err
	}
	return emit(out, g, rep, func(w io.Writer) { printCounters(w, rep) })
}

func cmdServe(ctx context.Context, dp *dataplane.Dataplane, args []string, out io.Writer, g globals) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	uplink := fs.String("uplink", "", "interface facing the internet")
	vpc := fs.String("vpc", "", "interface facing the instances")
	hookFlag := fs.String("hook", string(dataplane.HookXDP), "xdp, tc, tcx or clsact")
	interval := fs.Duration("interval", 10*time.Second, "how often to print counters")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *uplink == "" || *vpc == "" || *interval <= 0 {
		return usageError{"serve needs --uplink and --vpc, and a positive --interval"}
	}
	hook, err := dataplane.ParseHook(*hookFlag)
	if err != nil {
		return usageError{err.Error()}
	}
	for _, a := range []struct {
		ifname string
		role   dataplane.Role
	}{{*uplink, dataplane.RoleUplink}, {*vpc, dataplane.RoleVPC}} {
		used, err := dp.Attach(a.ifname, a.role, hook)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "attached %s as %s at %s (adopted pins: %v)\n", a.ifname, a.role, used, dp.Adopted())
	}
	fmt.Fprintln(out, "serving")
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Leaving the pins is the point: traffic keeps flowing without us.
			fmt.Fprintln(out, "stopping; the dataplane keeps forwarding")
			return nil
		case <-tick.C:
			rep, err := readCounters(dp)
			if err != nil {
				return err
			}
			if err := emit(out, g, rep, func(w io.Writer) { printCounters(w, rep) }); err != nil {
				return err
			}
		}
	}
}

func emit(out io.Writer, g globals, v any, table func(io.Writer)) error {
	if g.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	table(out)
	return nil
}
