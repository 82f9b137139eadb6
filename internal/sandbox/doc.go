// Package sandbox starts the throwaway servers of restore drills
// (internal/drill): a process in its own process group at a lower CPU
// priority (nice 10), logging into its folder, its pid recorded so that a
// drill killed midway leaves nothing running after the next one; plus a
// free port and the lookup of a server binary.
//
// Imports only the standard library.
package sandbox
