package mongodb_test

import (
	"context"
	"slices"
	"testing"
	"time"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// TestPruneDeletesLateChunks: a chunk a drd uploaded after it lost its lease,
// from a point of the chain the new holder wrote from too, is never read
// (List keeps the new holder's). Before prune deleted it, it stayed for
// good, and would count again once the new holder's chunk was pruned.
func TestPruneDeletesLateChunks(t *testing.T) {
	st, p, c, put := oplogRegion(t)
	ctx := context.Background()
	put(1, 10, 20)
	put(2, 20, 30) // the new holder
	put(1, 20, 35) // the old one's late upload
	put(2, 30, 40)
	res := pruneAfterBase(t, st, p, 30)
	kept, late, _, err := c.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, r := range kept {
		got = append(got, uint64(r.Start), uint64(r.End), r.Fence)
	}
	// 10..20 and 20..30 end at or before the base's start: pruned; the
	// late 20..35 goes with them.
	if want := []uint64{30, 40, 2}; !slices.Equal(got, want) || len(late) != 0 || res.Chunks != 3 {
		t.Fatalf("after prune: kept (start, end, fence) %v, %d late, %d pruned; want %v, 0 late, 3 pruned", got, len(late), res.Chunks, want)
	}
}

// TestPruneDeletesOldHeldChunks: a chunk out of the chain that holds more
// than the kept one at its point (held: the next holder may build on it) is
// deleted once it is as old as the kept chunks prune deletes; left behind,
// it came back into the chain as a lone chunk once its rival was pruned.
func TestPruneDeletesOldHeldChunks(t *testing.T) {
	st, p, c, put := oplogRegion(t)
	ctx := context.Background()
	put(1, 10, 20)
	put(1, 20, 25) // holder 1's late upload
	put(2, 20, 22) // holder 2's, also late: nothing after it settles which counts
	if _, _, held, err := c.ListAll(ctx); err != nil || len(held) != 1 {
		t.Fatalf("held %v (%v), want holder 1's chunk from 20", held, err)
	}
	res := pruneAfterBase(t, st, p, 30)
	kept, late, held, err := c.ListAll(ctx)
	if err != nil || len(kept)+len(late)+len(held) != 0 || res.Chunks != 3 {
		t.Fatalf("after prune: kept %v, late %v, held %v, %d pruned (%v); want nothing left, 3 pruned", kept, late, held, res.Chunks, err)
	}
}

// TestPruneKeepsTheRivalOfAHeldChunk: while a held chunk is too new to
// delete, the kept chunk at its point stays too; deleting it alone made the
// held one the point's lone chunk, and the chain broke ((10, 25] overlapping
// (22, 24]).
func TestPruneKeepsTheRivalOfAHeldChunk(t *testing.T) {
	st, p, c, put := oplogRegion(t)
	ctx := context.Background()
	put(2, 10, 22)
	put(1, 10, 25) // an old holder's late upload, further than holder 2's
	put(2, 22, 24)
	put(2, 24, 40)
	pruneAfterBase(t, st, p, 23)
	refs, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if chains := mgwal.Chains(refs); len(chains) != 1 || len(chains[0].Breaks) != 0 || chains[0].Start != 10 || chains[0].End != 40 {
		t.Fatalf("after prune: chains %+v, want one from 10 to 40 without a break", chains)
	}
}

// oplogRegion is a file:// region for cluster docs and a put that stores a
// chunk of chain 10 from start to end under lease generation gen.
func oplogRegion(t *testing.T) (storage.Store, *storage.Pipeline, *mgwal.Catalog, func(gen uint64, start, end mgwal.TS)) {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &storage.Pipeline{Store: st, Region: "us", Level: 1}
	c := &mgwal.Catalog{Pipeline: p, Cluster: "docs"}
	put := func(gen uint64, start, end mgwal.TS) {
		t.Helper()
		h := mgwal.ChunkHeader{Chain: 10, Start: start, End: end, LastMS: 1000, SealMS: 1000}
		if _, err := c.Put(storage.WithFence(context.Background(), gen), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	return st, p, c, put
}

// pruneAfterBase stores one base backup from oplog point start, taken a
// minute ago, and prunes the region to it (retention.full 1).
func pruneAfterBase(t *testing.T, st storage.Store, p *storage.Pipeline, start mgwal.TS) mgsnap.PruneResult {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	base := mgsnap.Base{FormatVersion: mgsnap.FormatVersion, Engine: "mongodb", Cluster: "docs", ID: "20261207T100000Z", Start: start, End: start,
		Time: now.Add(-time.Minute), StopTime: now.Add(-time.Minute)}
	if err := snapshots.WriteManifest(ctx, st, "docs", base.ID, base); err != nil {
		t.Fatal(err)
	}
	res, err := mgsnap.Prune(ctx, p, "docs", config.Retention{Full: 1}, now, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
