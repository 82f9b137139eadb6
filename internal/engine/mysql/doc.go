// Package mysql registers the MySQL/MariaDB engine: it adapts
// snapshots/mysql (snapshots, restores with binlog replay, retention),
// binlog/mysql (the binlog shipper, verification, status) and monitor/mysql
// (probes, heartbeat) to the engine-neutral capabilities of internal/engine.
//
// Imports internal/engine and the MySQL packages of each area.
package mysql
