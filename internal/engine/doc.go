// Package engine is the one place drd and drctl learn what a database engine
// can do. An engine (PostgreSQL, MariaDB, Redis, …) registers itself by name
// in init(), as database/sql drivers do, and offers each capability it has as
// a small interface: a log shipper, base backups, restores, verification,
// status, retention, monitoring probes. A capability an engine lacks is
// simply not implemented, and As names it: "engine redis cannot verify yet".
//
// It lives under internal because it is the composition contract between
// cmd and the engine packages (snapshots/*, binlog/*, monitor/*), not an API
// of its own: the adapters under engine/<name> translate between these
// engine-neutral requests and each engine's own packages, and engine/all
// imports every adapter. A new engine adds its adapter package and one import
// line in engine/all; cmd/ does not change.
//
// Imports internal/config, storage, snapshots, binlog and monitor; imported
// by cmd and the adapters.
package engine
