// Package monitor holds drkit's Prometheus metrics and, as engines arrive, the
// probes that measure replication lag, log-shipping exposure and store health.
//
// Metric names and labels are a user contract (see DESIGN.md): prefix drkit_, base
// units, _total counters, *_timestamp_seconds for last success, and labels only from
// cluster, engine, region, replica, source_region, target_region and kind.
//
// Imported by cmd and api; imports storage and internal packages only.
package monitor
