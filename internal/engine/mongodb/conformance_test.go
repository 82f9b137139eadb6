package mongodb

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/drkit/drkit/internal/engine/enginetest"
	"github.com/drkit/drkit/internal/testenv"
)

// The engine conformance suite on FerretDB (standing in for MongoDB, see
// testenv.FerretDB): drd's oplog shipping, base backups, restores into
// fresh servers, verify.
func TestConformance(t *testing.T) {
	enginetest.Run(t, enginetest.Harness{
		Engine: Name,
		Start: func(t *testing.T) (string, string) {
			return testenv.StartFerretDB(t).URL(), ""
		},
		Write: func(t *testing.T, dsn string, v int) {
			c := connect(t, dsn)
			if _, err := c.Database("app").Collection("stamps").InsertOne(context.Background(), bson.D{{Key: "_id", Value: v}}); err != nil {
				t.Fatal(err)
			}
			// A chunk per write, as the suite's log checks need several
			// (the flush interval is 200ms).
			time.Sleep(300 * time.Millisecond)
		},
		Target: func(t *testing.T) (map[string]string, func(t *testing.T) []int) {
			f := testenv.StartFerretDB(t)
			return map[string]string{"target-dsn": f.URL()}, func(t *testing.T) []int {
				return stamps(t, f.URL())
			}
		},
	})
}

func connect(t *testing.T, dsn string) *mongo.Client {
	t.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

func stamps(t *testing.T, dsn string) []int {
	t.Helper()
	cur, err := connect(t, dsn).Database("app").Collection("stamps").Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var docs []struct {
		ID int `bson:"_id"`
	}
	if err := cur.All(context.Background(), &docs); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, d := range docs {
		got = append(got, d.ID)
	}
	slices.Sort(got)
	return got
}
