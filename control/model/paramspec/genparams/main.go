// Command genparams writes control/model/params_gen.go from the model's handlers
// (go generate ./control/model).
package main

import (
	"fmt"
	"os"

	"github.com/eipgw/eipgw/control/model/paramspec"
)

func main() {
	specs, err := paramspec.Extract(".")
	if err == nil {
		var out []byte
		if out, err = paramspec.Format(specs); err == nil {
			err = os.WriteFile("params_gen.go", out, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "genparams:", err)
		os.Exit(1)
	}
}
