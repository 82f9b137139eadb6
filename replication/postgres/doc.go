// Package postgres creates, checks and promotes PostgreSQL standbys.
//
// Create (create.go) unpacks the newest base backup of the standby's region's
// store into a new data folder (snapshots/postgres Restore, so the primary
// region sends no full copy across) and starts it as a standby whose
// restore_command is `drctl wal-fetch` against that region: it catches up
// from the store, then streams from the primary through a physical slot of
// its own (created first, so the primary keeps what the standby has not
// received). With FromStore it never connects to the primary and keeps
// replaying from the store (drd flushes WAL there every flush_interval).
//
// Check (checksum.go) gives replication.Checker its two sides: a chunk's
// sum is the MD5 of its rows' MD5s in key order, the primary's position is
// pg_current_wal_lsn() and the standby is waited for on
// pg_last_wal_replay_lsn(). A Side is in one database (OpenSideIn);
// replication/all runs one Checker per database.
//
// Promote (promote.go) fences the old primary when it answers
// (default_transaction_read_only, client sessions ended, then waits for the
// standby to replay its last WAL), refuses when the standby has not replayed
// all the WAL the region's store holds (unless forced), then runs
// pg_promote(), which starts a new timeline; drd's shipper stores its history
// file and follows it.
//
// Imports replication, binlog/postgres and snapshots/postgres (the same engine).
package postgres
