// Package all picks the engine sub-package of replication for a cluster, so
// that drd and drctl share one way to build a replica check; checks.go runs
// drd's scheduled ones (SyncChecks).
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
	if cl.Engine == "postgres" {
		rep, err := checkPostgres(ctx, cl, primaryDSN, r.DSN, chunkRows, wait, log)
		rep.Replica = r.Name
		return rep, err
	}
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

// checkPostgres compares every database of a PostgreSQL primary with the
// replica (a standby holds them all), one after the other. Tables of the
// DSN's own database are named schema.table as the Checker names them;
// those of the others database.schema.table.
func checkPostgres(ctx context.Context, cl config.Cluster, primaryDSN, replicaDSN string, chunkRows int, wait time.Duration, log *slog.Logger) (replication.Report, error) {
	if wait <= 0 {
		wait = 30 * time.Second
	}
	dbs, current, err := postgresDatabases(ctx, primaryDSN, replicaDSN, wait)
	if err != nil {
		return replication.Report{}, err
	}
	total := replication.Report{Started: time.Now().UTC()}
	for _, db := range dbs {
		c, closeAll, err := postgresChecker(ctx, primaryDSN, replicaDSN, db)
		if err != nil {
			return total, err
		}
		c.ChunkRows, c.Wait, c.Log = chunkRows, wait, log
		prefix := db + "."
		if db == current {
			c.Skip, prefix = []string{HeartbeatTable(cl)}, ""
		}
		rep, err := c.Run(ctx)
		closeAll()
		if err != nil {
			return total, fmt.Errorf("database %s: %w", db, err)
		}
		total.Tables, total.Chunks, total.Rows = total.Tables+rep.Tables, total.Chunks+rep.Chunks, total.Rows+rep.Rows
		for _, d := range rep.Diffs {
			d.Table = prefix + d.Table
			total.Diffs = append(total.Diffs, d)
		}
		for _, d := range rep.Unstable {
			d.Table = prefix + d.Table
			total.Unstable = append(total.Unstable, d)
		}
	}
	total.Finished = time.Now().UTC()
	return total, nil
}

// postgresDatabases lists the primary's databases once the replica has
// replayed their creation.
func postgresDatabases(ctx context.Context, primaryDSN, replicaDSN string, wait time.Duration) ([]string, string, error) {
	c, closeAll, err := postgresChecker(ctx, primaryDSN, replicaDSN, "")
	if err != nil {
		return nil, "", err
	}
	defer closeAll()
	p := c.Primary.(*pgrepl.Side)
	dbs, current, err := p.Databases(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("primary: %w", err)
	}
	pos, err := p.Position(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("primary: %w", err)
	}
	if err := c.Replica.WaitFor(ctx, pos, wait); err != nil {
		return nil, "", fmt.Errorf("replica: %w", err)
	}
	return dbs, current, nil
}

func postgresChecker(ctx context.Context, primaryDSN, replicaDSN, db string) (*replication.Checker, func(), error) {
	p, err := pgrepl.OpenSideIn(ctx, "primary", primaryDSN, db)
	if err != nil {
		return nil, nil, err
	}
	r, err := pgrepl.OpenSideIn(ctx, "replica", replicaDSN, db)
	if err != nil {
		p.Pool.Close()
		return nil, nil, err
	}
	return &replication.Checker{Primary: p, Replica: r}, func() { p.Pool.Close(); r.Pool.Close() }, nil
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
