// Package postgres takes PostgreSQL base backups into every region and restores
// them, with WAL replay to a point in time, from one region alone.
//
// Backups use the replication protocol's BASE_BACKUP with WAL included, so each
// backup carries the WAL from its start to its stop and is complete in a region
// as soon as its objects are there, whether or not drd's stream ran. The server
// compresses the tar stream (zstd at storage's compression_level: its libzstd
// is about twice as fast as compressing here, and the stream then crosses the
// connection compressed); the compressed stream is cut into chunks, each sent
// through the region's pipeline (age, SHA-256; no second compression) to every
// region while the next chunk arrives: nothing is staged on local disk, and a
// restore fetches chunks in parallel and decompresses them as one stream. A
// server that cannot compress (built without zstd), or regions at different
// levels, get the plain tar stream, each chunk then compressed by the pipeline
// (manifest format 1). PostgreSQL's own backup_manifest is kept, so
// pg_verifybackup can check a restored folder.
//
// The BASE_BACKUP client is written here on pgconn: pglogrepl's helper predates
// PostgreSQL 15's single-stream format and cannot ask for the manifest.
//
// Layout per region: <cluster>/base/<id>/chunk-<n>.<codec>, backup_manifest.<codec>
// and manifest.json, written last: a backup without manifest.json is incomplete.
//
// Imports binlog/postgres (WAL catalog) and storage; imported by cmd.
package postgres
