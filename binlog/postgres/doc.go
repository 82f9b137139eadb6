// Package postgres ships PostgreSQL's write-ahead log to every region and serves it
// back for recovery.
//
// Streaming: drd connects as a physical replica (pglogrepl on pgx), from a
// permanent replication slot. Received WAL is assembled into segments; the open
// segment is flushed to every region as a partial chunk at least every
// flush_interval, so a disaster loses seconds of commits, not one 16 MiB segment or
// an archive_timeout. The slot's flush position is confirmed to the server only
// once every required region holds the WAL durably: until then the server keeps
// it, so a crash of drd or of a store loses nothing.
//
// drd's own heartbeat (a transaction a second on a cluster with replicas) is
// the exception: WAL that holds nothing but it and housekeeping waits up to
// monitor.heartbeat.flush_interval (routine.go reads the record stream to tell;
// no Go library decodes WAL records), so an idle database does not cost a
// chunk per region every second. A user's write among it ships as always.
//
// The catalog (catalog.go) names objects so that a listing shows continuity: a
// complete segment is wal/<segment>.<sha256>.<codec>, a flushed part of the open
// segment wal/<segment>.partial/<from>-<to>.<sha256>.<codec>, a timeline history
// wal/<tli>.history.<sha256>.<codec>. The SHA-256 of the plaintext in the name is
// what a read verifies, so no other index is needed.
//
// wal-fetch and wal-push (fetch.go) are PostgreSQL's restore_command and
// archive_command.
//
// Imported by snapshots/postgres (the same engine), monitor, api and cmd.
package postgres
