package binlog

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	shippedDesc = prometheus.NewDesc("drkit_log_shipped_timestamp_seconds",
		"When the region last became durable up to newer log (Unix time).", []string{"cluster", "engine", "region"}, nil)
	exposureDesc = prometheus.NewDesc("drkit_log_shipping_lag_seconds",
		"The age of the oldest log drd received that the region does not hold yet: the commits a disaster now would lose there, in seconds.", []string{"cluster", "engine", "region"}, nil)
	catchingUpDesc = prometheus.NewDesc("drkit_log_catching_up",
		"1 while the region has fallen behind the stream (its store was too slow or down) and catches up from another region or the database.", []string{"cluster", "engine", "region"}, nil)
	standbyDesc = prometheus.NewDesc("drkit_shipper_standby",
		"1 while another drd ships the cluster and this one stands by to take over.", []string{"cluster"}, nil)
)

// Standbyer is a shipper that can stand by while another drd ships its
// cluster (PostgreSQL: the slot is busy; MariaDB: a reader with drd's
// server_id is registered).
type Standbyer interface {
	Standby() bool
}

// StandbyRetry is how often a standing-by shipper tries again: it takes over
// within it once the other drd is gone.
const StandbyRetry = 2 * time.Second

// Sleep waits d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// StandbyState is a shipper's standby flag; embedding it implements Standbyer.
type StandbyState struct{ on atomic.Bool }

// Standby reports whether the shipper stands by.
func (s *StandbyState) Standby() bool { return s.on.Load() }

// SetStandby records whether the shipper stands by and returns what it was.
func (s *StandbyState) SetStandby(v bool) (was bool) { return s.on.Swap(v) }

// RegionProgress is one region's shipping state.
type RegionProgress struct {
	Region string
	// ShippedAt is when the region last became durable up to newer log.
	ShippedAt time.Time
	// Exposure is the age of the oldest log drd received that the region lacks.
	Exposure time.Duration
	// CatchingUp: the region fell behind the stream and catches up apart
	// from it, so that it does not hold the other regions back.
	CatchingUp bool
}

// Shipper is what every engine's log shipper reports.
type Shipper interface {
	// Progress returns the cluster, the engine label and the regions that are
	// being written (a region not started yet has no fact to report).
	Progress(now time.Time) (cluster, engine string, regions []RegionProgress)
}

// Collector exports the shippers' positions at scrape time.
type Collector struct {
	Shippers []Shipper
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- shippedDesc
	ch <- exposureDesc
	ch <- catchingUpDesc
	ch <- standbyDesc
	ch <- syncModeDesc
	ch <- syncWaitDesc
	ch <- syncStalledDesc
	ch <- syncServerSyncDesc
	ch <- syncServerWaitingDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, s := range c.Shippers {
		cluster, engine, regions := s.Progress(now)
		if sb, ok := s.(Standbyer); ok {
			v := 0.0
			if sb.Standby() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(standbyDesc, prometheus.GaugeValue, v, cluster)
		}
		if sy, ok := s.(Syncer); ok {
			collectSync(ch, cluster, sy, now)
		}
		for _, r := range regions {
			ch <- prometheus.MustNewConstMetric(shippedDesc, prometheus.GaugeValue, float64(r.ShippedAt.UnixNano())/1e9, cluster, engine, r.Region)
			ch <- prometheus.MustNewConstMetric(exposureDesc, prometheus.GaugeValue, r.Exposure.Seconds(), cluster, engine, r.Region)
			v := 0.0
			if r.CatchingUp {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(catchingUpDesc, prometheus.GaugeValue, v, cluster, engine, r.Region)
		}
	}
}
