// Package redis creates and promotes Redis replicas.
//
// Redis has no log drkit ships yet, so a replica is made by Redis itself:
// REPLICAOF the primary (with masterauth/masteruser from the cluster's URL),
// which copies the dataset once and then streams writes. Before that, Create
// checks that the replication settings can carry the primary's write load
// across regions: the backlog must hold a minute of writes (so a short link
// outage resumes with a partial sync, not a new full copy) and the replica
// output buffer must hold the writes made while the full copy travels
// (estimated at CopyBytesPerSecond), else the primary cuts the replica off
// in a loop. It refuses with the numbers and the CONFIG SET to run unless
// forced.
//
// Promote pauses writes on the old primary when it answers (CLIENT PAUSE
// WRITE), waits until the replica has its last offset, makes the replica a
// primary (REPLICAOF NO ONE) and turns the old primary into a replica of the
// new one, which fences it for good (replicas refuse writes). When the old
// primary is down, what it wrote after the replica's last offset is lost:
// Redis keeps no log in the regions' stores to check against, and the
// result says so.
//
// Imports replication.
package redis
