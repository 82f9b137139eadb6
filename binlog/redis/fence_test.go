package redis

import (
	"context"
	"strings"
	"testing"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// TestLateChunkOfAnOldHolderIsIgnored: a drd that lost its lease while
// paused finishes uploading a chunk from an offset the new holder has
// written from too; List keeps the new holder's, so the chain has no
// overlap.
func TestLateChunkOfAnOldHolderIsIgnored(t *testing.T) {
	c, put := fencedCatalog(t)
	ctx := context.Background()
	put(1, 0, 100)
	put(2, 100, 150) // the new holder
	put(1, 100, 180) // the old one's late upload, further than the new one's
	put(2, 150, 300)
	refs, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, r := range refs {
		got = append(got, r.Start, r.End, int64(r.Fence))
	}
	if want := []int64{0, 100, 1, 100, 150, 2, 150, 300, 2}; !equal(got, want) {
		t.Fatalf("List: (start, end, fence) %v, want %v", got, want)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestChainFollowsTheNewestHoldersChunks: holder 1 paused uploading from
// 100, holder 2 took over from 100 and paused too; holder 1's chunk landed,
// holder 3 listed it and went on from 180; holder 2's landed last. Keeping
// the higher fence at 100 left a gap after 150 for good; the chain is
// holder 3's, through holder 1's chunk.
func TestChainFollowsTheNewestHoldersChunks(t *testing.T) {
	c, put := fencedCatalog(t)
	ctx := context.Background()
	id := strings.Repeat("ab", 20)
	put(1, 0, 100)
	put(1, 100, 180)
	put(3, 180, 300)
	put(2, 100, 150)
	_, reach, err := c.Chain(ctx, id, 0)
	if err != nil {
		t.Fatal(err)
	}
	if reach.Gap != "" || reach.End != 300 {
		t.Fatalf("chain reaches %d, gap %q; want 300 without a gap", reach.End, reach.Gap)
	}
	_, late, _, err := c.ListAll(ctx)
	if err != nil || len(late) != 1 || late[0].Fence != 2 {
		t.Fatalf("late %+v (%v), want holder 2's chunk only", late, err)
	}
}

// fencedCatalog is a file:// catalog for cluster cache and a put that stores
// a chunk of history abab... from start to end under lease generation gen.
func fencedCatalog(t *testing.T) (*Catalog, func(gen uint64, start, end int64)) {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: "us", Level: 1}, Cluster: "cache"}
	put := func(gen uint64, start, end int64) {
		t.Helper()
		h := ChunkHeader{ReplID: strings.Repeat("ab", 20), Start: start, End: end, LastMS: 1000 + end}
		if err := c.Put(storage.WithFence(context.Background(), gen), h, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	return c, put
}
