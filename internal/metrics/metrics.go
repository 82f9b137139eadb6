// Package metrics holds the Prometheus collectors that several drkit packages
// share, such as drkit_errors_total, so that each registers the one series family
// instead of colliding. Imported by storage, binlog, snapshots, monitor; imports
// nothing of drkit's.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// ErrorsTotal returns drkit_errors_total{cluster,region,kind}, registering it on
// reg the first time and returning the registered one after that.
func ErrorsTotal(reg prometheus.Registerer) *prometheus.CounterVec {
	return register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drkit_errors_total",
		Help: "Errors by kind (for example store_put, store_get), cluster and region.",
	}, []string{"cluster", "region", "kind"}))
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a name clash of a different type: a programming error
	}
	return c
}
