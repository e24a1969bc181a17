package eipd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/eipgw/eipgw/control/store"
	"github.com/vishvananda/netlink"
)

// Check is eipd --check: with the configuration already read and validated, it checks
// the credentials file, the interfaces, the pin directory and the state file, and
// prints what a start would do with them. It changes nothing: no pin, no attachment,
// no write to the state file (which it opens read-only, and leaves alone when a
// running eipd holds it). The error joins every problem found.
func Check(cfg *Config, out io.Writer) error {
	var problems []error
	fmt.Fprintf(out, "config: valid; region %s, pools %s, API on %s, metrics on %s\n",
		cfg.Region, strings.Join(cfg.Pools, " "), cfg.Listen, cfg.MetricsListen)
	if creds, err := LoadCredentials(cfg.CredentialsFile); err != nil {
		problems = append(problems, err)
	} else {
		fmt.Fprintf(out, "credentials: %s: %d access keys\n", cfg.CredentialsFile, len(creds.keys))
	}
	for _, i := range []struct {
		role  string
		iface Interface
	}{{"uplink", cfg.Uplink}, {"vpc", cfg.VPC}} {
		link, err := netlink.LinkByName(i.iface.Name)
		if err != nil {
			problems = append(problems, fmt.Errorf("interface %s (%s): %w", i.iface.Name, i.role, err))
			continue
		}
		state := "down"
		if link.Attrs().Flags&net.FlagUp != 0 {
			state = "up"
		}
		hook := i.iface.Hook
		if hook == "" {
			hook = "xdp"
		}
		fmt.Fprintf(out, "interface %s (%s): %s, MTU %d; a start attaches the %s program at %s\n",
			i.iface.Name, i.role, state, link.Attrs().MTU, i.role, hook)
	}
	if _, err := os.Stat(cfg.BPFFSDir); err == nil {
		fmt.Fprintf(out, "pins: %s: present; a start adopts them (traffic goes on)\n", cfg.BPFFSDir)
	} else if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(out, "pins: %s: absent; a start loads the dataplane and pins it there\n", cfg.BPFFSDir)
	} else {
		problems = append(problems, fmt.Errorf("pins %s: %w", cfg.BPFFSDir, err))
	}
	path := filepath.Join(cfg.StateDir, StateFile)
	switch sum, err := store.Inspect(path); {
	case errors.Is(err, store.ErrInUse):
		fmt.Fprintf(out, "state: %s: held by a running eipd; not read\n", path)
	case err != nil:
		problems = append(problems, err)
	default:
		fmt.Fprintf(out, "state: %s: intact, %d EIPs, %d associated; a start reconciles the dataplane to them\n",
			path, sum.EIPs, sum.Associations)
	}
	if len(problems) == 0 {
		fmt.Fprintln(out, "ok")
	}
	return errors.Join(problems...)
}

// NewLogger makes eipd's logger: level debug, info, warn or error; format text or
// json. API reads are logged at debug, writes (the audit trail) at info.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}
