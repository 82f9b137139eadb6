package redis

import (
	"context"
	"fmt"
	"time"

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
	reached := map[string]bool{}
	var prev []rdwal.ChunkRef // the chain of the base before, when it has no gap
	for i, b := range bases {
		rep.Backups = append(rep.Backups, b.ID)
		chain, reach, err := cat.ChainOf(ctx, refs, b.ReplID, b.Offset)
		if err != nil {
			return rep, err
		}
		if reach.Gap != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: %s: a restore from it stops at offset %d", b.ID, reach.Gap, reach.End))
		}
		if i > 0 && prev != nil && !continues(bases[i-1], prev, b) {
			last := prev[len(prev)-1]
			rep.Problems = append(rep.Problems, fmt.Sprintf("the stream between backup %s's history %s (which ends at offset %d, %s) and backup %s, which begins history %s at offset %d after a full resync, is missing: a restore never crosses from one to the other",
				bases[i-1].ID, last.ReplID, last.End, time.UnixMilli(last.LastMS).UTC().Format(time.RFC3339), b.ID, b.ReplID, b.Offset))
		}
		prev = nil
		if reach.Gap == "" && len(chain) > 0 {
			prev = chain
		}
		for _, ref := range chain {
			reached[ref.Object.Key] = true
		}
		if all || i == len(bases)-1 {
			objs, what = append(objs, b.RDB), append(what, "backup "+b.ID)
		}
	}
	if len(bases) > 0 {
		rep.Problems = append(rep.Problems, unreached(refs, reached, bases[0].Time)...)
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

// continues reports whether the chain of base a (without a gap) holds the
// stream up to base b's position: b was taken within a's history, or one
// continuing it.
func continues(a rdwal.Base, chain []rdwal.ChunkRef, b rdwal.Base) bool {
	if a.ReplID == b.ReplID && a.Offset >= b.Offset {
		return true
	}
	for _, ref := range chain {
		if ref.ReplID == b.ReplID && ref.Start <= b.Offset && b.Offset <= ref.End {
			return true
		}
	}
	return false
}

// unreached names, per history, the stream newer than the oldest base that
// no base's chain reaches: a region that missed a base (or the stream
// before these chunks) holds them, and no restore from it can use them.
// Older chunks are what a prune keeps no more than it must.
func unreached(refs []rdwal.ChunkRef, reached map[string]bool, oldest time.Time) []string {
	type span struct {
		first, last rdwal.ChunkRef
		n           int
	}
	var order []string
	spans := map[string]*span{}
	for _, ref := range refs {
		if reached[ref.Object.Key] || ref.LastMS < oldest.UnixMilli() {
			continue
		}
		sp, ok := spans[ref.ReplID]
		if !ok {
			sp = &span{first: ref}
			spans[ref.ReplID] = sp
			order = append(order, ref.ReplID)
		}
		sp.last, sp.n = ref, sp.n+1
	}
	var out []string
	for _, id := range order {
		sp := spans[id]
		out = append(out, fmt.Sprintf("history %s: %d stream chunk(s) from offset %d to %d (%s ...) are reached from no base backup: the region lacks the base or the stream before them, and no restore from it can use them; drctl copy from a region that holds them",
			id, sp.n, sp.first.Start, sp.last.End, sp.first.Object.Key))
	}
	return out
}
