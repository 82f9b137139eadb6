// Package mysql ships the MySQL/MariaDB binary log to every region and serves it
// back for point-in-time recovery.
//
// Streaming (shipper.go, dump.go): drd connects as a replica with its own
// server_id (GTID positioning: MariaDB's @slave_connect_state) and reads the raw
// events itself on go-mysql's client connection: go-mysql's BinlogSyncer cost
// four times the CPU per event and made a catch-up slower than mariadb-binlog
// (numbers in dump.go). Events are grouped into whole transactions (txn.go) and
// flushed to every region at least every flush_interval as one chunk object, so a
// disaster loses seconds of commits, not a binlog file or a cron interval. Chunks
// hold whole transactions only, so the GTID position at a chunk's end is exact and
// a restart resumes from it without gap or duplicate; empty regions start at the
// server's position when drd first connects. A chunk is encoded and compressed
// once for every region that stands where it starts, as soon as it is cut,
// beside the stream and the uploads. A batch of
// nothing but drd's heartbeat transactions (their table maps name only the
// heartbeat table) waits up to monitor.heartbeat.flush_interval for real writes.
//
// MySQL has no replication slot: the server keeps binlogs by age
// (binlog_expire_logs_seconds / expire_logs_days), not by what drd holds. The
// shipper therefore never "acknowledges"; it reports the durable position and its
// age per region, and a shipper that falls behind the server's oldest binlog says
// so loudly instead of skipping the gap.
//
// Catalog (catalog.go, chunk.go): <cluster>/binlog/<seq>-<last commit unix>.<sha256>.<codec>.
// A chunk's plaintext starts with a JSON header line (GTID position before and
// after, commit times, the checksum algorithm) followed by the binlog's
// Format_description event and then the raw events. The sequence number orders
// chunks; the GTID positions show continuity.
//
// Replay (replay.go): a restore serves the stored events to the target server
// over the replication protocol — drctl plays a primary (go-mysql's server
// package), the target runs CHANGE MASTER ... MASTER_USE_GTID=slave_pos and
// replicates until the last transaction before the target. We chose this over
// piping mariadb-binlog into the mariadb client (WAL-G's way) because the
// server's own applier is the one that is correct: gtid_strict_mode, GTID state
// (gtid_slave_pos / gtid_binlog_state) and DDL are handled exactly as for any
// replica, it applies in parallel (slave_parallel_threads), and no text
// round-trip of row events happens.
//
// Only MariaDB is supported today: MySQL 8 needs COM_BINLOG_DUMP_GTID with GTID
// sets on both sides, which cannot be tested on this machine (no MySQL server).
// The shipper, the snapshot and the restore refuse a MySQL server by name.
//
// Imported by snapshots/mysql (the same engine), monitor, api and cmd.
package mysql
