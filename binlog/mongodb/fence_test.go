package mongodb

import (
	"context"
	"fmt"
	"testing"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// TestLateChunkOfAnOldHolderIsIgnored: a drd that lost its lease while
// paused finishes uploading a chunk from a point of the chain the new holder
// has written from too; List keeps the new holder's, so the chain has no
// break.
func TestLateChunkOfAnOldHolderIsIgnored(t *testing.T) {
	c, put := fencedCatalog(t)
	ctx := context.Background()
	put(1, 10, 20)
	put(2, 20, 30) // the new holder
	put(1, 20, 25) // the old one's late upload
	put(2, 30, 40)
	refs, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chains := Chains(refs)
	if len(chains) != 1 || len(chains[0].Breaks) != 0 || chains[0].End != 40 || len(chains[0].Chunks) != 3 {
		t.Fatalf("chains %+v, want one of three chunks to 40 without a break", chains)
	}
	if ch := chains[0].Chunks[1]; ch.Fence != 2 || ch.End != 30 {
		t.Fatalf("the chunk from 20 is %s, want the new holder's (fence 2, to 30)", fmt.Sprint(ch.Fence, " ", uint64(ch.End)))
	}
}

// TestChainsFollowTheNewestHoldersChunks: holder 1 paused uploading from 20,
// holder 2 took over from 20 and paused too; holder 1's chunk landed, holder
// 3 listed it and went on from 25; holder 2's landed last. Keeping the
// higher fence at 20 left (22, 25] missing for good; the chain is holder
// 3's, through holder 1's chunk.
func TestChainsFollowTheNewestHoldersChunks(t *testing.T) {
	c, put := fencedCatalog(t)
	ctx := context.Background()
	put(1, 10, 20)
	put(1, 20, 25)
	put(3, 25, 40)
	put(2, 20, 22)
	refs, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chains := Chains(refs)
	if len(chains) != 1 || len(chains[0].Breaks) != 0 || chains[0].End != 40 {
		t.Fatalf("chains %+v, want one to 40 without a break", chains)
	}
	if ch := chains[0].Chunks[1]; ch.Fence != 1 || ch.End != 25 {
		t.Fatalf("the chunk from 20 is %s, want holder 1's (fence 1, to 25)", fmt.Sprint(ch.Fence, " ", uint64(ch.End)))
	}
}

// fencedCatalog is a file:// catalog for cluster docs and a put that stores
// a chunk of chain 10 from start to end under lease generation gen.
func fencedCatalog(t *testing.T) (*Catalog, func(gen uint64, start, end TS)) {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: "us", Level: 1}, Cluster: "docs"}
	put := func(gen uint64, start, end TS) {
		t.Helper()
		h := ChunkHeader{Chain: 10, Start: start, End: end, LastMS: 1000, SealMS: 1000}
		if _, err := c.Put(storage.WithFence(context.Background(), gen), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	return c, put
}
