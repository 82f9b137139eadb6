// Package replication sets up, watches and promotes cross-region replicas, and
// checks that they hold the same data as their primary (chunked checksums).
//
// Imported by api and cmd; imports snapshots, binlog, storage, monitor and internal.
// Engine sub-packages never import each other.
package replication
