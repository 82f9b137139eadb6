package mongodb_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/drkit/drkit/internal/testenv"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
	"github.com/drkit/drkit/storage"
)

// drd is stopped, and the server's oplog rolls over past what the regions
// hold (here: local.oplog.rs dropped and created again, which is what a
// capped oplog shorter than the pause amounts to). The restarted shipper
// starts a new chain and says so; verify names the gap; a restore of the
// older base stops at its chain's end and never crosses; a base taken after
// the gap restores whole. A corrupted chunk is named by verify.
func TestOplogRolloverIsAGap(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	items := e.c.Database("app").Collection("items")
	e.ship(t)
	must(t)(items.InsertOne(ctx, bson.D{{Key: "_id", Value: "before"}}))
	if _, err := mgsnap.Backup(ctx, e.src.URL(), e.regions, "docs", testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	must(t)(items.InsertOne(ctx, bson.D{{Key: "_id", Value: "after-first-backup"}}))
	e.waitShipped(t)
	e.stop()

	local := e.c.Database("local")
	if err := local.Collection("oplog.rs").Drop(ctx); err != nil {
		t.Fatal(err)
	}
	must(t)(items.InsertOne(ctx, bson.D{{Key: "_id", Value: "lost"}})) // no oplog: never shipped
	if err := local.CreateCollection(ctx, "oplog.rs", options.CreateCollection().SetCapped(true).SetSizeInBytes(1<<30)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // a later second than the region's end
	must(t)(items.InsertOne(ctx, bson.D{{Key: "_id", Value: "after-rollover"}}))
	e.ship(t)
	e.waitShipped(t)

	rep, err := mgsnap.Verify(ctx, e.regions[1].Pipeline, "docs", false, nil)
	if err != nil || rep.OK || len(rep.Chains) != 2 || !strings.Contains(strings.Join(rep.Problems, "\n"), "rolled over") {
		t.Fatalf("verify after an oplog rollover: %+v, %v; want two chains and the gap named", rep, err)
	}
	dst, res := e.restore(t, 1, time.Time{})
	if got := ids(t, dst); strings.Join(got, ",") != "after-first-backup,before" {
		t.Errorf("restore of the base before the gap holds %v (%d entries replayed); want what its chain holds, not crossing the gap", got, res.Entries)
	}

	b2, err := mgsnap.Backup(ctx, e.src.URL(), e.regions, "docs", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	must(t)(items.InsertOne(ctx, bson.D{{Key: "_id", Value: "after-second-backup"}}))
	e.waitShipped(t)
	dst, _ = e.restore(t, 0, time.Time{})
	if got := strings.Join(ids(t, dst), ","); got != "after-first-backup,after-rollover,after-second-backup,before,lost" {
		t.Errorf("restore of backup %s after the gap holds %s", b2.ID, got)
	}

	// A time past what the region holds is refused.
	target := testenv.StartFerretDB(t)
	_, err = mgsnap.Restore(ctx, mgsnap.RestoreOptions{Cluster: "docs", Region: e.regions[0], TargetDSN: target.URL(), Stop: time.Now().Add(time.Hour), Log: testenv.Logger(t)})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("restore to an hour from now: %v; want not found", err)
	}
}

func ids(t *testing.T, f *testenv.FerretDB) []string {
	t.Helper()
	cur, err := f.Client(t).Database("app").Collection("items").Find(context.Background(), bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range docs {
		out = append(out, d.ID)
	}
	return out
}
