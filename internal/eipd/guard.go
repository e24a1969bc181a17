package eipd

import (
	"errors"
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
