// Package storage is drkit's object-store port: every log segment and backup goes
// through a Store. Adapters (file://, s3://) live in sub-packages and register their
// URL scheme in init(), as database/sql drivers do. Around a Store sit the pipeline
// (zstd, age encryption, SHA-256 of the plaintext), resumable multipart uploads and
// cross-region copy.
//
// Imported by binlog, snapshots, replication, monitor, api and cmd; imports only
// internal packages.
package storage
