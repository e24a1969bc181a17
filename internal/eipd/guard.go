package eipd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/eipgw/eipgw/dataplane"
)

// dataplaneGuard keeps the dataplane's pins and attachments in place (a removed pin
// directory, a bpffs remount, a deleted filter) once per reconcile interval, counts
// what it restored, and tells the health check whether all is in place.
type dataplaneGuard struct {
	dp       *dataplane.Dataplane
	log      *slog.Logger
	restored atomic.Uint64
	failed   atomic.Uint64
}

// repair puts back what is missing and logs it.
func (g *dataplaneGuard) repair() {
	for _, p := range g.dp.Check(true) {
		if p.Restored {
			g.restored.Add(1)
			g.log.Warn("dataplane repaired", "problem", p.String())
		} else {
			g.failed.Add(1)
			g.log.Error("dataplane damaged", "problem", p.String())
		}
	}
}

// ready is the health check: an error naming what is out of place, nil when nothing is.
func (g *dataplaneGuard) ready() error {
	var errs []error
	for _, p := range g.dp.Check(false) {
		errs = append(errs, errors.New(p.String()))
	}
	return errors.Join(errs...)
}

func (g *dataplaneGuard) writeMetrics(w io.Writer) {
	fmt.Fprintln(w, "# HELP eipgw_dataplane_repairs_total Missing pins and attachments the daemon put back, and those it could not.")
	fmt.Fprintln(w, "# TYPE eipgw_dataplane_repairs_total counter")
	fmt.Fprintf(w, "eipgw_dataplane_repairs_total{result=\"restored\"} %d\n", g.restored.Load())
	fmt.Fprintf(w, "eipgw_dataplane_repairs_total{result=\"failed\"} %d\n", g.failed.Load())
	ready := 1
	if g.ready() != nil {
		ready = 0
	}
	fmt.Fprintln(w, "# HELP eipgw_ready 1 when every pin and attachment of the dataplane is in place.")
	fmt.Fprintln(w, "# TYPE eipgw_ready gauge")
	fmt.Fprintf(w, "eipgw_ready %d\n", ready)
}
