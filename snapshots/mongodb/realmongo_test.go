package mongodb_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
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

// TestRealMongoCommandsAndTransactions runs only against a real MongoDB
// replica set (testenv.RealMongo: DRKIT_TEST_MONGO_URI, or the docker
// provider); it is skipped here, where no mongod can run, and has never run
// on this project's CI. It ships the oplog of what FerretDB cannot write
// ($v:2 diff updates, a multi-document transaction, create/rename/drop and
// index builds), takes a base backup in the middle and restores from one
// region into an empty FerretDB: the test database must come back equal,
// with its indexes.
func TestRealMongoCommandsAndTransactions(t *testing.T) {
	uri := testenv.RealMongo(t)
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	name := fmt.Sprintf("drkit_test_%d", time.Now().UnixNano())
	db := c.Database(name)
	t.Cleanup(func() { _ = db.Drop(context.Background()) })

	var regions []*storage.Region
	for _, r := range []string{"eu", "us"} {
		st, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, &storage.Region{Name: r, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: r, Level: 1}})
	}
	sh := &mgwal.Shipper{Cluster: "docs", DSN: uri, Regions: regions, FlushInterval: flushInterval, Log: testenv.Logger(t)}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sh.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })
	testenv.WaitFor(t, 30*time.Second, "the shipper reads the oplog", func() bool { return sh.Ready() == nil })

	items := db.Collection("items")
	for i := range 50 {
		must(t)(items.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "n", Value: i}, {Key: "tags", Value: bson.A{"a", "b"}}, {Key: "sub", Value: bson.D{{Key: "x", Value: 1}}}}))
	}
	must(t)(items.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "n", Value: 1}}, Options: options.Index().SetName("n_1")}))
	if _, err := mgsnap.Backup(ctx, uri, regions, "docs", testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}

	// $v:2 diffs: set, unset, nested and array changes.
	must(t)(items.UpdateMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$lt", Value: 10}}}}, bson.D{{Key: "$set", Value: bson.D{{Key: "sub.x", Value: 2}, {Key: "new", Value: true}}}, {Key: "$unset", Value: bson.D{{Key: "tags", Value: ""}}}}))
	must(t)(items.UpdateMany(ctx, bson.D{{Key: "n", Value: bson.D{{Key: "$gte", Value: 40}}}}, bson.D{{Key: "$push", Value: bson.D{{Key: "tags", Value: "c"}}}, {Key: "$inc", Value: bson.D{{Key: "n", Value: 1000}}}}))
	must(t)(items.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{20, 21, 22}}}}}))
	// A transaction across two collections (one applyOps at its commit).
	must(t)(nil, db.CreateCollection(ctx, "orders"))
	sess, err := c.StartSession()
	if err != nil {
		t.Fatal(err)
	}
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		if _, err := db.Collection("orders").InsertOne(ctx, bson.D{{Key: "_id", Value: "o1"}, {Key: "item", Value: 5}}); err != nil {
			return nil, err
		}
		return items.UpdateOne(ctx, bson.D{{Key: "_id", Value: 5}}, bson.D{{Key: "$set", Value: bson.D{{Key: "ordered", Value: "o1"}}}})
	})
	sess.EndSession(ctx)
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	// Commands: rename, a new collection with an index, a dropped one.
	must(t)(nil, c.Database("admin").RunCommand(ctx, bson.D{{Key: "renameCollection", Value: name + ".orders"}, {Key: "to", Value: name + ".orders2"}}).Err())
	must(t)(db.Collection("orders2").Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "item", Value: 1}}, Options: options.Index().SetName("item_1")}))
	must(t)(db.Collection("tmp").InsertOne(ctx, bson.D{{Key: "_id", Value: 1}}))
	must(t)(nil, db.Collection("tmp").Drop(ctx))

	since := time.Now()
	testenv.WaitFor(t, 30*time.Second, "both regions hold the oplog", func() bool {
		_, _, rs := sh.Progress(time.Now())
		for _, r := range rs {
			if r.Exposure > 0 || r.ShippedAt.Before(since.Add(2*flushInterval)) {
				return false
			}
		}
		return len(rs) == 2
	})
	want := only(dataset(t, c), name)
	dst := testenv.StartFerretDB(t)
	res, err := mgsnap.Restore(ctx, mgsnap.RestoreOptions{Cluster: "docs", Region: regions[1], TargetDSN: dst.URL(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	dc := dst.Client(t)
	if got := only(dataset(t, dc), name); !maps.Equal(got, want) {
		t.Fatalf("restore (%d documents, %d entries) differs from the source in %v", res.Docs, res.Entries, diff(got, want))
	}
	for coll, idx := range map[string]string{"items": "n_1", "orders2": "item_1"} {
		specs, err := dc.Database(name).Collection(coll).Indexes().ListSpecifications(ctx)
		if err != nil || !slices.ContainsFunc(specs, func(s mongo.IndexSpecification) bool { return s.Name == idx }) {
			t.Errorf("%s's indexes: %v, %v; want %s", coll, specs, err, idx)
		}
	}
}

// only keeps a dataset's documents of database db.
func only(set map[string]string, db string) map[string]string {
	maps.DeleteFunc(set, func(k, _ string) bool { return !strings.HasPrefix(k, db+".") })
	return set
}
