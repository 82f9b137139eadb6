package mongodb

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// Engine is drd's scheduler's view of a MongoDB cluster's backups.
type Engine struct {
	Cluster config.Cluster
	Regions []*storage.Region
	Log     *slog.Logger
}

var _ snapshots.Engine = (*Engine)(nil)

// Name implements snapshots.Engine.
func (e *Engine) Name() string { return "mongodb" }

// Backup implements snapshots.Engine.
func (e *Engine) Backup(ctx context.Context) (string, error) {
	b, err := Backup(ctx, e.Cluster.DSN, e.Regions, e.Cluster.Name, e.Log)
	return b.ID, err
}

// Prune implements snapshots.Engine.
func (e *Engine) Prune(ctx context.Context, r *storage.Region, now time.Time) (snapshots.PruneSummary, error) {
	res, err := Prune(ctx, r.Pipeline, e.Cluster.Name, e.Cluster.Retention, now, false)
	return snapshots.PruneSummary{Expired: res.Expired, LogObjects: res.Chunks}, err
}

// List implements snapshots.Engine.
func (e *Engine) List(ctx context.Context, r *storage.Region) ([]snapshots.Summary, error) {
	list, _, err := ListBases(ctx, r.Pipeline, e.Cluster.Name)
	if err != nil {
		return nil, err
	}
	out := make([]snapshots.Summary, len(list))
	for i, b := range list {
		out[i] = snapshots.Summary{ID: b.ID, Start: b.Time, Stop: b.StopTime, Size: b.Bytes}
	}
	return out, nil
}

// PruneResult is what Prune removed from one region.
type PruneResult struct {
	Region         string   `json:"region"`
	Kept           []string `json:"kept"`
	Expired        []string `json:"expired"`
	Chunks         int      `json:"oplog_chunks_deleted"`
	CopyInProgress string   `json:"copy_in_progress,omitempty"`
	DryRun         bool     `json:"dry_run,omitempty"`
}

// Prune expires base backups by keep and then the oplog chunks no kept base
// needs: those that end at or before the oldest kept base's start, and the
// late chunks of a drd that had lost its lease.
func Prune(ctx context.Context, p *storage.Pipeline, cluster string, keep config.Retention, now time.Time, dryRun bool) (PruneResult, error) {
	res := PruneResult{Region: p.Region, DryRun: dryRun}
	bases, damaged, err := ListBases(ctx, p, cluster)
	if err != nil || len(bases) == 0 {
		return res, err
	}
	if len(damaged) > 0 {
		return res, fmt.Errorf("region %s: %d damaged backup manifest(s) (%s): prune removes nothing until they are repaired or removed", p.Region, len(damaged), damaged[0])
	}
	kept, keptIDs, expired, err := snapshots.Expire(ctx, p.Store, cluster, bases,
		func(b Base) string { return b.ID }, func(b Base) time.Time { return b.StopTime }, keep, now, dryRun)
	res.Kept, res.Expired = keptIDs, expired
	if err != nil || keep.Full <= 0 && keep.Window <= 0 {
		return res, err
	}
	if res.CopyInProgress, err = snapshots.CopyInProgress(ctx, p.Store, cluster, now); err != nil || res.CopyInProgress != "" {
		return res, err
	}
	from := kept[0].Start
	for _, b := range kept {
		from = min(from, b.Start)
	}
	refs, late, held, err := (&mgwal.Catalog{Pipeline: p, Cluster: cluster}).ListAll(ctx)
	if err != nil {
		return res, err
	}
	var keys []string
	// A held chunk is out of the chain but holds more than the kept one at
	// its point: it goes by the same age test, and while it stays, so does
	// its rival (deleting that would make it the point's lone chunk, and the
	// chain's).
	type point struct{ chain, start mgwal.TS }
	stays := map[point]bool{}
	for _, ref := range held {
		if ref.End > from {
			stays[point{ref.Chain, ref.Start}] = true
			continue
		}
		keys = append(keys, ref.Object.Key)
	}
	for _, ref := range refs {
		if ref.End <= from && !stays[point{ref.Chain, ref.Start}] {
			keys = append(keys, ref.Object.Key)
		}
	}
	for _, ref := range late {
		// Superseded: the chain goes through another chunk from that point,
		// which holds all this one held. Never read, and left alone it
		// would count again once that one is pruned.
		keys = append(keys, ref.Object.Key)
	}
	res.Chunks = len(keys)
	if !dryRun && len(keys) > 0 {
		if err := p.Store.Delete(ctx, keys...); err != nil {
			return res, err
		}
	}
	return res, nil
}

func init() {
	// Chunks are <cluster>/oplog/<chain>/<start>-<end>-<last ms>-<seal ms>.<sha256>.<codec>:
	// a chunk's place is its chain and start.
	snapshots.RegisterLayout("mongodb", snapshots.LogLayout{Dir: "oplog", Slot: func(base string) string {
		place, _, _ := strings.Cut(base, "-")
		return place + storage.FenceTag(base)
	}})
}
