package redis

import (
	"context"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	rdwal "github.com/drkit/drkit/binlog/redis"
	"github.com/drkit/drkit/snapshots"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// shippingStore is a store drd goes on shipping into: once the first listing
// of the stream has been read, one more chunk lands.
type shippingStore struct {
	storage.Store
	once sync.Once
	land func()
}

func (s *shippingStore) List(ctx context.Context, prefix string) iter.Seq2[storage.ObjectInfo, error] {
	return func(yield func(storage.ObjectInfo, error) bool) {
		for info, err := range s.Store.List(ctx, prefix) {
			if !yield(info, err) {
				return
			}
		}
		if strings.Contains(prefix, "/stream/") {
			s.once.Do(s.land)
		}
	}
}

// TestPlanListsTheStreamOnce: a chunk that lands while a restore plans,
// continuing the chain, is not stream the chain "does not reach". The plan
// listed the stream twice (the chain, then the region's end) and called the
// chunk only the second listing saw a gap (TestDrillRedis failed on it in a
// full make test).
func TestPlanListsTheStreamOnce(t *testing.T) {
	fs, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := strings.Repeat("ab", 20)
	st := &shippingStore{Store: fs}
	p := &storage.Pipeline{Store: st, Region: "us", Level: 1}
	cat := &rdwal.Catalog{Pipeline: p, Cluster: "cache"}
	put := func(start, end int64) {
		t.Helper()
		if err := cat.Put(ctx, rdwal.ChunkHeader{ReplID: id, Start: start, End: end, LastMS: 1000 + end}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	put(100, 200)
	st.land = func() { put(200, 300) }
	now := time.Now().UTC()
	base := rdwal.Base{FormatVersion: rdwal.FormatVersion, Engine: "redis", Cluster: "cache", ID: "20261207T100000Z", ReplID: id, Offset: 100,
		Time: now.Add(-time.Minute), StopTime: now.Add(-time.Minute), RDB: storage.Object{Key: snapshots.BaseKey("cache", "20261207T100000Z", "dump.rdb")}}
	if err := snapshots.WriteManifest(ctx, fs, "cache", base.ID, base); err != nil {
		t.Fatal(err)
	}
	_, chain, res, err := plan(ctx, RestoreOptions{Cluster: "cache", Region: &storage.Region{Name: "us", Store: st, Pipeline: p}, Log: slog.Default()})
	if err != nil || res.Reach.Gap != "" {
		t.Fatalf("plan: %v, gap %q; want the chain it listed, without a gap", err, res.Reach.Gap)
	}
	if len(chain) != 1 || res.Reach.End != 200 {
		t.Fatalf("chain of %d chunk(s) to %d, want the one listed, to 200", len(chain), res.Reach.End)
	}
}
