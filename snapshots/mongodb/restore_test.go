package mongodb_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/internal/testenv"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

const flushInterval = 200 * time.Millisecond

// env is a FerretDB whose oplog drd ships into regions eu and us.
type env struct {
	src     *testenv.FerretDB
	c       *mongo.Client
	regions []*storage.Region
	sh      *mgwal.Shipper
	stop    func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{src: testenv.StartFerretDB(t)}
	e.c = e.src.Client(t)
	for _, name := range []string{"eu", "us"} {
		st, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e.regions = append(e.regions, &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name, Level: 1}})
	}
	return e
}

func (e *env) ship(t *testing.T) {
	t.Helper()
	e.sh = &mgwal.Shipper{Cluster: "docs", DSN: e.src.URL(), Regions: e.regions, FlushInterval: flushInterval, Log: testenv.Logger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.sh.Run(ctx) }()
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(e.stop)
	testenv.WaitFor(t, 30*time.Second, "the shipper reads the oplog", func() bool { return e.sh.Ready() == nil })
}

// waitShipped waits until both regions hold what the oplog held when called.
func (e *env) waitShipped(t *testing.T) {
	t.Helper()
	since := time.Now()
	testenv.WaitFor(t, 30*time.Second, "both regions hold the oplog", func() bool {
		_, _, rs := e.sh.Progress(time.Now())
		if len(rs) != 2 {
			return false
		}
		for _, r := range rs {
			if r.Exposure > 0 || r.ShippedAt.Before(since.Add(2*flushInterval)) {
				return false
			}
		}
		return true
	})
}

func (e *env) restore(t *testing.T, region int, stop time.Time) (*testenv.FerretDB, mgsnap.RestoreResult) {
	t.Helper()
	dst := testenv.StartFerretDB(t)
	res, err := mgsnap.Restore(context.Background(), mgsnap.RestoreOptions{Cluster: "docs", Region: e.regions[region], TargetDSN: dst.URL(), Stop: stop, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("restore from region %s: %v", e.regions[region].Name, err)
	}
	return dst, res
}

// dataset is every document of every collection but the server's own, as
// extended JSON by namespace and _id.
func dataset(t *testing.T, c *mongo.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	dbs, err := c.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range dbs {
		if db == "local" || db == "admin" || db == "config" {
			continue
		}
		names, err := c.Database(db).ListCollectionNames(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			cur, err := c.Database(db).Collection(n).Find(ctx, bson.D{})
			if err != nil {
				t.Fatal(err)
			}
			for cur.Next(ctx) {
				id, _ := bson.MarshalExtJSON(bson.D{{Key: "id", Value: cur.Current.Lookup("_id")}}, true, false)
				js, _ := bson.MarshalExtJSON(cur.Current, true, false)
				out[db+"."+n+" "+string(id)] = string(js)
			}
			if err := cur.Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

func diff(got, want map[string]string) []string {
	var out []string
	for k, v := range want {
		if got[k] != v {
			out = append(out, fmt.Sprintf("%s: got %q want %q", k, got[k], v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, k+": not in the source")
		}
	}
	if len(out) > 5 {
		out = out[:5]
	}
	return out
}

// Inserts, replaces, updates and deletes from several clients, before and
// after a base backup taken while they run, restore from each region alone
// equal to the source, with the collection's index; a non-empty target is
// refused and keeps what it holds.
func TestRestoreReplaysConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	coll := e.c.Database("app").Collection("items")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}, Options: options.Index().SetName("n_1")}); err != nil {
		t.Fatal(err)
	}
	e.ship(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				must(t)(coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "n", Value: i}, {Key: "gone", Value: true}}))
				switch i % 4 {
				case 1:
					must(t)(coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "n", Value: -i}, {Key: "replaced", Value: w}}))
				case 2:
					must(t)(coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: i * 10}}}, {Key: "$unset", Value: bson.D{{Key: "gone", Value: ""}}}}))
				case 3:
					must(t)(coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}))
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(time.Second)
	b, err := mgsnap.Backup(ctx, e.src.URL(), e.regions, "docs", testenv.Logger(t))
	if err != nil {
		t.Fatalf("backup under load: %v", err)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	e.waitShipped(t)
	want := dataset(t, e.c)
	for i := range e.regions {
		dst, res := e.restore(t, i, time.Time{})
		c := dst.Client(t)
		t.Logf("region %s: backup %s loaded %d documents, %d oplog entries replayed; the source holds %d", e.regions[i].Name, b.ID, res.Docs, res.Entries, len(want))
		if got := dataset(t, c); !maps.Equal(got, want) {
			t.Errorf("restore from region %s (backup %s, %d documents, %d entries replayed) differs from the source (%d documents) in %v",
				e.regions[i].Name, b.ID, res.Docs, res.Entries, len(want), diff(got, want))
		}
		specs, err := c.Database("app").Collection("items").Indexes().ListSpecifications(ctx)
		if err != nil || len(specs) != 2 || specs[1].Name != "n_1" {
			t.Errorf("restored indexes: %v, %v; want _id_ and n_1", specs, err)
		}
	}
	dst := testenv.StartFerretDB(t)
	must(t)(dst.Client(t).Database("mine").Collection("x").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}))
	_, err = mgsnap.Restore(ctx, mgsnap.RestoreOptions{Cluster: "docs", Region: e.regions[0], TargetDSN: dst.URL(), Log: testenv.Logger(t)})
	if err == nil || !strings.Contains(err.Error(), "empty server") {
		t.Errorf("restore into a server holding a database: %v; want a refusal", err)
	}
	if n, _ := dst.Client(t).Database("mine").Collection("x").CountDocuments(ctx, bson.D{}); n != 1 {
		t.Errorf("the refused target holds %d documents, want its 1", n)
	}
}

// must fails the test (from any goroutine) when a write fails.
func must(t *testing.T) func(any, error) {
	return func(_ any, err error) {
		if err != nil {
			t.Error(err)
		}
	}
}

// A burst of more entries within the reader's one-second lookback than one
// read used to take (10,000: it then re-read only entries it held, and
// stopped shipping) is shipped whole.
func TestBurstWithinTheLookbackIsShipped(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	coll := e.c.Database("app").Collection("burst")
	const n = 30000
	batch := make([]any, 0, 5000)
	for i := range n {
		batch = append(batch, bson.D{{Key: "_id", Value: i}})
		if len(batch) == cap(batch) {
			if _, err := coll.InsertMany(ctx, batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	src, err := mgwal.Connect(ctx, e.src.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	_, newest, err := src.Bounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cat := &mgwal.Catalog{Pipeline: e.regions[1].Pipeline, Cluster: "docs"}
	testenv.WaitFor(t, 60*time.Second, "region us holds the burst", func() bool {
		refs, err := cat.List(ctx)
		chains := mgwal.Chains(refs)
		return err == nil && len(chains) == 1 && chains[0].End >= newest
	})
}
