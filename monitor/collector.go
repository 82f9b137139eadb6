package monitor

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	serverLabels = []string{"cluster", "engine", "region", "replica"}
	upDesc       = prometheus.NewDesc("drkit_up",
		"Whether drd's last probe reached the server (1) or not (0); replica=\"\" is the primary.", serverLabels, nil)
	linkDesc = prometheus.NewDesc("drkit_replication_link_up",
		"Whether the replica is connected to its primary and receiving its log.", serverLabels, nil)
	applyingDesc = prometheus.NewDesc("drkit_replication_applying",
		"Whether the replica replays the log it receives (1) or its replay is paused or its SQL thread stopped (0).", serverLabels, nil)
	inSyncDesc = prometheus.NewDesc("drkit_replica_in_sync",
		"Whether the replica follows this primary and can converge on it (same system, no apply error, no transactions of its own) and its last checksum comparison found no drift. Lag alone does not clear it.", serverLabels, nil)
	lagSecondsDesc = prometheus.NewDesc("drkit_replication_lag_seconds",
		"How far the replica's replay is behind the primary, in seconds (heartbeat, else the engine's view).", serverLabels, nil)
	lagBytesDesc = prometheus.NewDesc("drkit_replication_lag_bytes",
		"How much of the primary's log the replica has not replayed, in bytes.", serverLabels, nil)
	lagTxnsDesc = prometheus.NewDesc("drkit_replication_lag_transactions",
		"How many of the primary's transactions the replica has not applied (GTID distance).", serverLabels, nil)
	driftDesc = prometheus.NewDesc("drkit_replica_drift_chunks",
		"How many key-range chunks differed from the primary at drd's last checksum comparison (sync_check); 0 is in sync.", serverLabels, nil)
	stateDesc = prometheus.NewDesc("drkit_replica_state",
		"1 for the replica's lifecycle state, named by kind: creating, catching_up, streaming or broken.", append(serverLabels, "kind"), nil)
	probeDesc = prometheus.NewDesc("drkit_probe_timestamp_seconds",
		"When drd last finished probing the cluster (Unix time).", []string{"cluster", "engine"}, nil)
)

// Collector exports the watchers' states at scrape time, refreshing those
// older than MaxAge first: all watchers at once, waited for at most
// scrapeWait, so that a server that hangs (a partitioned region) does not
// make the whole scrape time out; its probe goes on in the background,
// bounded by the interval, and the next scrape exports it.
type Collector struct {
	Watchers []*Watcher
	// MaxAge is how old a probe may be at a scrape; 0 never refreshes.
	MaxAge time.Duration
}

// scrapeWait bounds how long a scrape waits for refreshed probes.
const scrapeWait = time.Second

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, linkDesc, applyingDesc, inSyncDesc, lagSecondsDesc, lagBytesDesc, lagTxnsDesc, driftDesc, stateDesc, probeDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.MaxAge > 0 {
		var wg sync.WaitGroup
		for _, w := range c.Watchers {
			wg.Go(func() { w.Refresh(context.Background(), c.MaxAge) })
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(scrapeWait):
		}
	}
	for _, w := range c.Watchers {
		st := w.State()
		if st.At.IsZero() {
			continue // not probed yet: no facts rather than made-up ones
		}
		ch <- prometheus.MustNewConstMetric(probeDesc, prometheus.GaugeValue, float64(st.At.UnixNano())/1e9, st.Cluster, st.Engine)
		for _, s := range st.Servers {
			collectServer(ch, st, s)
		}
	}
}

func collectServer(ch chan<- prometheus.Metric, st ClusterState, s ServerState) {
	labels := []string{st.Cluster, st.Engine, s.Region, s.Replica}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(upDesc, boolValue(s.Up))
	if s.Replica != "" && s.State != "" {
		ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, 1, append(labels, s.State)...)
	}
	if s.DriftChunks != nil {
		gauge(driftDesc, float64(*s.DriftChunks))
	}
	if s.Replica == "" || !s.Up {
		return
	}
	gauge(linkDesc, boolValue(s.LinkUp))
	gauge(applyingDesc, boolValue(s.Applying))
	// Data that differs is out of sync however well the link runs.
	gauge(inSyncDesc, boolValue(s.InSync && (s.DriftChunks == nil || *s.DriftChunks == 0)))
	for d, v := range map[*prometheus.Desc]*float64{lagSecondsDesc: s.LagSeconds, lagBytesDesc: s.LagBytes, lagTxnsDesc: s.LagTransactions} {
		if v != nil {
			gauge(d, *v)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
