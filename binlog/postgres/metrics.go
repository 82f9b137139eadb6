package postgres

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	shippedDesc = prometheus.NewDesc("drkit_log_shipped_timestamp_seconds",
		"When the region last became durable up to newer WAL (Unix time).", []string{"cluster", "engine", "region"}, nil)
	exposureDesc = prometheus.NewDesc("drkit_log_shipping_lag_seconds",
		"How long the region has been missing WAL drd received: the commits a disaster now would lose there, in seconds.", []string{"cluster", "engine", "region"}, nil)
)

// Collector exports the shippers' positions at scrape time.
type Collector struct {
	Shippers []*Shipper
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
		for _, t := range s.Targets {
			if !t.isStarted() {
				continue // not streaming yet: no fact to report
			}
			_, at, _ := t.Durable()
			ch <- prometheus.MustNewConstMetric(shippedDesc, prometheus.GaugeValue, float64(at.UnixNano())/1e9, s.Cluster, "postgres", t.region())
			ch <- prometheus.MustNewConstMetric(exposureDesc, prometheus.GaugeValue, t.Exposure(now).Seconds(), s.Cluster, "postgres", t.region())
		}
	}
}
