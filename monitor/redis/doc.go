// Package redis probes Redis primaries and replicas for package monitor and
// writes the heartbeat key.
//
// The primary gives its replication id and offset (INFO replication); each
// replica its link state and processed offset. Lag in bytes is the
// primary's offset minus the replica's; lag in seconds comes from the
// heartbeat: drd SETs <monitor.heartbeat.table>:<cluster> (default
// drkit_heartbeat:<cluster>) to its clock every second on the primary and
// GETs it on each replica, as it does with a row on the SQL engines. Redis
// has no lag in seconds of its own; without the heartbeat, a replica whose
// offset equals the primary's has lag 0 and otherwise its lag is unknown.
//
// A replica is out of sync when it follows another replication history than
// the primary's (its master_replid differs: another primary, or the primary
// restarted without its data, so a full copy is due). Writes made on a
// replica opened with replica-read-only no are not visible in the offsets;
// the checksum comparison (drctl replica check) finds them.
//
// Privileges (ACL): INFO, GET on the heartbeat key for the probe; SET on it
// for the heartbeat.
package redis
