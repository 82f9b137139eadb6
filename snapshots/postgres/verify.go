package postgres

import (
	"context"
	"fmt"
	"slices"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// VerifyReport is what `drctl verify` finds in one region.
type VerifyReport struct {
	Cluster   string        `json:"cluster"`
	Region    string        `json:"region"`
	NewestWAL string        `json:"newest_wal"`
	Timeline  uint32        `json:"timeline"`
	Backups   []BackupCheck `json:"backups"`
	// Checked says what was read: "listing" (continuity from object names,
	// the newest backup's objects read) or "all" (every backup's objects and
	// every WAL object they need read and checked against its SHA-256).
	Checked string `json:"checked"`
	// WALObjectsRead and WALBytesRead count the WAL objects read (all only).
	WALObjectsRead int      `json:"wal_objects_read"`
	WALBytesRead   int64    `json:"wal_bytes_read"`
	Problems       []string `json:"problems"`
	OK             bool     `json:"ok"`
}

// BackupCheck is one backup's WAL continuity and, if checked, checksums.
type BackupCheck struct {
	ID            string                `json:"id"`
	StartSegment  string                `json:"start_segment"`
	SegmentsFound int                   `json:"segments_found"`
	Segments      []pgwal.SegmentStatus `json:"segments,omitempty"` // those not found whole
	Checksums     string                `json:"checksums"`          // ok, skipped, or the failure
}

// VerifyOptions say how much Verify reads.
type VerifyOptions struct {
	// All reads every backup's objects and every WAL object the backups
	// need, not only the newest backup's objects.
	All bool
	// Parallel is how many objects are read at once (default 4); each is
	// streamed, so memory stays bounded whatever the object sizes.
	Parallel int
	// Progress, if set, is told the bytes read so far and the total.
	Progress func(done, total int64)
}

// Verify checks that every backup in the region can be replayed to the region's
// newest WAL without a gap, along the newest timeline's lineage, and that the
// objects it reads match their SHA-256: the newest backup's, or with All every
// backup's and every WAL object from the oldest backup's start on.
func Verify(ctx context.Context, p *storage.Pipeline, cluster string, o VerifyOptions) (VerifyReport, error) {
	rep := VerifyReport{Cluster: cluster, Region: p.Region, Checked: "listing"}
	if o.All {
		rep.Checked = "all"
	}
	cat := &pgwal.Catalog{Pipeline: p, Cluster: cluster}
	info, err := cat.ReadInfo(ctx)
	if err != nil {
		return rep, fmt.Errorf("region %s has no cluster %s: %w", p.Region, cluster, err)
	}
	objs, err := cat.List(ctx, info.WALSegmentSize)
	if err != nil {
		return rep, err
	}
	lineage, err := cat.Lineage(ctx, objs)
	if err != nil {
		return rep, err
	}
	if len(lineage) > 0 {
		rep.Timeline = lineage[len(lineage)-1].TLI
	}
	backups, damaged, err := ListBackups(ctx, p, cluster)
	if err != nil {
		return rep, err
	}
	for _, d := range damaged {
		rep.Problems = append(rep.Problems, "damaged backup manifest "+d.String())
	}
	if len(backups) == 0 {
		rep.Problems = append(rep.Problems, "no complete base backup: nothing in this region can be restored")
	}
	var toRead []checkItem
	for i, b := range backups {
		chk := BackupCheck{ID: b.ID, Checksums: "skipped"}
		start, _ := pgwal.ParseLSN(b.StartLSN) // checked with the manifest
		chk.StartSegment = pgwal.SegmentOf(b.Timeline, start, info.WALSegmentSize).Name(info.WALSegmentSize)
		if !slices.ContainsFunc(lineage, func(t pgwal.TimelineBegin) bool { return t.TLI == b.Timeline }) && len(lineage) > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s is on timeline %d, which is not in the history of timeline %d", b.ID, b.Timeline, rep.Timeline))
		}
		found, probs, last := pgwal.Continuity(objs, lineage, start, info.WALSegmentSize)
		chk.SegmentsFound, chk.Segments, rep.NewestWAL = found, probs, last
		for _, s := range probs {
			if s.State == pgwal.Missing {
				rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: WAL segment %s is missing: replay from it stops there", b.ID, s.Name))
			}
		}
		if o.All || i == len(backups)-1 {
			chk.Checksums = "ok"
			for _, obj := range append(slices.Clone(b.Chunks), b.BackupManifest) {
				toRead = append(toRead, checkItem{obj: obj, backup: len(rep.Backups)})
			}
		}
		rep.Backups = append(rep.Backups, chk)
	}
	if o.All && len(backups) > 0 {
		toRead = append(toRead, walNeeded(objs, backups[0], info.WALSegmentSize)...)
	}
	objects := make([]storage.Object, len(toRead))
	for i, it := range toRead {
		objects[i] = it.obj
	}
	for i, err := range snapshots.ReadObjects(ctx, p, objects, o.Parallel, o.Progress) {
		it := toRead[i]
		switch {
		case err == nil:
		case it.backup >= 0:
			b := &rep.Backups[it.backup]
			if b.Checksums == "ok" {
				b.Checksums = err.Error()
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %v", b.ID, err))
		default:
			rep.Problems = append(rep.Problems, fmt.Sprintf("WAL object %s: %v", it.obj.Key, err))
		}
	}
	for _, it := range toRead {
		if it.backup < 0 {
			rep.WALObjectsRead++
			rep.WALBytesRead += it.obj.Size
		}
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// walNeeded lists every WAL object from the oldest backup's start segment on
// (timeline history files included): what a replay of any retained backup
// may read.
func walNeeded(objs []pgwal.WALObject, oldest Manifest, segSize uint64) []checkItem {
	start, _ := pgwal.ParseLSN(oldest.StartLSN)
	first := uint64(start) / segSize
	var out []checkItem
	for _, w := range objs {
		if w.History || w.Segment.No >= first {
			out = append(out, checkItem{obj: w.Object, backup: -1})
		}
	}
	return out
}

// checkItem is one object to read: a backup's (index into the report's
// backups) or a WAL object (backup -1).
type checkItem struct {
	obj    storage.Object
	backup int
}
