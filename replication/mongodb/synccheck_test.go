package mongodb_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/replication"
	mgrepl "github.com/drkit/drkit/replication/mongodb"
)

// FerretDB has no replica sets: the "replica" here is a second server given
// the same documents, as a restored copy is. What is tested is the
// comparison (chunks, hashes, what a difference names); waiting for a
// replica set member's optime runs only on real MongoDB.

func oid(i int) bson.ObjectID {
	var id bson.ObjectID
	binary.BigEndian.PutUint32(id[:4], 0x65000000)
	binary.BigEndian.PutUint64(id[4:], uint64(i))
	return id
}

// seed writes the same documents into every client: 2,500 in app.users
// (ObjectID _ids), 30 in app.mixed (number and string _ids) and 10 in
// shop.orders (nested documents, arrays).
func seed(t *testing.T, clients ...*mongo.Client) {
	t.Helper()
	ctx := context.Background()
	var users, mixed, orders []any
	for i := range 2500 {
		users = append(users, bson.D{{Key: "_id", Value: oid(i)}, {Key: "name", Value: "user"}, {Key: "n", Value: i}})
	}
	for i := range 15 {
		mixed = append(mixed, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: i}}, bson.D{{Key: "_id", Value: string(rune('a' + i))}, {Key: "v", Value: i}})
	}
	for i := range 10 {
		orders = append(orders, bson.D{{Key: "_id", Value: int64(i)}, {Key: "lines", Value: bson.A{bson.D{{Key: "sku", Value: "x"}, {Key: "qty", Value: i}}}}})
	}
	for _, c := range clients {
		for _, w := range []struct {
			db, coll string
			docs     []any
		}{{"app", "users", users}, {"app", "mixed", mixed}, {"shop", "orders", orders}} {
			if _, err := c.Database(w.db).Collection(w.coll).InsertMany(ctx, w.docs); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func check(t *testing.T, primary, replica string) replication.Report {
	t.Helper()
	rep, err := mgrepl.SyncCheck(context.Background(), primary, replica, replication.Checker{ChunkRows: 1000, Wait: 5 * time.Second,
		Skip: []string{"drkit.drkit_heartbeat"}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

// TestCheckFindsDrift: two servers holding the same documents are in sync
// (the heartbeat collection, which differs, left out); a changed document,
// a deleted one and one the replica alone holds are each found in the chunk
// that holds them; a collection of mixed _id types is compared whole, and
// so is one where only the replica holds an _id of another type.
func TestCheckFindsDrift(t *testing.T) {
	p, r := testenv.StartFerretDB(t), testenv.StartFerretDB(t)
	pc, rc := p.Client(t), r.Client(t)
	seed(t, pc, rc)
	ctx := context.Background()
	for i, c := range []*mongo.Client{pc, rc} {
		if _, err := c.Database("drkit").Collection("drkit_heartbeat").InsertOne(ctx, bson.D{{Key: "_id", Value: "c"}, {Key: "at", Value: i}}); err != nil {
			t.Fatal(err)
		}
	}
	rep := check(t, p.URL(), r.URL())
	if !rep.InSync() || rep.Tables != 3 || rep.Rows != 2540 || rep.Chunks != 5 {
		t.Fatalf("same documents: %+v, want in sync, 3 collections, 2540 documents in 5 chunks (users in 3)", rep)
	}

	users, mixed := rc.Database("app").Collection("users"), rc.Database("app").Collection("mixed")
	if _, err := users.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid(1500)}}, bson.D{{Key: "$set", Value: bson.D{{Key: "name", Value: "changed"}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := users.DeleteOne(ctx, bson.D{{Key: "_id", Value: oid(10)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := mixed.InsertOne(ctx, bson.D{{Key: "_id", Value: "zz"}, {Key: "v", Value: 99}}); err != nil {
		t.Fatal(err)
	}
	rep = check(t, p.URL(), r.URL())
	var got []string
	for _, d := range rep.Diffs {
		got = append(got, d.Table+" "+d.Range())
	}
	want := []string{
		`app.mixed [-inf, +inf)`,
		`app.users [-inf, {"$oid":"6500000000000000000003e8"})`,
		`app.users [{"$oid":"6500000000000000000003e8"}, {"$oid":"6500000000000000000007d0"})`,
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("diffs:\n%q\nwant\n%q", got, want)
	}
	if rep.InSync() || !slices.Equal(rep.DriftTables(), []string{"app.mixed", "app.users"}) {
		t.Errorf("drift tables %v", rep.DriftTables())
	}

	// A document of another _id type that only the replica holds, in a
	// collection the primary would cut into ObjectID ranges (which never
	// match a string): the collection is compared whole.
	if _, err := users.InsertOne(ctx, bson.D{{Key: "_id", Value: "stray"}}); err != nil {
		t.Fatal(err)
	}
	rep = check(t, p.URL(), r.URL())
	got = got[:0]
	for _, d := range rep.Diffs {
		got = append(got, d.Table+" "+d.Range())
	}
	slices.Sort(got)
	if want := []string{`app.mixed [-inf, +inf)`, `app.users [-inf, +inf)`}; !slices.Equal(got, want) {
		t.Errorf("diffs with a replica-only string _id:\n%q\nwant\n%q", got, want)
	}
}

// TestCheckNamesAnUnreachableReplica: a replica that does not answer fails
// the check with the side named, not a report of drift.
func TestCheckNamesAnUnreachableReplica(t *testing.T) {
	p := testenv.StartFerretDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := mgrepl.SyncCheck(ctx, p.URL(), "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500", replication.Checker{})
	if err == nil || !strings.Contains(err.Error(), "replica: hello") {
		t.Fatalf("unreachable replica: %v, want an error naming the replica", err)
	}
}
