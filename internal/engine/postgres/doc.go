// Package postgres registers the PostgreSQL engine: it adapts
// snapshots/postgres (base backups, restores, verify, status, retention),
// binlog/postgres (the WAL shipper) and monitor/postgres (probes, heartbeat)
// to the engine-neutral capabilities of internal/engine.
//
// Imports internal/engine and the PostgreSQL packages of each area.
package postgres
