// Command bench measures eipgw against the kernel's own NAT and the bare XDP floor:
// packet rates through the gateway in interleaved windows, program cost per path, and
// scale curves. See bench/README.md.
package main

import (
	"fmt"
	"os"

	"github.com/cilium/ebpf/rlimit"
)

func main() {
	if err := rlimit.RemoveMemlock(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	b, err := newBed("eipgw-bench")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer b.close()
	for _, c := range allCases() {
		td, err := c.Setup(b)
		if err != nil {
			fmt.Println(c.Name, err)
			continue
		}
		w, err := b.generate(c.Flows, 0, 3_000_000)
		fmt.Printf("%-30s %.3f Mpps %+v %v\n", c.Name, w.rate(c.Translated)/1e6, w, err)
		if err := td(); err != nil {
			fmt.Println(err)
		}
	}
}
