package mongodb_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// A backup-set copy (drctl copy, scheduled copies:) into a region drd
// never shipped to restores there alone: the base and the oplog chain after
// it; a second copy moves only what is new.
func TestCopyThenRestoreFromTheCopy(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.ship(t)
	coll := e.c.Database("app").Collection("items")
	for i := range 20 {
		must(t)(coll.InsertOne(ctx, bson.D{{Key: "_id", Value: i}, {Key: "v", Value: "before"}}))
	}
	if _, err := mgsnap.Backup(ctx, e.src.URL(), e.regions[:1], "docs", testenv.Logger(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		must(t)(coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: i}}, bson.D{{Key: "v", Value: "after"}}))
		must(t)(coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: 19 - i}}))
		time.Sleep(flushInterval / 2)
	}
	e.waitShipped(t)
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ap := &storage.Region{Name: "ap", Store: st, Pipeline: &storage.Pipeline{Store: st, Region: "ap", Level: 1}}
	layout, err := snapshots.LayoutFor("mongodb")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := snapshots.CopySet(ctx, "docs", e.regions[0], ap, layout, snapshots.CopyOptions{Log: testenv.Logger(t)})
	if err != nil || len(rep.Backups) != 1 || rep.LogObjects == 0 {
		t.Fatalf("copy: %+v, %v", rep, err)
	}
	e.regions = append(e.regions, ap)
	want := dataset(t, e.c)
	dst, res := e.restore(t, 2, time.Time{})
	if got := dataset(t, dst.Client(t)); !maps.Equal(got, want) {
		t.Fatalf("restore from the copy (%d documents, %d entries) differs in %v", res.Docs, res.Entries, diff(got, want))
	}
	must(t)(coll.InsertOne(ctx, bson.D{{Key: "_id", Value: 100}, {Key: "v", Value: "later"}}))
	e.waitShipped(t)
	again, err := snapshots.CopySet(ctx, "docs", e.regions[0], ap, layout, snapshots.CopyOptions{Log: testenv.Logger(t)})
	if err != nil || len(again.Backups) != 0 || again.BackupsPresent != 1 || again.Copied == 0 || again.Skipped == 0 || again.Copied >= rep.Copied {
		t.Errorf("second copy: %+v, %v; want only the new oplog chunks copied (the first copied %d objects)", again, err, rep.Copied)
	}
}
