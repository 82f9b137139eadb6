package postgres

import (
	"context"
	"fmt"
	"io"
	"slices"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/storage"
)

// VerifyReport is what `drctl verify` finds in one region.
type VerifyReport struct {
	Cluster   string        `json:"cluster"`
	Region    string        `json:"region"`
	NewestWAL string        `json:"newest_wal"`
	Timeline  uint32        `json:"timeline"`
	Backups   []BackupCheck `json:"backups"`
	Problems  []string      `json:"problems"`
	OK        bool          `json:"ok"`
}

// BackupCheck is one backup's WAL continuity and, if checked, checksums.
type BackupCheck struct {
	ID            string                `json:"id"`
	StartSegment  string                `json:"start_segment"`
	SegmentsFound int                   `json:"segments_found"`
	Segments      []pgwal.SegmentStatus `json:"segments,omitempty"` // those not found whole
	Checksums     string                `json:"checksums"`          // ok, skipped, or the failure
}

// Verify checks that every backup in the region can be replayed to the region's
// newest WAL without a gap, along the newest timeline's lineage, and (for the
// newest backup, or all with allChecksums) that every object matches its SHA-256.
func Verify(ctx context.Context, p *storage.Pipeline, cluster string, allChecksums bool) (VerifyReport, error) {
	rep := VerifyReport{Cluster: cluster, Region: p.Region}
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
	backups, err := ListBackups(ctx, p, cluster)
	if err != nil {
		return rep, err
	}
	if len(backups) == 0 {
		rep.Problems = append(rep.Problems, "no complete base backup: nothing in this region can be restored")
	}
	for i, b := range backups {
		chk := BackupCheck{ID: b.ID, Checksums: "skipped"}
		start, err := pgwal.ParseLSN(b.StartLSN)
		if err != nil {
			return rep, fmt.Errorf("backup %s: %w", b.ID, err)
		}
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
		if allChecksums || i == len(backups)-1 {
			chk.Checksums = "ok"
			if err := checkObjects(ctx, p, b); err != nil {
				chk.Checksums = err.Error()
				rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %v", b.ID, err))
			}
		}
		rep.Backups = append(rep.Backups, chk)
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

// checkObjects reads every object of a backup through the pipeline, which
// verifies sizes and SHA-256 at the end of each.
func checkObjects(ctx context.Context, p *storage.Pipeline, m Manifest) error {
	for _, obj := range append(slices.Clone(m.Chunks), m.BackupManifest) {
		rc, err := p.Open(ctx, obj)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
