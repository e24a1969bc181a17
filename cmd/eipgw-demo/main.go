// Command eipgw-demo shows an EIP at work in a namespace testbed; see internal/demo.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/eipgw/eipgw/internal/demo"
)

func main() {
	hook := flag.String("hook", "xdp", "where the NAT runs: xdp, tc, tcx or clsact")
	binDir := flag.String("bin", demo.DefaultBinDir(), "directory holding eipd, eipctl and eipdp")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "eipgw-demo: needs root (network namespaces and BPF); run it as: sudo make demo")
		os.Exit(1)
	}
	if err := demo.Run(demo.Options{Hook: *hook, BinDir: *binDir, Out: os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "eipgw-demo:", err)
		os.Exit(1)
	}
}
