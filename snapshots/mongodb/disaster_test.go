package mongodb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/drkit/drkit/internal/testenv"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// Disaster: FerretDB and drd (the real binary) are SIGKILLed together
// under write load (inserts, replaces and deletes from two clients, and a
// stamped writer). A restore of the newest from region b alone holds every
// stamp acknowledged more than two flush intervals before the kill, and no
// stamp that was never written. The flush interval is 500 ms: a write
// waits up to one interval for its chunk plus one read of the oplog, which
// on FerretDB scans the whole oplog; at 200 ms, a scan slowed by a loaded
// 2-core machine sometimes took the rest of the second interval.
func TestDisasterKillsFerretDBAndDrd(t *testing.T) {
	ctx := context.Background()
	src := testenv.StartFerretDB(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "drkit.yaml")
	yaml := fmt.Sprintf("drd:\n  listen: 127.0.0.1:0\nregions:\n  - {name: a, store: 'file://%[1]s/a'}\n  - {name: b, store: 'file://%[1]s/b'}\n"+
		"clusters:\n  - {name: docs, engine: mongodb, region: a, dsn: '%[2]s', flush_interval: 500ms}\n", dir, src.URL())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	drd := testenv.StartDrd(t, cfg)
	testenv.WaitFor(t, 30*time.Second, "drd reads the oplog for both regions", func() bool {
		return strings.Count(drd.Log(), "region holds no oplog yet") == 2
	})
	b := fileRegion(t, filepath.Join(dir, "b"), "b")
	a := fileRegion(t, filepath.Join(dir, "a"), "a")
	c := src.Client(t)
	c.Database("app").Collection("stamps").InsertOne(ctx, bson.D{{Key: "_id", Value: -1}})
	if _, err := mgsnap.Backup(ctx, src.URL(), []*storage.Region{a, b}, "docs", testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	load := c.Database("app").Collection("load")
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("%d-%d", w, i)
				if _, err := load.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "v", Value: i}}); err != nil {
					return // the server is gone
				}
				if i%2 == 1 {
					load.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "v", Value: -i}})
				}
				if i%3 == 2 {
					load.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	var mu sync.Mutex
	acked := map[int]time.Time{}
	tried := 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			tried = i + 1
			mu.Unlock()
			if _, err := c.Database("app").Collection("stamps").InsertOne(ctx, bson.D{{Key: "_id", Value: i}}); err != nil {
				return
			}
			mu.Lock()
			acked[i] = time.Now()
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	}()
	time.Sleep(3 * time.Second)
	killedAt := time.Now()
	_ = src.Kill()
	drd.Kill()
	close(stop)
	<-done
	wg.Wait()

	dst := testenv.StartFerretDB(t)
	res, err := mgsnap.Restore(ctx, mgsnap.RestoreOptions{Cluster: "docs", Region: b, TargetDSN: dst.URL(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("restore from region b after the kill: %v", err)
	}
	cur, err := dst.Client(t).Database("app").Collection("stamps").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID int `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	for _, d := range docs {
		got[d.ID] = true
	}
	mu.Lock()
	defer mu.Unlock()
	must := 0
	for i, at := range acked {
		if at.Before(killedAt.Add(-2 * disasterFlush)) {
			must++
			if !got[i] {
				t.Errorf("stamp %d acknowledged %s before the kill is missing", i, killedAt.Sub(at))
			}
		}
	}
	for i := range got {
		if i >= tried {
			t.Errorf("stamp %d was restored but never written (%d tried)", i, tried)
		}
	}
	t.Logf("%d stamps acknowledged, %d of them more than %s before the kill; %d restored; %d documents loaded, %d oplog entries replayed",
		len(acked), must, 2*disasterFlush, len(got)-1, res.Docs, res.Entries)
	if must < 20 {
		t.Fatalf("only %d stamps were acknowledged early enough to check", must)
	}
}

// fileRegion opens a file:// region folder as drd wrote it.
func fileRegion(t *testing.T, dir, name string) *storage.Region {
	t.Helper()
	st, err := file.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name}}
}

// disasterFlush is TestDisasterKillsFerretDBAndDrd's flush_interval.
const disasterFlush = 500 * time.Millisecond
