// Package sandbox starts the throwaway servers of restore drills
// (internal/drill): a process in its own process group at a lower CPU and
// I/O priority (nice 10, best-effort 7), logging into its folder, its pid recorded so that a
// drill killed midway leaves nothing running after the next one; plus a
// free port and the lookup of a server binary.
//
// Imports only the standard library and golang.org/x/sys/unix (ioprio_set,
// which the standard library lacks).
package sandbox
