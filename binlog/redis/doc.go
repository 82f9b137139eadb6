// Package redis captures a Redis primary's replication stream into every
// region, as a replica would receive it: drd connects with the replica
// handshake (AUTH, REPLCONF, PSYNC), stores the RDB of a full resync as a
// base backup tagged with its (replid, offset), and cuts the command stream
// that follows into chunks named by (replid, start offset), written to every
// ship_to region at most every flush_interval. A chunk is cut only between
// whole commands and never inside MULTI/EXEC; it keeps the time each command
// was received (the stream carries none). REPLCONF ACK reports only what
// every region holds durably, so the primary's WAIT and INFO show drkit's
// real position. After a restart drd asks PSYNC for the next byte of what
// the regions hold: +CONTINUE continues the history; +FULLRESYNC starts a
// new one (a new base), and restores never cross from one to the other.
//
// The replica side of the protocol is written here by hand: go-redis speaks
// it only as a client, and RedisShake, which speaks it, is a program that
// spools to local disk, not a library. The protocol is small (RESP arrays
// of bulk strings, a handful of REPLCONF replies); see
// https://redis.io/docs/latest/develop/reference/protocol-spec/ and
// https://redis.io/docs/latest/operate/oss_and_stack/management/replication/.
//
// Imports storage and binlog.
package redis
