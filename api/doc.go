// Package api serves drd's HTTP listener: /healthz (the process is alive), /readyz
// (every component is ready), /metrics (Prometheus, OpenMetrics when asked) and, as
// later issues add it, the JSON API with its authentication.
//
// Imported by cmd only; it depends on small interfaces (a readiness func, a
// prometheus.Gatherer) rather than on the components themselves.
package api
