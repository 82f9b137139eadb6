// Command mongoload writes the MongoDB benchmark's data (bench/mongodb.sh):
//
//	mongoload oplog URI            creates local.oplog.rs (FerretDB writes its entries there)
//	mongoload fill URI DOCS SIZE   DOCS documents of about SIZE bytes in app.items0..7
//	mongoload load URI SECONDS     inserts, replaces and deletes from 4 clients; prints ops/s
package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: mongoload fill URI DOCS SIZE | load URI SECONDS")
		os.Exit(2)
	}
	ctx := context.Background()
	c, err := mongo.Connect(options.Client().ApplyURI(os.Args[2]))
	if err != nil {
		fail(err)
	}
	defer c.Disconnect(ctx)
	switch os.Args[1] {
	case "oplog":
		fail(c.Database("local").CreateCollection(ctx, "oplog.rs", options.CreateCollection().SetCapped(true).SetSizeInBytes(8<<30)))
	case "fill":
		docs, _ := strconv.Atoi(os.Args[3])
		size, _ := strconv.Atoi(os.Args[4])
		fail(fill(ctx, c, docs, size))
	case "load":
		secs, _ := strconv.Atoi(os.Args[3])
		fail(load(ctx, c, time.Duration(secs)*time.Second))
	default:
		fail(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "mongoload:", err)
		os.Exit(1)
	}
}

// fill inserts docs documents spread over 8 collections, 4 at a time.
func fill(ctx context.Context, c *mongo.Client, docs, size int) error {
	pad := strings.Repeat("x", size)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for k := range 8 {
		wg.Go(func() {
			coll := c.Database("app").Collection("items" + strconv.Itoa(k))
			var batch []any
			for i := k; i < docs; i += 8 {
				batch = append(batch, bson.D{{Key: "_id", Value: objectID(i)}, {Key: "n", Value: i}, {Key: "pad", Value: pad}})
				if len(batch) == 1000 {
					if _, err := coll.InsertMany(ctx, batch); err != nil {
						errs[k] = err
						return
					}
					batch = batch[:0]
				}
			}
			if len(batch) > 0 {
				_, errs[k] = coll.InsertMany(ctx, batch)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// objectID is document i's _id: applications' documents mostly carry
// ObjectIDs, and FerretDB finds a document by an ObjectID or string _id
// through its primary key but by any other _id type with a whole-table scan
// (so replayed upserts of integer _ids would measure FerretDB's scans).
func objectID(i int) bson.ObjectID {
	var id bson.ObjectID
	binary.BigEndian.PutUint32(id[:4], 0x65000000)
	binary.BigEndian.PutUint64(id[4:], uint64(i))
	return id
}

// load runs inserts, replaces and deletes from 4 clients for d.
func load(ctx context.Context, c *mongo.Client, d time.Duration) error {
	var ops atomic.Int64
	end := time.Now().Add(d)
	coll := c.Database("app").Collection("load")
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; time.Now().Before(end); i++ {
				id := fmt.Sprintf("%d-%d", w, i)
				if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: "at", Value: time.Now()}}); err != nil {
					return
				}
				switch i % 3 {
				case 1:
					coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "at", Value: time.Now()}, {Key: "v", Value: i}})
				case 2:
					coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
				}
				ops.Add(2)
			}
		})
	}
	wg.Wait()
	fmt.Printf("%.0f\n", float64(ops.Load())/d.Seconds())
	return nil
}
