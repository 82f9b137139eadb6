package mongodb

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	mgwal "github.com/drkit/drkit/binlog/mongodb"
	"github.com/drkit/drkit/internal/testenv"
)

// FerretDB 1.24 holds a SQLite connection for every update of an update
// command until the command ends, and its pool has 100: a replayed bulk
// write of more updates than that waited for a connection forever (found by
// bench-mongodb, whose restore "did not finish"). The Applier sends FerretDB
// smaller batches.
func TestReplayOfManyUpdatesIntoFerretDB(t *testing.T) {
	f := testenv.StartFerretDB(t)
	c := f.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 300
	ids := make([]bson.ObjectID, n)
	var docs []any
	for i := range ids {
		ids[i] = bson.NewObjectID()
		docs = append(docs, bson.D{{Key: "_id", Value: ids[i]}, {Key: "v", Value: 0}})
	}
	coll := c.Database("app").Collection("items")
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		t.Fatal(err)
	}
	a, err := NewApplier(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		raw := entry(t, bson.E{Key: "op", Value: "u"}, bson.E{Key: "ns", Value: "app.items"},
			bson.E{Key: "o2", Value: doc("_id", id)},
			bson.E{Key: "o", Value: doc("$v", 1, "$set", doc("_id", id, "v", i+1))})
		if err := a.Apply(ctx, mgwal.Entry{TS: mgwal.TS(i + 1), Op: "u", NS: "app.items", Raw: raw}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatalf("flush %d updates: %v", n, err)
	}
	for i, id := range ids {
		var got struct{ V int }
		if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&got); err != nil {
			t.Fatal(err)
		}
		if got.V != i+1 {
			t.Fatalf("document %d: v = %d, want %d", i, got.V, i+1)
		}
	}
}
