// Command eipd is the eipgw daemon: the EIP service's API and the dataplane that
// carries it. `eipd agent` runs inside an instance and configures its cut-through ENI.
// See docs/eipd.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/eipgw/eipgw/internal/buildinfo"
	"github.com/eipgw/eipgw/internal/eipd"
)

const usage = `usage:
  eipd [--config FILE] [--init] [--log-level LEVEL] [--log-format FORMAT]
      the gateway daemon (docs/eipd.md)
  eipd --check [--config FILE]
      check the configuration, credentials, interfaces, pins and state file, say what
      a start would do with them, and change nothing; exit 1 on a problem
  eipd --version
  eipd backup [--config FILE] --out FILE
      a consistent copy of the state file, from the running eipd or, when none
      runs, from the file; written whole or not at all
  eipd agent [--config FILE] [--log-level LEVEL] [--log-format FORMAT]
      inside an instance: put its cut-through EIPs on its secondary ENI

flags:
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is eipd with its arguments and outputs, and returns the exit code: 0, 1 for a
// failure, 2 for a wrong invocation.
func run(args []string, stdout, stderr io.Writer) int {
	name, defaultConfig := "eipd", "/etc/eipgw/eipd.json"
	agent := len(args) > 0 && args[0] == "agent"
	if agent {
		name, defaultConfig, args = "eipd agent", "/etc/eipgw/agent.json", args[1:]
	}
	if len(args) > 0 && args[0] == "backup" {
		return backup(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	configPath := fs.String("config", defaultConfig, "configuration file")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error (API reads are logged at debug, writes at info)")
	logFormat := fs.String("log-format", "text", "text or json")
	version := fs.Bool("version", false, "print the version and exit")
	var initState, check *bool
	if !agent {
		initState = fs.Bool("init", false, "create the state file if it is missing or empty, and let an empty state clear a pinned dataplane that still carries EIPs (first start only)")
		check = fs.Bool("check", false, "check the configuration, credentials, interfaces, pins and state file, and change nothing")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q: eipd takes flags only, and `eipd agent` runs the instance agent (eipd --help)\n", name, fs.Arg(0))
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, "eipd", buildinfo.Read())
		return 0
	}
	log, err := eipd.NewLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if agent {
		return runAgent(ctx, *configPath, log, stderr)
	}
	cfg, err := eipd.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "eipd:", err)
		return 2
	}
	if *check {
		if err := eipd.Check(cfg, stdout); err != nil {
			fmt.Fprintln(stderr, "eipd --check:", err)
			return 1
		}
		return 0
	}
	log.Info("starting", "version", buildinfo.Read().String())
	if err := eipd.Run(ctx, cfg, *initState, log, nil); err != nil {
		fmt.Fprintln(stderr, "eipd:", err)
		return 1
	}
	return 0
}

func runAgent(ctx context.Context, configPath string, log *slog.Logger, stderr io.Writer) int {
	cfg, base, poll, err := eipd.LoadAgentConfig(configPath)
	if err != nil {
		fmt.Fprintln(stderr, "eipd agent:", err)
		return 2
	}
	if err := eipd.RunAgent(ctx, cfg, base, poll, log); err != nil {
		fmt.Fprintln(stderr, "eipd agent:", err)
		return 1
	}
	return 0
}

// backup is eipd backup.
func backup(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("eipd backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	configPath := fs.String("config", "/etc/eipgw/eipd.json", "configuration file (for state_dir)")
	out := fs.String("out", "", "where to write the copy (required)")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *out == "" {
		fmt.Fprintln(stderr, "eipd backup: --out FILE is required, and nothing else (eipd --help)")
		return 2
	}
	cfg, err := eipd.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "eipd backup:", err)
		return 2
	}
	sum, err := eipd.Backup(cfg, *out)
	if err != nil {
		fmt.Fprintln(stderr, "eipd backup:", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: %d EIPs, %d associated\n", *out, sum.EIPs, sum.Associations)
	return 0
}
