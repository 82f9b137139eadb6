// Package drill proves a region restorable: it restores a cluster from that
// region alone into a sandbox (a throwaway server in a new folder, started
// by the engine's engine.Driller), checks what came back, and reports the
// time of each phase, the RTO (wall time from the drill's start to a usable
// server), the RPO (the drill's start less the newest heartbeat or commit
// time in the restored data) and the bytes read from the store.
//
// The phases: choose backup (every manifest of the region read), sandbox,
// fetch base, verify base (PostgreSQL: pg_verifybackup), fetch log, replay,
// build indexes (MongoDB), start, check, deep check. The engine says when
// its restore moves on (engine.Env.Phase). Where the log is fetched while it
// is replayed, "fetch log" is the time during the replay that a read of the
// store was under way (PostgreSQL: the time its wal-fetch runs took, which
// recovery waits on), and "replay" the rest; where the engine reads ahead
// of its replay, the two overlap and "fetch log" is an upper bound of the
// wait.
//
// A drill never writes to the region's store (it reads through a store that
// refuses writes) and never touches the production server. It runs at a
// lower CPU and I/O priority (nice 10, best-effort 7), and so do its sandbox
// servers, whose pids are recorded in the sandbox folder: a drill that was
// killed leaves a folder whose owner is gone, and the next drill stops the
// processes recorded there and removes it before it starts.
//
// drctl drill runs Run in its own process. drd runs scheduled drills
// (Drills) as drctl drill child processes, one at a time on the host, so
// that a drill's restore (downloads, decompression, a PostgreSQL recovery
// that runs drctl wal-fetch) shares the lowered priority and never runs
// inside drd; their reports are kept in the jobs region (List) and exported
// as metrics.
//
// Imports internal/engine and storage.
package drill
