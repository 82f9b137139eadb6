package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/drkit/drkit/replication"
)

// SyncCheck compares every database of a PostgreSQL primary with the
// replica (a standby holds them all), one after the other. opts is a
// Checker without its sides: chunk size, wait, log, and in Skip the
// heartbeat table, which is skipped in the DSN's own database. Tables of
// that database are named schema.table as the Checker names them; those of
// the others database.schema.table.
func SyncCheck(ctx context.Context, primaryDSN, replicaDSN string, opts replication.Checker) (replication.Report, error) {
	if opts.Wait <= 0 {
		opts.Wait = 30 * time.Second
	}
	dbs, current, err := databasesReplayed(ctx, primaryDSN, replicaDSN, opts.Wait)
	if err != nil {
		return replication.Report{}, err
	}
	total := replication.Report{Started: time.Now().UTC()}
	for _, db := range dbs {
		c := opts
		c.Primary, c.Replica = nil, nil
		closeAll, err := openSides(ctx, &c, primaryDSN, replicaDSN, db)
		if err != nil {
			return total, err
		}
		prefix := db + "."
		if db == current {
			prefix = ""
		} else {
			c.Skip = nil
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

// databasesReplayed lists the primary's databases once the replica has
// replayed their creation.
func databasesReplayed(ctx context.Context, primaryDSN, replicaDSN string, wait time.Duration) ([]string, string, error) {
	var c replication.Checker
	closeAll, err := openSides(ctx, &c, primaryDSN, replicaDSN, "")
	if err != nil {
		return nil, "", err
	}
	defer closeAll()
	p := c.Primary.(*Side)
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

// openSides connects c to database db ("" for the DSN's own) on both servers.
func openSides(ctx context.Context, c *replication.Checker, primaryDSN, replicaDSN, db string) (func(), error) {
	p, err := OpenSideIn(ctx, "primary", primaryDSN, db)
	if err != nil {
		return nil, err
	}
	r, err := OpenSideIn(ctx, "replica", replicaDSN, db)
	if err != nil {
		p.Pool.Close()
		return nil, err
	}
	c.Primary, c.Replica = p, r
	return func() { p.Pool.Close(); r.Pool.Close() }, nil
}
