// Package buildinfo says which build of eipgw is running: the module version the Go
// toolchain stamped (a tag, or a pseudo-version for a commit) and the VCS revision,
// for --version and the eipgw_build_info metric.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info is what a binary knows of its own build.
type Info struct {
	Version   string // the main module's version: "(devel)" for a build from a work tree
	Revision  string // the VCS commit, with "-dirty" when the tree had changes; "unknown" without VCS data
	GoVersion string
}

// Read reads the running binary's build information.
func Read() Info {
	info := Info{Version: "(devel)", Revision: "unknown", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && info.Revision != "unknown" {
		info.Revision += "-dirty"
	}
	return info
}

// String is the one line --version prints.
func (i Info) String() string {
	return i.Version + " (revision " + i.Revision + ", " + i.GoVersion + ")"
}
