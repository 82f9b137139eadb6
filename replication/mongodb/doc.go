// Package mongodb compares a MongoDB replica with its primary, collection
// by collection in chunks of _id (drctl replica check, drd's sync_check),
// through replication.Checker.
//
// Every collection of every database but admin, local and config is
// compared (views and system.* collections are not data). A chunk is a
// range of _id in _id order; both sides hash its documents' BSON bytes in
// that order, which a replica set member holds byte for byte as its primary
// does because it applies the same oplog. MongoDB's range operators match
// one type bracket only, so a collection whose _ids are of more than one
// bracket (numbers and strings, say) is compared as one chunk.
//
// On a replica set, the primary's position is its last write's optime and
// the replica is waited for until its own last write reaches it. Servers
// that do not replicate to each other (two standalone servers, such as
// FerretDB, the test server here, or a restored copy) have no shared
// position: they are compared as they stand, and the check says so in its
// log.
//
// Creating a replica (adding a member to the primary's replica set) is for
// real MongoDB only; FerretDB has no replica sets.
//
// Imports replication.
package mongodb
