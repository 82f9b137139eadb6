package mysql

import (
	"context"

	"github.com/drkit/drkit/replication"
)

// SyncCheck compares a MariaDB replica with its primary. opts is a Checker
// without its sides (chunk size, wait, log, tables to skip).
func SyncCheck(ctx context.Context, primaryDSN, replicaDSN string, opts replication.Checker) (replication.Report, error) {
	p, err := OpenSide(ctx, "primary", primaryDSN)
	if err != nil {
		return replication.Report{}, err
	}
	defer p.DB.Close()
	r, err := OpenSide(ctx, "replica", replicaDSN)
	if err != nil {
		return replication.Report{}, err
	}
	defer r.DB.Close()
	opts.Primary, opts.Replica = p, r
	return opts.Run(ctx)
}
