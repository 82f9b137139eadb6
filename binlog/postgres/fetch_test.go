package postgres

import (
	"bytes"
	"context"
	"iter"
	"os"
	"path/filepath"
	"testing"

	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// completingStore completes the segment (whole object stored, chunks deleted)
// right after the first listing of its WAL, as the shipper does while a
// restore reads: the listed chunks are gone when Fetch opens them.
type completingStore struct {
	storage.Store
	complete func()
	done     bool
}

func (s *completingStore) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		for info, err := range s.Store.List(ctx, prefix) {
			if !yield(info, err) {
				return
			}
		}
		if !s.done && s.complete != nil {
			s.done = true
			s.complete()
		}
	}
}

// A restore that reads a segment while the shipper completes it gets the
// whole segment, not "object not found" (which aborted a CI restore).
func TestFetchWhileSegmentCompletes(t *testing.T) {
	ctx := context.Background()
	fs, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const segSize = 1 << 20
	store := &completingStore{Store: fs}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: store, Region: "us", Level: 1}, Cluster: "orders"}
	if err := c.EnsureInfo(ctx, ClusterInfo{Engine: "postgres", SystemIdentifier: "1", WALSegmentSize: segSize}); err != nil {
		t.Fatal(err)
	}
	name := Segment{TLI: 1, No: 2}.Name(segSize)
	seg := bytes.Repeat([]byte("wal!"), segSize/4)
	if err := c.PutPartial(ctx, name, 0, 4096, seg[:4096]); err != nil {
		t.Fatal(err)
	}
	store.complete = func() {
		if err := c.PutSegment(ctx, name, seg); err != nil {
			t.Error(err)
		}
		if err := c.DeletePartials(ctx, name); err != nil {
			t.Error(err)
		}
	}
	dest := filepath.Join(t.TempDir(), name)
	if err := c.Fetch(ctx, name, dest, 0); err != nil {
		t.Fatalf("fetch while the segment completes: %v", err)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, seg) {
		t.Fatalf("fetched %d bytes, not the completed segment", len(got))
	}
}
