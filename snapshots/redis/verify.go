package redis

import (
	"context"
	"fmt"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// VerifyReport is what Verify finds in one region.
type VerifyReport struct {
	Cluster string `json:"cluster"`
	Region  string `json:"region"`
	// Histories are the stream's histories (replids) and where each ends.
	Histories map[string]int64 `json:"histories"`
	Chunks    int              `json:"chunks"`
	Backups   []string         `json:"backups"`
	// Checked is "newest" (continuity from chunk names, the newest base's
	// RDB read) or "all" (every chunk and every base read).
	Checked     string   `json:"checked"`
	ObjectsRead int      `json:"objects_read"`
	BytesRead   int64    `json:"bytes_read"`
	Problems    []string `json:"problems"`
	OK          bool     `json:"ok"`
}

// Verify checks a region: every base's stream chain (a gap is named), the
// continuity of each history, and checksums: the newest base's RDB, or
// with all every RDB and every chunk, read in parallel.
func Verify(ctx context.Context, p *storage.Pipeline, cluster string, all bool, progress func(done, total int64)) (VerifyReport, error) {
	rep := VerifyReport{Cluster: cluster, Region: p.Region, Histories: map[string]int64{}, Checked: "newest"}
	if all {
		rep.Checked = "all"
	}
	cat := &rdwal.Catalog{Pipeline: p, Cluster: cluster}
	refs, err := cat.List(ctx)
	if err != nil {
		return rep, err
	}
	rep.Chunks = len(refs)
	for _, ref := range refs {
		// Chunks may overlap (a region that got a chunk another did not is
		// resumed from the lower end); a gap is a start past all before it.
		if end, ok := rep.Histories[ref.ReplID]; ok && ref.Start > end {
			rep.Problems = append(rep.Problems, fmt.Sprintf("history %s: the stream between offsets %d and %d is missing (before %s)", ref.ReplID, end, ref.Start, ref.Object.Key))
		}
		rep.Histories[ref.ReplID] = max(rep.Histories[ref.ReplID], ref.End)
	}
	bases, damaged, err := rdwal.ListBases(ctx, p, cluster)
	if err != nil {
		return rep, err
	}
	for _, d := range damaged {
		rep.Problems = append(rep.Problems, "damaged backup manifest "+d.String())
	}
	if len(bases) == 0 {
		rep.Problems = append(rep.Problems, "no complete base backup: nothing in this region can be restored")
	}
	var objs []storage.Object
	var what []string
	for i, b := range bases {
		rep.Backups = append(rep.Backups, b.ID)
		if _, reach, err := cat.Chain(ctx, b.ReplID, b.Offset); err != nil {
			return rep, err
		} else if reach.Gap != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %s: a restore from it stops at offset %d", b.ID, reach.Gap, reach.End))
		}
		if all || i == len(bases)-1 {
			objs, what = append(objs, b.RDB), append(what, "backup "+b.ID)
		}
	}
	if all {
		for _, ref := range refs {
			objs, what = append(objs, ref.Object), append(what, "stream chunk")
		}
	}
	for i, err := range snapshots.ReadObjects(ctx, p, objs, 0, progress) {
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: %s: %v", what[i], objs[i].Key, err))
		}
		rep.ObjectsRead++
		rep.BytesRead += objs[i].Size
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}
