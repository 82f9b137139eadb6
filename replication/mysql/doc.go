// Package mysql creates, checks and promotes MariaDB replicas.
//
// Create (create.go) loads the newest snapshot in the replica's region's
// store into an empty server and replays that store's binlog (snapshots/mysql
// Restore: the primary region sends no full copy across), then points the
// server at the primary with CHANGE MASTER ... MASTER_USE_GTID=slave_pos, so
// replication continues exactly after the last replayed transaction, and
// makes it read_only.
//
// Check (checksum.go) gives replication.Checker its two sides: chunks are
// summed with 128-bit XORs of each row's MD5 (order-independent, as
// pt-table-checksum's BIT_XOR of CRC32 but wider), the primary's position is
// @@gtid_binlog_pos and the replica is waited for with MASTER_GTID_WAIT.
//
// Promote (promote.go) fences the old primary when it answers (read_only, then
// waits for the replica to apply its last transaction), refuses when the
// replica lacks transactions that the region's store holds (unless forced),
// then stops and resets the replica's replication and makes it writable.
//
// MariaDB only, as binlog/mysql: MySQL 8 servers are refused with that reason.
//
// Imports replication, binlog/mysql and snapshots/mysql (the same engine).
package mysql
