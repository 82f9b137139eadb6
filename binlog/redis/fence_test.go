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
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: "us", Level: 1}, Cluster: "cache"}
	ctx := context.Background()
	id := strings.Repeat("ab", 20)
	put := func(gen uint64, start, end int64) {
		t.Helper()
		if err := c.Put(storage.WithFence(ctx, gen), ChunkHeader{ReplID: id, Start: start, End: end, LastMS: 1000 + end}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
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
