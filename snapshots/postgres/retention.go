package postgres

import (
	"context"
	"fmt"
	"time"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// PruneResult says what retention removed (or would remove, in a dry run).
type PruneResult struct {
	Region string `json:"region"`
	// CopyInProgress names the lease of a copy into the region: no WAL was
	// deleted, as the backup it brings may need it.
	CopyInProgress string   `json:"copy_in_progress,omitempty"`
	Kept           []string `json:"kept"`
	Expired        []string `json:"expired"`
	WALObjects     int      `json:"wal_objects_deleted"`
	OldestStart    string   `json:"oldest_kept_start_segment,omitempty"`
	DryRun         bool     `json:"dry_run"`
}

// Prune applies keep to one region: a backup stays if it is among the newest
// keep.Full or ended within keep.Window (either suffices); the newest always
// stays; with neither set nothing is removed. Expired backups lose their
// manifest first (so a half-deleted backup never looks complete), then their
// objects; then the WAL older than the oldest kept backup's start segment goes.
func Prune(ctx context.Context, p *storage.Pipeline, cluster string, keep config.Retention, now time.Time, dryRun bool) (PruneResult, error) {
	res := PruneResult{Region: p.Region, DryRun: dryRun}
	backups, damaged, err := ListBackups(ctx, p, cluster)
	if err != nil || len(backups) == 0 {
		return res, err
	}
	if len(damaged) > 0 {
		// A damaged manifest's start position is unknown: it may be a kept
		// backup that needs every WAL segment. Nothing is removed until it is
		// repaired or deleted by hand.
		return res, fmt.Errorf("region %s: %d damaged backup manifest(s) (%s): prune removes nothing until they are repaired or removed", p.Region, len(damaged), damaged[0])
	}
	kept, keptIDs, expired, err := snapshots.Expire(ctx, p.Store, cluster, backups,
		func(m Manifest) string { return m.ID }, func(m Manifest) time.Time { return m.StopTime }, keep, now, dryRun)
	res.Kept, res.Expired = keptIDs, expired
	if err != nil {
		return res, err
	}
	if keep.Full <= 0 && keep.Window <= 0 {
		return res, nil // no policy: nothing is removed, logs included
	}
	oldest := kept[0]
	start, err := pgwal.ParseLSN(oldest.StartLSN)
	if err != nil {
		return res, err
	}
	cat := &pgwal.Catalog{Pipeline: p, Cluster: cluster}
	segSize := oldest.WALSegmentSize
	first := pgwal.SegmentOf(oldest.Timeline, start, segSize)
	res.OldestStart = first.Name(segSize)
	objs, err := cat.List(ctx, segSize)
	if err != nil {
		return res, err
	}
	if res.CopyInProgress, err = snapshots.CopyInProgress(ctx, p.Store, cluster, now); err != nil || res.CopyInProgress != "" {
		return res, err // listed before the lease check: see snapshots/copylease.go
	}
	var keys []string
	for _, w := range objs {
		if !w.History && w.Segment.No < first.No {
			keys = append(keys, w.Object.Key)
		}
	}
	res.WALObjects = len(keys)
	if !dryRun {
		if err := p.Store.Delete(ctx, keys...); err != nil {
			return res, fmt.Errorf("region %s: delete WAL older than %s: %w", p.Region, res.OldestStart, err)
		}
	}
	return res, nil
}
