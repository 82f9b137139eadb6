package mysql

import (
	"context"
	"log/slog"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// Engine adapts this package to drd's backup scheduler.
type Engine struct {
	Cluster config.Cluster
	Regions []*storage.Region
	Log     *slog.Logger
}

var _ snapshots.Engine = (*Engine)(nil)

// Name implements snapshots.Engine.
func (e *Engine) Name() string { return "mysql" }

// Backup implements snapshots.Engine.
func (e *Engine) Backup(ctx context.Context) error {
	_, err := Backup(ctx, BackupOptions{Cluster: e.Cluster.Name, DSN: e.Cluster.DSN, Regions: e.Regions, Log: e.Log})
	return err
}

// Prune implements snapshots.Engine.
func (e *Engine) Prune(ctx context.Context, r *storage.Region, now time.Time) (snapshots.PruneSummary, error) {
	res, err := Prune(ctx, r.Pipeline, e.Cluster.Name, e.Cluster.Retention, now, false)
	return snapshots.PruneSummary{Expired: res.Expired, LogObjects: res.BinlogChunks}, err
}

// Newest implements snapshots.Engine.
func (e *Engine) Newest(ctx context.Context, r *storage.Region) (snapshots.Summary, bool, error) {
	list, err := ListBackups(ctx, r.Pipeline, e.Cluster.Name)
	if err != nil || len(list) == 0 {
		return snapshots.Summary{}, false, err
	}
	b := list[len(list)-1]
	return snapshots.Summary{Start: b.StartTime, Stop: b.StopTime, Size: b.PlainSize}, true, nil
}
