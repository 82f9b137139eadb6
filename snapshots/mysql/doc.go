// Package mysql takes consistent logical snapshots of MariaDB servers into every
// region and restores them, with binlog replay to a point in time.
//
// Snapshot (backup.go, snapshot.go): commits are blocked (BACKUP STAGE
// BLOCK_COMMIT, or FLUSH TABLES WITH READ LOCK where that is refused) only
// while the worker connections open their consistent snapshots and the schema
// and GTID position are read (milliseconds on an idle server). Then tables are
// read in parallel inside those snapshots, big tables in primary-key ranges,
// through go-mysql's streaming reader (reader.go says why), and written as
// tab-separated parts (LOAD DATA's format) to every region. Each part is
// compressed once per zstd level into a frame carrying its content checksum,
// and the frame's SHA-256 is recorded (manifest format 2, part_compression
// "zstd"); each region stores the frame through its pipeline, encrypted for
// its own recipients. Format-1 snapshots (parts compressed by the pipeline,
// hashed as text) are still restored. Schema,
// views, routines, triggers, events and users with their grants are kept in
// schema.json; manifest.json, written last, records the exact GTID position and
// every object, so a backup without one is incomplete and never used.
//
// Restore (restore.go): into an empty server, schema first, then the parts with
// parallel LOAD DATA (binlog, unique and foreign-key checks off for the load),
// then views, routines, triggers, events and grants; then gtid_slave_pos is set
// to the snapshot's position and binlog/mysql replays the region's binlog up to
// the target through the server's own replication applier.
//
// Values are copied as bytes (character_set_results=binary, LOAD DATA
// CHARACTER SET binary) in time_zone '+00:00', so text in any character set and
// TIMESTAMPs survive unchanged; BIT columns go through their integer value.
// Spatial columns are refused with the column's name (not supported yet).
//
// Imports binlog/mysql (the same engine) and storage.
package mysql
