#!/usr/bin/env bash
# Monitor benchmark: alert latency with the shipped defaults (replay paused on a
# real standby -> ReplicationLagHigh firing in a real Prometheus) and drd's idle
# CPU and RSS watching 4 clusters, beside postgres_exporter + mysqld_exporter
# watching the same servers. See BenchmarkMonitor in deploy/bench_test.go.
# HEARTBEAT=off runs drd without its heartbeat writes (whose log it then ships
# every second) to show what the heartbeat costs.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./deploy -run '^$' -bench '^BenchmarkMonitor$' -benchtime 1x -timeout 15m
