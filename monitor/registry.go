package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/drkit/drkit/internal/buildinfo"
)

// NewRegistry returns a registry with the Go runtime and process collectors and
// drkit_build_info. Each drd gets its own registry rather than the global default,
// so tests can run several side by side.
func NewRegistry(info buildinfo.Info) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo(info),
	)
	return reg
}

// buildInfo is the conventional constant-1 gauge whose labels carry the version;
// it has exactly one series, so its labels cannot grow cardinality.
func buildInfo(info buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "drkit_build_info",
		Help: "A constant 1 labelled with the version, VCS revision and Go version drkit was built from.",
		ConstLabels: prometheus.Labels{
			"version":   info.Version,
			"revision":  info.Revision,
			"goversion": info.GoVersion,
		},
	})
	g.Set(1)
	return g
}
