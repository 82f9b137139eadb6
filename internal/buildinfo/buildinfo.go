// Package buildinfo reports the version drd and drctl were built from.
//
// The release build sets Version with -ldflags "-X github.com/drkit/drkit/internal/buildinfo.Version=v1.2.3";
// otherwise it falls back to the module version and VCS revision Go records.
// Imported by cmd, monitor and api; imports nothing of drkit's.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Version is set at link time by release builds.
var Version = ""

// Info describes a build.
type Info struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	GoVersion string `json:"go_version"`
}

// Get returns the build's version, VCS revision and Go version.
func Get() Info {
	info := Info{Version: Version, Revision: "unknown", GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info.Revision = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}
