package mongodb

import (
	"context"
	"fmt"
	"time"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
)

// VerifyReport is what Verify finds in one region.
type VerifyReport struct {
	Cluster string `json:"cluster"`
	Region  string `json:"region"`
	// Chains are the oplog's runs without a gap, as "start..end".
	Chains  []string `json:"chains"`
	Chunks  int      `json:"chunks"`
	Backups []string `json:"backups"`
	// Checked is "newest" (continuity from chunk names, the newest base's
	// objects read) or "all" (every chunk and every base read).
	Checked     string   `json:"checked"`
	ObjectsRead int      `json:"objects_read"`
	BytesRead   int64    `json:"bytes_read"`
	Problems    []string `json:"problems"`
	OK          bool     `json:"ok"`
}

// Verify checks a region: the continuity of the oplog within each chain
// and between chains (a gap where the oplog rolled over is named), that
// every base's chain reaches the base's end, and checksums: the newest
// base's objects, or with all every base's and every chunk, read in
// parallel.
func Verify(ctx context.Context, p *storage.Pipeline, cluster string, all bool, progress func(done, total int64)) (VerifyReport, error) {
	rep := VerifyReport{Cluster: cluster, Region: p.Region, Checked: "newest"}
	if all {
		rep.Checked = "all"
	}
	refs, err := (&mgwal.Catalog{Pipeline: p, Cluster: cluster}).List(ctx)
	if err != nil {
		return rep, err
	}
	rep.Chunks = len(refs)
	chains := mgwal.Chains(refs)
	for i, ch := range chains {
		rep.Chains = append(rep.Chains, fmt.Sprintf("%s..%s", ch.Start, ch.End))
		rep.Problems = append(rep.Problems, ch.Breaks...)
		if i > 0 && ch.Start > chains[i-1].End {
			rep.Problems = append(rep.Problems, fmt.Sprintf("the oplog between ts %s (%s) and ts %s (%s) is missing: the server's oplog rolled over before drd read it; restores do not cross it",
				chains[i-1].End, chains[i-1].End.Time().Format(time.RFC3339), ch.Start, ch.Start.Time().Format(time.RFC3339)))
		}
	}
	bases, damaged, err := ListBases(ctx, p, cluster)
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
		if why := reaches(chains, b); why != "" {
			rep.Problems = append(rep.Problems, fmt.Sprintf("backup %s: the oplog from its start (ts %s) to its end (ts %s) is not whole: %s; it cannot be restored consistently", b.ID, b.Start, b.End, why))
		}
		if all || i == len(bases)-1 {
			for _, c := range b.Collections {
				objs, what = append(objs, c.Object), append(what, "backup "+b.ID+" collection "+c.NS())
			}
		}
	}
	if all {
		for _, ref := range refs {
			objs, what = append(objs, ref.Object), append(what, "oplog chunk")
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

// reaches says why the region's oplog does not run without a break from
// b's start to its end ("" when it does).
func reaches(chains []mgwal.Chain, b Base) string {
	var ch *mgwal.Chain
	for i := range chains {
		if chains[i].Start <= b.Start {
			ch = &chains[i]
		}
	}
	if ch == nil {
		return "the region holds no oplog from its start"
	}
	end := ch.Start
	for _, c := range ch.Chunks {
		if c.Start != end && c.End > b.Start && end < b.End {
			return fmt.Sprintf("oplog (%s, %s] is missing before %s", end, c.Start, c.Object.Key)
		}
		end = max(end, c.End)
	}
	if end < b.End {
		return fmt.Sprintf("the region's oplog ends at ts %s", end)
	}
	return ""
}
