package mysql

import (
	"context"
	"fmt"
	"time"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// PruneResult says what retention removed (or would remove, in a dry run).
type PruneResult struct {
	Region       string   `json:"region"`
	Kept         []string `json:"kept"`
	Expired      []string `json:"expired"`
	BinlogChunks int      `json:"binlog_chunks_deleted"`
	// CopyInProgress names the lease of a copy into the region: no binlog
	// was deleted, as the snapshot it brings may need it.
	CopyInProgress string `json:"copy_in_progress,omitempty"`
	DryRun         bool   `json:"dry_run"`
}

// Prune applies keep to one region as for PostgreSQL: a backup stays if it is
// among the newest keep.Full or ended within keep.Window; the newest always
// stays; with neither set nothing is removed. Then binlog chunks whose every
// transaction the oldest kept snapshot already holds are deleted, oldest first,
// stopping at the first chunk it does not hold.
func Prune(ctx context.Context, p *storage.Pipeline, cluster string, keep config.Retention, now time.Time, dryRun bool) (PruneResult, error) {
	res := PruneResult{Region: p.Region, DryRun: dryRun}
	backups, damaged, err := ListBackups(ctx, p, cluster)
	if err != nil || len(backups) == 0 {
		return res, err
	}
	if len(damaged) > 0 {
		// A damaged manifest's position is unknown: it may be a kept backup
		// that needs every chunk. Nothing is removed until it is repaired or
		// deleted by hand.
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
	oldest, err := binlog.ParsePos(kept[0].GTIDPos)
	if err != nil {
		return res, err
	}
	cat := &binlog.Catalog{Pipeline: p, Cluster: cluster}
	refs, late, held, err := cat.ListAll(ctx)
	if err != nil {
		return res, err
	}
	if res.CopyInProgress, err = snapshots.CopyInProgress(ctx, p.Store, cluster, now); err != nil || res.CopyInProgress != "" {
		return res, err // listed before the lease check: see snapshots/copylease.go
	}
	// old reports whether every retained backup starts at or after ref's end.
	old := func(ref binlog.ChunkRef) (bool, error) {
		if ref.LastTime > kept[0].SnapshotTime.Unix() {
			return false, nil
		}
		h, err := cat.Header(ctx, ref)
		if err != nil {
			return false, err
		}
		end, err := binlog.ParsePos(h.End)
		return err == nil && oldest.Covers(end), nil
	}
	var keys []string
	// A held chunk is out of the chain but holds more than the kept chunk of
	// its number: it goes by the same age test, and while it stays, so does
	// its rival (deleting that would make it the number's lone chunk, and
	// the chain's).
	stays := map[uint64]bool{}
	for _, ref := range held {
		ok, err := old(ref)
		if err != nil {
			return res, err
		}
		if !ok {
			stays[ref.Seq] = true
			continue
		}
		keys = append(keys, ref.Object.Key)
	}
	for _, ref := range refs {
		ok, err := old(ref)
		if err != nil {
			return res, err
		}
		if !ok || stays[ref.Seq] {
			break
		}
		keys = append(keys, ref.Object.Key)
	}
	for _, ref := range late {
		// Superseded: the chain goes through another chunk of that number,
		// which holds all this one held. Never read, and left alone it
		// would count again once that one is pruned.
		keys = append(keys, ref.Object.Key)
	}
	res.BinlogChunks = len(keys)
	if !dryRun {
		if err := p.Store.Delete(ctx, keys...); err != nil {
			return res, fmt.Errorf("region %s: delete binlog before %s: %w", p.Region, kept[0].GTIDPos, err)
		}
	}
	return res, nil
}
