// Package all picks the engine sub-package of replication for a cluster, so
// that drd and drctl share one way to build a replica check.
//
// Imports replication and its engine packages.
package all

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/replication"
	myrepl "github.com/drkit/drkit/replication/mysql"
	pgrepl "github.com/drkit/drkit/replication/postgres"
	rdrepl "github.com/drkit/drkit/replication/redis"
)

// Check compares one replica with the primary at primaryDSN, chunk by chunk,
// skipping the heartbeat table (it changes every second by design).
func Check(ctx context.Context, cl config.Cluster, primaryDSN string, r config.Replica, chunkRows int, wait time.Duration, log *slog.Logger) (replication.Report, error) {
	c, closeAll, err := checker(ctx, cl, primaryDSN, r.DSN)
	if err != nil {
		return replication.Report{Replica: r.Name}, err
	}
	defer closeAll()
	c.ChunkRows, c.Wait, c.Skip, c.Log = chunkRows, wait, []string{HeartbeatTable(cl)}, log
	rep, err := c.Run(ctx)
	rep.Replica = r.Name
	return rep, err
}

// HeartbeatKey is a Redis cluster's heartbeat key.
func HeartbeatKey(cl config.Cluster) string {
	return cl.Monitor.Heartbeat.Table + ":" + cl.Name
}

// HeartbeatTable is the cluster's heartbeat as schema.table.
func HeartbeatTable(cl config.Cluster) string {
	t := cl.Monitor.Heartbeat.Table
	if cl.Engine == "postgres" && !strings.Contains(t, ".") {
		return "public." + t
	}
	return t
}

func checker(ctx context.Context, cl config.Cluster, primaryDSN, replicaDSN string) (*replication.Checker, func(), error) {
	switch cl.Engine {
	case "postgres":
		p, err := pgrepl.OpenSide(ctx, "primary", primaryDSN)
		if err != nil {
			return nil, nil, err
		}
		r, err := pgrepl.OpenSide(ctx, "replica", replicaDSN)
		if err != nil {
			p.Pool.Close()
			return nil, nil, err
		}
		return &replication.Checker{Primary: p, Replica: r}, func() { p.Pool.Close(); r.Pool.Close() }, nil
	case "mysql":
		p, err := myrepl.OpenSide(ctx, "primary", primaryDSN)
		if err != nil {
			return nil, nil, err
		}
		r, err := myrepl.OpenSide(ctx, "replica", replicaDSN)
		if err != nil {
			p.DB.Close()
			return nil, nil, err
		}
		return &replication.Checker{Primary: p, Replica: r}, func() { p.DB.Close(); r.DB.Close() }, nil
	case "redis":
		p, r, err := rdrepl.OpenSides(ctx, primaryDSN, replicaDSN, []string{HeartbeatKey(cl)})
		if err != nil {
			return nil, nil, err
		}
		return &replication.Checker{Primary: p, Replica: r}, func() { p.Close(); r.Close() }, nil
	}
	return nil, nil, fmt.Errorf("checksum comparisons are for postgres, mysql and redis clusters, not %s", cl.Engine)
}
