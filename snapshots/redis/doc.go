// Package redis restores a Redis cluster from one region: the newest base
// backup (an RDB, binlog/redis) before the target, rolled forward by the
// region's stream chunks up to the target time, and verifies a region.
//
// A restore into a running Redis (--target-dsn) makes drctl the target's
// primary for the length of the restore: the target is told REPLICAOF a
// listener of drctl's, which answers its PSYNC with the base's RDB and then
// sends the stored commands, so Redis loads and applies them itself (every
// type, every encoding, expiries as absolute times); then REPLICAOF NO ONE.
// Loading an RDB through commands would mean decoding every RDB encoding of
// every Redis version by hand.
//
// Imports binlog/redis, snapshots and storage.
package redis
