package redis

import (
	"context"

	"github.com/drkit/drkit/replication"
)

// SyncCheck compares a Redis replica with its primary. opts is a Checker
// without its sides; its Skip lists keys (the heartbeat's), not tables.
func SyncCheck(ctx context.Context, primaryDSN, replicaDSN string, opts replication.Checker) (replication.Report, error) {
	p, r, err := OpenSides(ctx, primaryDSN, replicaDSN, opts.Skip)
	if err != nil {
		return replication.Report{}, err
	}
	defer p.Close()
	defer r.Close()
	opts.Primary, opts.Replica, opts.Skip = p, r, nil
	return opts.Run(ctx)
}
