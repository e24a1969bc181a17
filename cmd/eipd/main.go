// Command eipd is the eipgw daemon: the EIP service's API and the dataplane that
// carries it. `eipd agent` runs inside an instance and configures its cut-through ENI.
// See docs/eipd.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/eipgw/eipgw/internal/eipd"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		fs := flag.NewFlagSet("eipd agent", flag.ExitOnError)
		configPath := fs.String("config", "/etc/eipgw/agent.json", "agent configuration file")
		_ = fs.Parse(os.Args[2:])
		cfg, base, poll, err := eipd.LoadAgentConfig(*configPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "eipd agent:", err)
			os.Exit(2)
		}
		if err := eipd.RunAgent(ctx, cfg, base, poll, log); err != nil {
			fmt.Fprintln(os.Stderr, "eipd agent:", err)
			os.Exit(1)
		}
		return
	}
	configPath := flag.String("config", "/etc/eipgw/eipd.json", "configuration file")
	initState := flag.Bool("init", false, "create the state file if it is missing or empty, and let an empty state clear a pinned dataplane that still carries EIPs (first start only)")
	flag.Parse()
	cfg, err := eipd.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eipd:", err)
		os.Exit(2)
	}
	if err := eipd.Run(ctx, cfg, *initState, log, nil); err != nil {
		fmt.Fprintln(os.Stderr, "eipd:", err)
		os.Exit(1)
	}
}
