package redis_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/snapshots"
	rdsnap "github.com/drkit/drkit/snapshots/redis"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// TestPruneDeletesLateChunks: a chunk a drd uploaded after it lost its lease,
// from an offset the new holder wrote from too, is never read (List keeps
// the new holder's). Before prune deleted it, it stayed for good, and would
// count again once the new holder's chunk of that offset was pruned.
func TestPruneDeletesLateChunks(t *testing.T) {
	st, p, c, put := streamRegion(t)
	ctx := context.Background()
	put(1, 0, 100)
	put(2, 100, 150) // the new holder
	put(1, 100, 180) // the old one's late upload
	put(2, 150, 300)
	res := pruneAfterBase(t, st, p, 150)
	kept, late, _, err := c.ListAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range kept {
		got = append(got, r.Start, r.End, int64(r.Fence))
	}
	// 0..100 and 100..150 end at or before the base's offset: pruned; the
	// late 100..180 goes with them.
	if want := []int64{150, 300, 2}; !slices.Equal(got, want) || len(late) != 0 || res.Chunks != 3 {
		t.Fatalf("after prune: kept (start, end, fence) %v, %d late, %d pruned; want %v, 0 late, 3 pruned", got, len(late), res.Chunks, want)
	}
}

// TestPruneDeletesOldHeldChunks: a chunk out of the chain that holds more
// than the kept one from its offset (held: the next holder may build on it)
// is deleted once it is as old as the kept chunks prune deletes; left
// behind, it came back into the chain once its rival was pruned.
func TestPruneDeletesOldHeldChunks(t *testing.T) {
	st, p, c, put := streamRegion(t)
	ctx := context.Background()
	put(1, 0, 100)
	put(1, 100, 180) // holder 1's late upload
	put(2, 100, 150) // holder 2's, also late: nothing after it settles which counts
	if _, _, held, err := c.ListAll(ctx); err != nil || len(held) != 1 {
		t.Fatalf("held %v (%v), want holder 1's chunk from 100", held, err)
	}
	res := pruneAfterBase(t, st, p, 200)
	kept, late, held, err := c.ListAll(ctx)
	if err != nil || len(kept)+len(late)+len(held) != 0 || res.Chunks != 3 {
		t.Fatalf("after prune: kept %v, late %v, held %v, %d pruned (%v); want nothing left, 3 pruned", kept, late, held, res.Chunks, err)
	}
}

// streamRegion is a file:// region for cluster cache and a put that stores a
// chunk of history abab... from start to end under lease generation gen.
func streamRegion(t *testing.T) (storage.Store, *storage.Pipeline, *rdwal.Catalog, func(gen uint64, start, end int64)) {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	p := &storage.Pipeline{Store: st, Region: "us", Level: 1}
	c := &rdwal.Catalog{Pipeline: p, Cluster: "cache"}
	put := func(gen uint64, start, end int64) {
		t.Helper()
		h := rdwal.ChunkHeader{ReplID: strings.Repeat("ab", 20), Start: start, End: end, LastMS: 1000 + end}
		if err := c.Put(storage.WithFence(context.Background(), gen), h, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	return st, p, c, put
}

// pruneAfterBase stores one base backup at offset of history abab..., taken
// a minute ago, and prunes the region to it (retention.full 1).
func pruneAfterBase(t *testing.T, st storage.Store, p *storage.Pipeline, offset int64) rdsnap.PruneResult {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC()
	base := rdwal.Base{FormatVersion: rdwal.FormatVersion, Engine: "redis", Cluster: "cache", ID: "20261207T100000Z", ReplID: strings.Repeat("ab", 20), Offset: offset,
		Time: now.Add(-time.Minute), StopTime: now.Add(-time.Minute), RDB: storage.Object{Key: snapshots.BaseKey("cache", "20261207T100000Z", "dump.rdb")}}
	if err := snapshots.WriteManifest(ctx, st, "cache", base.ID, base); err != nil {
		t.Fatal(err)
	}
	res, err := rdsnap.Prune(ctx, p, "cache", config.Retention{Full: 1}, now, false)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
