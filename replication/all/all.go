// Package all runs replica checksum comparisons for drd and drctl through
// the engine registry: Check asks the cluster's engine (its SyncChecker) to
// compare, and checks.go runs drd's scheduled ones (SyncChecks). It names no
// engine.
//
// Imports replication, internal/engine and snapshots/schedule.
package all

import (
	"context"
	"log/slog"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/replication"
)

// Check compares one replica with the primary at primaryDSN, chunk by chunk,
// skipping the engine's heartbeat (it changes every second by design).
func Check(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, chunkRows int, wait time.Duration, log *slog.Logger) (replication.Report, error) {
	c, err := engine.Capable[engine.SyncChecker](cl.Engine, "compare replicas with their primary")
	if err != nil {
		return replication.Report{Replica: r.Name}, err
	}
	rep, err := c.SyncCheck(ctx, cl, primaryDSN, r, replication.Checker{ChunkRows: chunkRows, Wait: wait, Log: log})
	rep.Replica = r.Name
	return rep, err
}
