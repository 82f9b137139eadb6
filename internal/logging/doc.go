// Package logging builds drkit's log/slog logger: human-readable text when the
// output is a terminal, JSON otherwise (for journald, Kubernetes and log shippers).
// Imported by cmd; imports nothing of drkit's.
package logging
