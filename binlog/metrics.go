package binlog

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	shippedDesc = prometheus.NewDesc("drkit_log_shipped_timestamp_seconds",
		"When the region last became durable up to newer log (Unix time).", []string{"cluster", "engine", "region"}, nil)
	exposureDesc = prometheus.NewDesc("drkit_log_shipping_lag_seconds",
		"How long the region has been missing log drd received: the commits a disaster now would lose there, in seconds.", []string{"cluster", "engine", "region"}, nil)
)

// RegionProgress is one region's shipping state.
type RegionProgress struct {
	Region string
	// ShippedAt is when the region last became durable up to newer log.
	ShippedAt time.Time
	// Exposure is how long the region has been missing log drd received.
	Exposure time.Duration
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
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, s := range c.Shippers {
		cluster, engine, regions := s.Progress(now)
		for _, r := range regions {
			ch <- prometheus.MustNewConstMetric(shippedDesc, prometheus.GaugeValue, float64(r.ShippedAt.UnixNano())/1e9, cluster, engine, r.Region)
			ch <- prometheus.MustNewConstMetric(exposureDesc, prometheus.GaugeValue, r.Exposure.Seconds(), cluster, engine, r.Region)
		}
	}
}
