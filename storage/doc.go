// Package storage is drkit's object-store port: every log segment and backup goes
// through a Store.
//
// Adapters live in sub-packages (storage/file, storage/s3) and register their URL
// scheme in init(), as database/sql drivers do; import them for their side effect
// and call Open with a store URL. Every adapter passes the shared conformance suite
// in storage/storetest.
//
// Around a Store sit:
//   - Pipeline: zstd compression, optional age encryption, and the SHA-256 of the
//     plaintext, recorded by the caller's manifest and checked on every full read.
//   - Copy: cross-region copy, server-side where both regions share an S3 endpoint
//     and credentials, streamed with bounded memory otherwise.
//   - Instrument: Prometheus counters of bytes and objects per region, and Probe for
//     drkit_store_up.
//
// Imported by binlog, snapshots, replication, monitor, api and cmd; of
// drkit's own packages it imports only internal/metrics, never
// internal/config: a region is opened from a RegionSpec, which
// internal/regions fills from the config.
package storage
