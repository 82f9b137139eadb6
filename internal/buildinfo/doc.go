// Package buildinfo reports the version drd and drctl were built from.
//
// The release build sets Version with -ldflags "-X github.com/drkit/drkit/internal/buildinfo.Version=v1.2.3";
// otherwise it falls back to the module version and VCS revision Go records.
// Imported by cmd, monitor and api; imports nothing of drkit's.
package buildinfo
