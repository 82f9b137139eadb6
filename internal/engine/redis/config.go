package redis

import (
	"context"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/replication"
	rdrepl "github.com/drkit/drkit/replication/redis"
)

var _ engine.Configured = Engine{}

// ConfigRules implements engine.Configured: the heartbeat key's prefix;
// required_regions names the regions whose durable offset drd reports to
// the primary (REPLCONF ACK, which its WAIT and INFO show).
func (Engine) ConfigRules() config.EngineRules {
	return config.EngineRules{
		Acknowledges: true,
		Defaults: func(cl *config.Cluster) {
			if cl.Monitor.Heartbeat.Table == "" {
				cl.Monitor.Heartbeat.Table = "drkit_heartbeat"
			}
		},
		SyncCheck:   true,
		Drill:       true,
		DrillTarget: true,
	}
}

var _ engine.SyncChecker = Engine{}

// heartbeatKey is the cluster's heartbeat key: <table>:<cluster>.
func heartbeatKey(cl config.Cluster) string {
	return cl.Monitor.Heartbeat.Table + ":" + cl.Name
}

// SyncCheck implements engine.SyncChecker: keys compared per database,
// the heartbeat key left out.
func (Engine) SyncCheck(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, opts replication.Checker) (replication.Report, error) {
	opts.Skip = []string{heartbeatKey(cl)}
	return rdrepl.SyncCheck(ctx, primaryDSN, r.DSN, opts)
}
