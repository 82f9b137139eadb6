// Package postgres probes PostgreSQL primaries and standbys for package monitor
// and writes the heartbeat row.
//
// The primary gives its current WAL position, timeline (from the name of its
// current WAL file) and system identifier; each standby its receive and replay
// positions, last replayed commit time, whether replay is paused, its WAL
// receiver's state and timeline. Lag in bytes is the primary's position minus
// the standby's replay position; lag in seconds comes from the heartbeat, else
// from the last replayed commit time.
//
// Privileges: the probe's users need pg_monitor (pg_stat_wal_receiver,
// pg_control_system); the heartbeat's user needs to create and write its table
// (monitor.heartbeat.dsn may name a different user than the replication one).
package postgres
