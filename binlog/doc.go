// Package binlog ships transaction logs to every region for replay: PostgreSQL WAL,
// MySQL/MariaDB binlog, MongoDB oplog and the Redis replication stream, one
// sub-package per engine (binlog/postgres, binlog/mysql, ...). A log position is
// acknowledged to the database only once every required region holds it durably.
//
// Imported by snapshots, replication, monitor, api and cmd; imports storage and
// internal. Engine sub-packages never import each other.
package binlog
