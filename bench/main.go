// Command bench measures eipgw against the kernel's own NAT and the bare XDP floor:
// packet rates through the gateway in interleaved windows, program cost per path, and
// scale curves. See bench/README.md. Run it as root from the repository:
//
//	sudo go run ./bench            # the full run, results in bench/results/
//	sudo go run ./bench --smoke    # one short round of each case, asserts delivery only
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/rlimit"
)

func main() {
	opts := options{Log: os.Stdout}
	flag.IntVar(&opts.Rounds, "rounds", 10, "interleaved rounds of every case")
	flag.DurationVar(&opts.Window, "window", 1500*time.Millisecond, "length of one case's window")
	flag.Float64Var(&opts.Overload, "overload", 1.3, "pace each case at this multiple of its capacity")
	flag.BoolVar(&opts.Smoke, "smoke", false, "one short round of each case at a low rate; checks delivery, measures nothing")
	out := flag.String("out", "", "results directory (default bench/results; in smoke mode none)")
	only := flag.String("only", "", "run one part: rates or control (default: everything; results are then written only with --out)")
	cases := flag.String("cases", "", "measure only the rate cases whose names match this regular expression (results are then written only with --out)")
	flag.BoolVar(&opts.ProfileLines, "profile-lines", false, "after the last round, run each eipgw case and floor one more window under perf on the gateway's CPU and print its program's busiest source lines (needs perf)")
	flag.Parse()
	if *cases != "" {
		re, err := regexp.Compile(*cases)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: --cases:", err)
			os.Exit(2)
		}
		opts.Cases = re
	}
	if err := run(opts, *out, *only); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(opts options, out, only string) error {
	if only != "" && only != "rates" && only != "control" {
		return fmt.Errorf("--only %q: want rates or control", only)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (namespaces and BPF): sudo make bench")
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return err
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	if opts.Smoke {
		opts.Rounds, opts.Window = 1, 250*time.Millisecond
	}
	// A partial run (one part, some cases) would replace the full results with part of
	// them: it prints its table and writes only where --out says.
	if out == "" && !opts.Smoke && opts.Cases == nil && only == "" {
		out = filepath.Join(root, "bench", "results")
	}

	rep := &report{Date: time.Now().UTC(), Machine: thisMachine(), Rounds: opts.Rounds,
		WindowS: opts.Window.Seconds(), Overload: opts.Overload}
	if only != "control" {
		b, err := newBed(fmt.Sprintf("eipgw-bench-%d", os.Getpid()))
		if err != nil {
			return err
		}
		// Interrupted, the bench still deletes its namespaces and mounts.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		go func() {
			if _, ok := <-sig; ok {
				b.close()
				fmt.Fprintln(os.Stderr, "bench: interrupted; testbed removed")
				os.Exit(130)
			}
		}()
		rep.Rates, err = b.rates(selectCases(allCases(), opts.Cases), opts)
		signal.Stop(sig)
		close(sig)
		b.close()
		if err != nil {
			return err
		}
		// A rate whose translation or checksum check fails is not a result.
		if err := check(rep.Rates); err != nil {
			return err
		}
	}
	if only != "rates" {
		// The API's writes are measured over as many existing associations as the
		// reconciler's start.
		apiN, concurrentN, bigN := 2000, 3200, 100000
		if opts.Smoke {
			apiN, concurrentN, bigN = 50, 64, 500
		}
		fmt.Printf("control plane: %d associations through the API (then %d from 32 clients) over %d existing, %d through the reconciler...\n",
			apiN, concurrentN, bigN, bigN)
		var err error
		if rep.Control, err = measureControl(apiN, concurrentN, bigN, bigN); err != nil {
			return fmt.Errorf("control plane: %w", err)
		}
		if !opts.Smoke {
			fmt.Println("control plane: deleting a forward entry over live sessions (go test -bench ./dataplane)...")
			if err := measureForwardDelete(root, rep.Control); err != nil {
				return fmt.Errorf("control plane: %w", err)
			}
		}
		clusterExisting, clusterWrites := 2000, 500
		if opts.Smoke {
			clusterExisting, clusterWrites = 100, 20
		}
		fmt.Printf("cluster: %d writes over %d associations, state file beside etcd, propagation to a second gateway...\n",
			clusterWrites, clusterExisting)
		if rep.Cluster, err = measureCluster(clusterExisting, clusterWrites); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		startN := 1000000
		if opts.Smoke {
			startN = 2000
		}
		fmt.Printf("control plane: eipd started over %d associations...\n", startN)
		if rep.Control.EipdStart, err = measureEipdStart(root, startN); err != nil {
			return fmt.Errorf("control plane: %w", err)
		}
	}
	if opts.Smoke || out == "" {
		if opts.Smoke && rep.Rates != nil {
			for _, c := range rep.Rates.Cases {
				if c.Unavailable != "" {
					fmt.Printf("smoke: %-26s not measured: %s\n", c.Name, c.Unavailable)
					continue
				}
				fmt.Printf("smoke: %-26s delivered %d packets, %d checksums checked, all valid\n",
					c.Name, c.Samples[0].Delivered, c.Samples[0].Checked)
			}
		}
		if opts.Smoke && rep.Cluster != nil {
			if rep.Cluster.Unavailable != "" {
				fmt.Printf("smoke: cluster not measured: %s\n", rep.Cluster.Unavailable)
			} else {
				fmt.Printf("smoke: cluster: %d writes through etcd, each carried by a second gateway\n", rep.Cluster.Writes)
			}
		}
		if opts.Smoke && rep.Control != nil {
			fmt.Printf("smoke: control plane associated %d through the API and %d through the reconciler, all in the maps; eipd started over %d\n",
				rep.Control.APIAssociations, rep.Control.ReconcilerBindings, rep.Control.EipdStart.Associations)
		}
		if out == "" {
			if !opts.Smoke {
				fmt.Print("\n" + rep.markdown())
			}
			return nil
		}
	} else if only == "" && opts.Cases == nil {
		fmt.Println("program cost, binding and session scale (go test -bench ./dataplane)...")
		fig, err := programCosts(root)
		if err != nil {
			return err
		}
		rep.Costs, rep.Scale, rep.InProgram, rep.SessionScale = fig.Costs, fig.Scale, fig.InProgram, fig.SessionScale
		if rep.Programs, err = programStats(); err != nil {
			return err
		}
	}
	if err := rep.write(out); err != nil {
		return err
	}
	fmt.Print("\n" + rep.markdown())
	if !opts.Smoke && only == "" && out == filepath.Join(root, "bench", "results") {
		if err := rep.updateReadme(filepath.Join(root, "bench", "README.md")); err != nil {
			return err
		}
	}
	fmt.Println("results in", out)
	return nil
}

// moduleRoot is the repository, where go test runs the dataplane benchmarks.
func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module (run the bench from the repository): %w", err)
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("not inside the eipgw module: run the bench from the repository")
	}
	return filepath.Dir(gomod), nil
}
