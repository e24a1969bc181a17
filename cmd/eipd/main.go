// Command eipd is the eipgw daemon: the EIP service's API and the dataplane that
// carries it. See docs/eipd.md.
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
	configPath := flag.String("config", "/etc/eipgw/eipd.json", "configuration file")
	initState := flag.Bool("init", false, "create the state file if it does not exist (first start only)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cfg, err := eipd.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "eipd:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := eipd.Run(ctx, cfg, *initState, log, nil); err != nil {
		fmt.Fprintln(os.Stderr, "eipd:", err)
		os.Exit(1)
	}
}
