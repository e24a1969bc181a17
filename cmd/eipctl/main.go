// Command eipctl drives eipd's API; see internal/ctl.
package main

import (
	"os"

	"github.com/eipgw/eipgw/internal/ctl"
)

func main() {
	os.Exit(ctl.Run(os.Args[1:], ctl.Env{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}))
}
