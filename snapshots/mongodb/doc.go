// Package mongodb takes, restores, verifies and prunes MongoDB base
// backups, and restores the oplog binlog/mongodb ships on top of them.
//
// A base backup is every collection of every database but admin, local
// and config, read in parallel and stored as BSON documents (one object per
// collection, under parts/ with its namespace in the manifest: a store is
// untrusted, and a collection's name never becomes a path), with its
// options and index specifications, and the oplog position before it
// began. The documents of a collection are read while writes go on; the
// oplog replayed from that position makes the restore consistent, as
// mongodump --oplog does: every entry is idempotent when applied as a
// replacement, an upsert or a delete by _id.
//
// A restore loads the base into an empty server (it refuses one holding
// any database but admin, local and config), replays the region's oplog
// from the base's position to the target time in batches (one bulk write
// per run of entries of one namespace, in oplog order), and then builds the
// indexes.
//
// Imports binlog/mongodb, snapshots and storage.
package mongodb
