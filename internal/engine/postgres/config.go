package postgres

import (
	"context"

	"strings"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/replication"
	pgrepl "github.com/drkit/drkit/replication/postgres"
)

var _ engine.Configured = Engine{}

// ConfigRules implements engine.Configured: a replication slot named after
// the cluster, the heartbeat in the DSN's database; the slot acknowledges
// positions, so required_regions applies.
func (Engine) ConfigRules() config.EngineRules {
	return config.EngineRules{
		Defaults: func(cl *config.Cluster) {
			if cl.Slot == "" {
				cl.Slot = "drkit_" + strings.NewReplacer("-", "_", ".", "_").Replace(cl.Name)
			}
			if cl.Monitor.Heartbeat.Table == "" {
				cl.Monitor.Heartbeat.Table = "drkit_heartbeat"
			}
		},
		Acknowledges: true,
		Sync:         true,
		SyncCheck:    true,
		Drill:        true,
	}
}

var _ engine.SyncChecker = Engine{}

// SyncCheck implements engine.SyncChecker: every database of the primary,
// the heartbeat table (public.<table> unless named with its schema) left out.
func (Engine) SyncCheck(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, opts replication.Checker) (replication.Report, error) {
	hb := cl.Monitor.Heartbeat.Table
	if !strings.Contains(hb, ".") {
		hb = "public." + hb
	}
	opts.Skip = []string{hb}
	return pgrepl.SyncCheck(ctx, primaryDSN, r.DSN, opts)
}
