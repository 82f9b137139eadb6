// Package monitor watches each cluster's primary and replicas and exports what
// it finds as Prometheus metrics: per replica, reachability (drkit_up), link
// state, sync state and replication lag in true seconds, bytes and (MySQL)
// transactions.
//
// A Watcher per cluster runs two loops: a heartbeat writer, which stores drd's
// clock in a one-row-per-cluster table on the primary every second, and a probe
// every monitor.interval (default 5s). A scrape whose probe is older than the
// Collector's MaxAge (drd: 1s) probes first, as exporters do, so an alert
// waits for the scrape and the rule evaluation but not also for the next
// interval; the interval's probe is skipped when a scrape probed lately. Lag in seconds is the difference between
// the heartbeat the primary holds and the one a replica has replayed, as
// pt-heartbeat measures it; both values come from drd's clock, so clock skew
// between hosts does not enter. Where the heartbeat is off or not yet
// replicated, lag comes from the engine's own view (replay timestamps,
// Seconds_Behind_Master).
//
// A probe that cannot reach a server reports drkit_up=0 for it and no lag at
// all, never a fake 0. The engines' probes live in monitor/postgres and
// monitor/mysql; this package holds what they share and imports neither.
//
// Metric names and labels are a user contract (see DESIGN.md): prefix drkit_,
// base units, _total counters, *_timestamp_seconds for last success, and labels
// only from cluster, engine, region, replica, source_region, target_region and
// kind.
//
// Imported by cmd and api; imports storage and internal packages only.
package monitor
