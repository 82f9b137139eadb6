package mysql

import (
	"context"
	"log/slog"
	"strings"
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
func (e *Engine) Backup(ctx context.Context) (string, error) {
	m, err := Backup(ctx, BackupOptions{Cluster: e.Cluster.Name, DSN: e.Cluster.DSN, Regions: e.Regions, Log: e.Log})
	return m.ID, err
}

// Prune implements snapshots.Engine.
func (e *Engine) Prune(ctx context.Context, r *storage.Region, now time.Time) (snapshots.PruneSummary, error) {
	res, err := Prune(ctx, r.Pipeline, e.Cluster.Name, e.Cluster.Retention, now, false)
	return snapshots.PruneSummary{Expired: res.Expired, LogObjects: res.BinlogChunks}, err
}

// List implements snapshots.Engine.
func (e *Engine) List(ctx context.Context, r *storage.Region) ([]snapshots.Summary, error) {
	list, _, err := ListBackups(ctx, r.Pipeline, e.Cluster.Name) // damaged manifests: reported by verify, status and restore
	if err != nil {
		return nil, err
	}
	out := make([]snapshots.Summary, len(list))
	for i, b := range list {
		out[i] = snapshots.Summary{ID: b.ID, Start: b.StartTime, Stop: b.StopTime, Size: b.PlainSize}
	}
	return out, nil
}

// Binlog chunks are <seq>-<last commit>.<sha256>.<codec> under <cluster>/binlog/
// (binlog/mysql's catalog); the sequence number is a chunk's place in the log.
func init() {
	snapshots.RegisterLayout("mysql", snapshots.LogLayout{Dir: "binlog", Slot: func(base string) string {
		seq, _, _ := strings.Cut(base, "-")
		return seq + storage.FenceTag(base)
	}})
}
