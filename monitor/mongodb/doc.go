// Package mongodb probes MongoDB primaries and replica set members for
// package monitor and writes the heartbeat document.
//
// The primary must say it is writable (hello: isWritablePrimary). A replica
// is a secondary of the same replica set (hello: secondary, setName); its
// lag in seconds comes from the heartbeat: drd writes {_id: <cluster>, at:
// <its clock>} into drkit.<monitor.heartbeat.table> (default
// drkit_heartbeat) every second on the primary and reads it on each
// replica, as with a row on the SQL engines. Without the heartbeat, the lag
// is the primary's last write time less the replica's (hello's
// lastWrite.lastWriteDate on each).
//
// FerretDB, on which the tests run, has no replica sets: the primary and
// heartbeat paths ran there; the replica path ran only against servers that
// are not secondaries (named as such).
//
// Privileges: hello (any user), find on the heartbeat collection; insert
// and update on it for the heartbeat.
package mongodb
