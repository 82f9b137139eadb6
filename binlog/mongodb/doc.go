// Package mongodb ships a MongoDB replica set's oplog into every region:
// drd reads local.oplog.rs from where each region's stored oplog ends and
// writes what it read as chunks, at most every flush_interval. Each region
// has a reader of its own: the oplog is the server's own backlog, so a
// slow or dead region falls behind alone and catches up by reading on from
// where it stands, without holding the others back (the cost: one cursor
// per region on the server).
//
// Chunks of a region form chains: <cluster>/oplog/<chain>/<start>-<end>-
// <last ms>-<seal ms>.<sha256>.<codec>, where start and end are oplog
// timestamps (the high-water mark before and after the chunk) and a chain
// is a run without a gap. A restarted reader continues its region's chain
// when the oplog still holds the chain's end; when the oplog has rolled
// past it (the server dropped entries drd never read), a new chain begins,
// and verify and restore name the gap between them.
//
// The reader does not trust ts alone to order entries: FerretDB, which the
// tests run on, takes an entry's ts before it writes the entry, so a
// concurrent writer's entry can land with a slightly smaller ts. On such a
// server (no replica set name) the reader reads again from a second before
// its high-water mark and drops the entries it already holds (by ts and
// _id); on a replica set, entries become visible in ts order and it reads
// from its high-water mark with a majority read concern.
//
// Imports storage, binlog and the MongoDB driver.
package mongodb
