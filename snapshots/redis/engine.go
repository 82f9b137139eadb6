package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// Engine is drd's scheduler's view of a Redis cluster's backups.
type Engine struct {
	Cluster config.Cluster
	Regions []*storage.Region
	Log     *slog.Logger
}

var _ snapshots.Engine = (*Engine)(nil)

// Name implements snapshots.Engine.
func (e *Engine) Name() string { return "redis" }

// Backup implements snapshots.Engine: an RDB through the replica handshake.
func (e *Engine) Backup(ctx context.Context) (string, error) {
	b, err := rdwal.Backup(ctx, e.Cluster.DSN, e.Regions, e.Cluster.Name)
	return b.ID, err
}

// Prune implements snapshots.Engine.
func (e *Engine) Prune(ctx context.Context, r *storage.Region, now time.Time) (snapshots.PruneSummary, error) {
	res, err := Prune(ctx, r.Pipeline, e.Cluster.Name, e.Cluster.Retention, now, false)
	return snapshots.PruneSummary{Expired: res.Expired, LogObjects: res.Chunks}, err
}

// List implements snapshots.Engine.
func (e *Engine) List(ctx context.Context, r *storage.Region) ([]snapshots.Summary, error) {
	list, _, err := rdwal.ListBases(ctx, r.Pipeline, e.Cluster.Name)
	if err != nil {
		return nil, err
	}
	out := make([]snapshots.Summary, len(list))
	for i, b := range list {
		out[i] = snapshots.Summary{ID: b.ID, Start: b.Time, Stop: b.StopTime, Size: b.RDBSize}
	}
	return out, nil
}

// PruneResult is what Prune removed from one region.
type PruneResult struct {
	Region         string   `json:"region"`
	Kept           []string `json:"kept"`
	Expired        []string `json:"expired"`
	Chunks         int      `json:"stream_chunks_deleted"`
	CopyInProgress string   `json:"copy_in_progress,omitempty"`
	DryRun         bool     `json:"dry_run,omitempty"`
}

// Prune expires base backups by keep and then the stream chunks no kept
// base needs: those of a kept base's history that end at or before its
// offset, and those of histories no kept base belongs to that ended before
// the oldest kept base began (a history newer than every base, after a
// failover, stays), and the late chunks of a drd that had lost its lease.
func Prune(ctx context.Context, p *storage.Pipeline, cluster string, keep config.Retention, now time.Time, dryRun bool) (PruneResult, error) {
	res := PruneResult{Region: p.Region, DryRun: dryRun}
	bases, damaged, err := rdwal.ListBases(ctx, p, cluster)
	if err != nil || len(bases) == 0 {
		return res, err
	}
	if len(damaged) > 0 {
		return res, fmt.Errorf("region %s: %d damaged backup manifest(s) (%s): prune removes nothing until they are repaired or removed", p.Region, len(damaged), damaged[0])
	}
	kept, keptIDs, expired, err := snapshots.Expire(ctx, p.Store, cluster, bases,
		func(b rdwal.Base) string { return b.ID }, func(b rdwal.Base) time.Time { return b.StopTime }, keep, now, dryRun)
	res.Kept, res.Expired = keptIDs, expired
	if err != nil || keep.Full <= 0 && keep.Window <= 0 {
		return res, err
	}
	refs, late, held, err := (&rdwal.Catalog{Pipeline: p, Cluster: cluster}).ListAll(ctx)
	if err != nil {
		return res, err
	}
	if res.CopyInProgress, err = snapshots.CopyInProgress(ctx, p.Store, cluster, now); err != nil || res.CopyInProgress != "" {
		return res, err
	}
	from := map[string]int64{} // per history, the smallest kept offset
	oldest := kept[0].Time
	for _, b := range kept {
		if o, ok := from[b.ReplID]; !ok || b.Offset < o {
			from[b.ReplID] = b.Offset
		}
		if b.Time.Before(oldest) {
			oldest = b.Time
		}
	}
	old := func(ref rdwal.ChunkRef) bool {
		o, ok := from[ref.ReplID]
		return ok && ref.End <= o || !ok && ref.LastMS < oldest.UnixMilli()
	}
	var keys []string
	// A held chunk is out of the chain but holds more than the kept one
	// from its offset: it goes by the same age test, and while it stays, so
	// does its rival (deleting that would make it the offset's lone chunk,
	// and the chain's).
	type point struct {
		replID string
		start  int64
	}
	stays := map[point]bool{}
	for _, ref := range held {
		if !old(ref) {
			stays[point{ref.ReplID, ref.Start}] = true
			continue
		}
		keys = append(keys, ref.Object.Key)
	}
	for _, ref := range refs {
		if old(ref) && !stays[point{ref.ReplID, ref.Start}] {
			keys = append(keys, ref.Object.Key)
		}
	}
	for _, ref := range late {
		// Superseded: the chain goes through another chunk from that
		// offset, which holds all this one held. Never read, and left alone
		// it would count again once that one is pruned.
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
	// Chunks are <cluster>/stream/<replid>/<start>-<end>-<ms>.<sha256>.<codec>:
	// a chunk's place is its history and start offset.
	snapshots.RegisterLayout("redis", snapshots.LogLayout{Dir: "stream", Slot: func(base string) string {
		place, _, _ := strings.Cut(base, "-")
		return place + storage.FenceTag(base)
	}})
}
