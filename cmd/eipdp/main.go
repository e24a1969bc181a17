// Command eipdp controls the eipgw dataplane's pinned state directly; see internal/dpcli.
package main

import (
	"context"
	"os"

	"github.com/eipgw/eipgw/internal/dpcli"
)

func main() {
	os.Exit(dpcli.Run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
