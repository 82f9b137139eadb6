package postgres

import (
	"bytes"
	"context"
	"errors"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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

// panickingStore panics when an object under one key prefix is read: fault
// injection around the real file store, for a path no input reaches today.
type panickingStore struct {
	storage.Store
	prefix string
}

func (s *panickingStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if strings.HasPrefix(key, s.prefix) {
		panic("injected")
	}
	return s.Store.Get(ctx, key, offset, length)
}

// A panic while prefetching must not kill wal-fetch (Go exits 2, which
// PostgreSQL reads as "no more WAL" and promotes early): Fetch returns it
// as an error, and wal-fetch aborts recovery.
func TestFetchReturnsAPrefetchPanic(t *testing.T) {
	ctx := context.Background()
	fs, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const segSize = 1 << 20
	name, next := Segment{TLI: 1, No: 2}.Name(segSize), Segment{TLI: 1, No: 3}.Name(segSize)
	store := &panickingStore{Store: fs, prefix: "orders/wal/" + next}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: store, Region: "us", Level: 1}, Cluster: "orders"}
	if err := c.EnsureInfo(ctx, ClusterInfo{Engine: "postgres", SystemIdentifier: "1", WALSegmentSize: segSize}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{name, next} {
		if err := c.PutSegment(ctx, n, bytes.Repeat([]byte("wal!"), segSize/4)); err != nil {
			t.Fatal(err)
		}
	}
	err = c.Fetch(ctx, name, filepath.Join(t.TempDir(), name), 1)
	if err == nil || !strings.Contains(err.Error(), "prefetch of "+next+": internal error: injected") {
		t.Fatalf("Fetch with a panicking prefetch: %v; want the panic as an error", err)
	}
}

// countingStore counts listings.
type countingStore struct {
	storage.Store
	lists atomic.Int32
}

func (s *countingStore) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	s.lists.Add(1)
	return s.Store.List(ctx, prefix)
}

// wal-fetch looks a segment and its prefetch window up with one listing:
// a file:// folder has no lookup by prefix, so a listing per segment made a
// restore read the whole wal/ folder once per segment (quadratic in the WAL
// kept). The window crosses a log file boundary (…FF to …00 of the next).
func TestFetchListsOncePerWindow(t *testing.T) {
	ctx := context.Background()
	fs, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const segSize = 1 << 20
	store := &countingStore{Store: fs}
	c := &Catalog{Pipeline: &storage.Pipeline{Store: store, Region: "us", Level: 1}, Cluster: "orders"}
	if err := c.EnsureInfo(ctx, ClusterInfo{Engine: "postgres", SystemIdentifier: "1", WALSegmentSize: segSize}); err != nil {
		t.Fatal(err)
	}
	first := uint64(0xFFE) // segments per log file at 1 MiB: 4096
	var names []string
	for no := first; no < first+6; no++ {
		name := Segment{TLI: 1, No: no}.Name(segSize)
		names = append(names, name)
		if err := c.PutSegment(ctx, name, bytes.Repeat([]byte{byte(no)}, segSize)); err != nil {
			t.Fatal(err)
		}
	}
	pgwal := t.TempDir()
	store.lists.Store(0)
	if err := c.Fetch(ctx, names[0], filepath.Join(pgwal, "RECOVERYXLOG"), 8); err != nil {
		t.Fatal(err)
	}
	if n := store.lists.Load(); n != 1 {
		t.Errorf("fetch with a prefetch window of 8 listed the store %d times, want 1", n)
	}
	for _, name := range names[1:] {
		got, err := os.ReadFile(filepath.Join(pgwal, prefetchDir, name))
		if err != nil || len(got) != segSize || got[0] != byte(first+uint64(slices.Index(names, name))) {
			t.Errorf("prefetched %s: %d bytes, %v", name, len(got), err)
		}
	}
	// The next segments come from the cache, without a listing.
	store.lists.Store(0)
	for _, name := range names[1:] {
		if err := c.Fetch(ctx, name, filepath.Join(pgwal, "RECOVERYXLOG"), 8); err != nil {
			t.Fatal(err)
		}
	}
	if n := store.lists.Load(); n != 0 {
		t.Errorf("fetching prefetched segments listed the store %d times, want 0", n)
	}
	// Past the end: one listing, and "not found".
	store.lists.Store(0)
	err = c.Fetch(ctx, Segment{TLI: 1, No: first + 6}.Name(segSize), filepath.Join(pgwal, "RECOVERYXLOG"), 8)
	if !errors.Is(err, ErrWALNotFound) || store.lists.Load() != 1 {
		t.Errorf("fetch past the end: %v after %d listings; want not found after 1", err, store.lists.Load())
	}
}
