// Package drill proves a region restorable: it restores a cluster from that
// region alone into a sandbox (a throwaway server in a new folder, started
// by the engine's engine.Driller), checks what came back, and reports the
// time of each phase, the RTO (wall time from the drill's start to a usable
// server), the RPO (the drill's start less the newest heartbeat or commit
// time in the restored data) and the bytes read from the store.
//
// A drill never writes to the region's store (it reads through a store that
// refuses writes) and never touches the production server. Its sandbox
// servers run at a lower CPU priority (nice 10), their pids recorded in the
// sandbox folder: a drill that was killed leaves a folder whose owner is
// gone, and the next drill stops the processes recorded there and removes
// it before it starts.
//
// Imports internal/engine and storage.
package drill
