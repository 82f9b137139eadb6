// Package lifecycle runs drd's long-lived components under one context: they start
// together, the first to fail stops the others, and a shutdown signal stops them all
// gracefully (a second signal forces the exit, for an operator who cannot wait).
//
// It also answers readiness: drd is ready only when every component that can be
// unready says it is ready.
//
// Imported by cmd; imports nothing of drkit's.
package lifecycle
