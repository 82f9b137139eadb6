// Package replication sets up, watches and promotes cross-region replicas, and
// checks that they hold the same data as their primary.
//
// The engine-neutral parts live here:
//
//   - catalog.go: replicas created by drctl are registered in the cluster's
//     catalog in every region's store (<cluster>/replicas/<name>.json), and a
//     promotion is recorded there too (<cluster>/replication/primary.json), so
//     drd and `drctl promote` find them without a config edit and even when the
//     primary region is gone. Passwords are never stored: a registered DSN
//     carries config.Redacted and the cluster's own password is filled in
//     when it is used.
//   - check.go: the chunked checksum comparison (as pt-table-checksum does,
//     but without writing to the primary): each table is cut into primary-key
//     ranges on the primary; each range is summed on the primary, the
//     primary's log position is read, the replica is waited for until it has
//     replayed that position, and the range is summed there. A range that
//     differs is summed again on the primary: if the primary's sum did not
//     change meanwhile the difference is drift, else the range is rechecked at
//     the new position (a few times, then reported as changing too fast to
//     compare, never as drift).
//   - watch.go: drd follows the catalog (Follow, CatalogWatch): a recorded
//     promotion or a changed set of replicas restarts drd on the new shape.
//   - promotion.go: drctl promote's order (PromoteRun): the engine's
//     promotion, the catalog record, the replica's record, the DNS switch.
//   - state.go: a replica's lifecycle (creating, catching up, streaming,
//     broken) from its catalog record and the monitor's probe.
//
// Engine sub-packages (postgres, mysql, redis) create, check and promote;
// route53 switches a DNS name during a promotion.
//
// Imported by api and cmd; imports snapshots, binlog, storage, monitor and internal.
// Engine sub-packages never import each other.
package replication
