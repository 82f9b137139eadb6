package mongodb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/internal/testenv"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
)

// drd (the real binary) is SIGKILLed under insert load and stays down 3 s.
// Restarted, it continues each region's chain: verify is clean, and region
// b holds every entry of the server's oplog exactly once (by ts and _id):
// no gap, no duplicate from reading the lookback again.
func TestResumeAfterDrdKill(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartFerretDB(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drkit.yaml")
	yaml := fmt.Sprintf("drd:\n  listen: 127.0.0.1:0\nregions:\n  - {name: a, store: 'file://%[1]s/a'}\n  - {name: b, store: 'file://%[1]s/b'}\n"+
		"clusters:\n  - {name: docs, engine: mongodb, region: a, dsn: '%[2]s', flush_interval: 200ms}\n", dir, src.URL())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	drd := testenv.StartDrd(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "drd reads the oplog for both regions", func() bool {
		return strings.Count(drd.Log(), "region holds no oplog yet") == 2
	})
	coll := src.Client(t).Database("app").Collection("seq")
	var n atomic.Int64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: n.Add(1)}}); err != nil {
				t.Errorf("writer: %v", err)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	drd.Kill()
	time.Sleep(3 * time.Second)
	drd = testenv.StartDrd(t, cfg)
	time.Sleep(time.Second)
	close(stop)
	<-done

	src2, err := mgwal.Connect(ctx, src.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer src2.Close()
	_, newest, err := src2.Bounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := fileRegion(t, filepath.Join(dir, "b"), "b")
	cat := &mgwal.Catalog{Pipeline: b.Pipeline, Cluster: "docs"}
	testenv.WaitFor(t, 30*time.Second, "region b holds the oplog's newest entry", func() bool {
		refs, err := cat.List(ctx)
		chains := mgwal.Chains(refs)
		return err == nil && len(chains) == 1 && chains[0].End >= newest
	})
	if !strings.Contains(drd.Log(), "continuing the region's oplog") {
		t.Error("the restarted drd did not continue the regions' chains")
	}
	rep, err := mgsnap.Verify(ctx, b.Pipeline, "docs", true, nil)
	if err != nil || len(rep.Chains) != 1 || strings.Contains(strings.Join(rep.Problems, "\n"), "missing") {
		t.Fatalf("verify region b: %+v, %v", rep, err)
	}
	refs, err := cat.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	inserted := map[int64]bool{}
	for _, ref := range refs {
		err := cat.Each(ctx, ref, func(e mgwal.Entry) error {
			seen[e.Key()]++
			if e.NS == "app.seq" && e.Op == "i" {
				inserted[e.Raw.Lookup("o", "_id").AsInt64()] = true
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for k, c := range seen {
		if c > 1 {
			t.Errorf("an oplog entry is stored %d times (ts+_id %x)", c, k)
		}
	}
	for i := int64(1); i <= n.Load(); i++ {
		if !inserted[i] {
			t.Errorf("insert %d of %d is not in region b's oplog", i, n.Load())
		}
	}
	t.Logf("%d inserts, %d oplog entries in region b, each once", n.Load(), len(seen))
}
