package drill

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the drills' gauges, per cluster and region.
type Metrics struct {
	lastOK, lastFail, rto, rpo *prometheus.GaugeVec // by cluster, region
	phase                      *prometheus.GaugeVec
	interval, objective        *prometheus.GaugeVec
}

// NewMetrics registers the drill metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(v)
		return v
	}
	return &Metrics{
		lastOK:   g("drkit_drill_last_success_timestamp_seconds", "When the newest passing restore drill of the cluster from the region ended (Unix time).", "cluster", "region"),
		lastFail: g("drkit_drill_last_failure_timestamp_seconds", "When the newest failed restore drill of the cluster from the region ended (Unix time).", "cluster", "region"),
		rto:      g("drkit_drill_rto_seconds", "The newest passing drill's RTO: wall time from its start to a usable, checked server.", "cluster", "region"),
		rpo:      g("drkit_drill_rpo_seconds", "The newest passing drill's RPO: its start less the newest heartbeat or commit time in the restored data.", "cluster", "region"),
		phase:    g("drkit_drill_phase_seconds", "Seconds each phase of the newest drill took (choose backup, sandbox, fetch base, verify base, fetch log, replay, build indexes, start, check, deep check).", "cluster", "region", "phase"),
		interval: g("drkit_drill_interval_seconds", "Seconds between two scheduled drills of the cluster (from its drill.schedule).", "cluster"),
		objective: g("drkit_drill_objective_seconds", "The cluster's recovery objectives (objectives.rto, objectives.rpo) drills are held to.",
			"cluster", "objective"),
	}
}

// Observe records a finished drill.
func (m *Metrics) Observe(rep Report) {
	at := float64(rep.Finished.UnixNano()) / 1e9
	for _, p := range rep.Phases {
		m.phase.WithLabelValues(rep.Cluster, rep.Region, p.Name).Set(p.Seconds)
	}
	if !rep.OK {
		m.lastFail.WithLabelValues(rep.Cluster, rep.Region).Set(at)
		return
	}
	m.lastOK.WithLabelValues(rep.Cluster, rep.Region).Set(at)
	m.rto.WithLabelValues(rep.Cluster, rep.Region).Set(rep.RTOSeconds)
	m.rpo.WithLabelValues(rep.Cluster, rep.Region).Set(rep.RPOSeconds)
}

// Describe sets the cluster's schedule interval and objectives (zero
// objectives are not exported: no objective, no alert) and a failure time
// of 0 (none yet) for each drilled region, so that the failure alert's
// series exists before a first failure.
func (m *Metrics) Describe(cluster string, regions []string, interval, rto, rpo time.Duration) {
	m.interval.WithLabelValues(cluster).Set(interval.Seconds())
	for _, r := range regions {
		m.lastFail.WithLabelValues(cluster, r).Set(0)
	}
	for name, d := range map[string]time.Duration{"rto": rto, "rpo": rpo} {
		if d > 0 {
			m.objective.WithLabelValues(cluster, name).Set(d.Seconds())
		}
	}
}
