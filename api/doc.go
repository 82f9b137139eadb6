// Package api serves drd's HTTP listener: /healthz (the process is alive),
// /readyz (every component is ready), /metrics (Prometheus, OpenMetrics when
// asked) and the JSON API under /api/v1: status, clusters, backups per region,
// starting a backup and the state of such jobs. openapi.json (checked in,
// served at /api/v1/openapi.json) documents it; a test keeps the two equal.
//
// Authentication: bearer tokens from drd.api.tokens_file (compared in constant
// time) or, with TLS and a client CA, a verified client certificate. Without a
// tokens file the read-only endpoints are open (drd listens on loopback by
// default) and endpoints that act are refused. /healthz, /readyz and /metrics
// are open unless drd.api.protect_all is set. Errors are JSON:
// {"error": {"code": "not_found", "message": "..."}}.
//
// Imported by cmd only. It reads drd's components through the function fields
// of Cluster, which drd wires, so it holds no engine code.
package api
