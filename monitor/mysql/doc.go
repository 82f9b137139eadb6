// Package mysql probes MariaDB primaries and replicas for package monitor and
// writes the heartbeat row.
//
// The primary gives its server_id, GTID position and binlog files; each
// replica its SHOW SLAVE STATUS, gtid_slave_pos and gtid_binlog_state. Lag in
// bytes is the binlog between the replica's executed position and the
// primary's end; lag in transactions is the GTID distance; lag in seconds comes
// from the heartbeat, else Seconds_Behind_Master (unknown while the SQL thread
// is stopped).
//
// A replica is out of sync when its SQL thread stopped on an error, when it
// replicates a different server than the primary, or when its binlog state
// holds transactions with its own server_id (writes made on the replica).
//
// Privileges: the probe's users need REPLICATION CLIENT (BINLOG MONITOR,
// SLAVE MONITOR on MariaDB ≥ 10.5) and SELECT on the heartbeat table; the
// heartbeat's user needs CREATE and write on it.
package mysql
