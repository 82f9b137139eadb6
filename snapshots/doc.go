// Package snapshots takes consistent base backups per engine (never hot volume
// snapshots), keeps their manifests in the store, applies retention, and runs the
// scheduled cross-region copies of backup sets, machine images and volume snapshots.
//
// Imported by replication, monitor, api and cmd; imports binlog, storage and
// internal. Engine sub-packages never import each other.
package snapshots
