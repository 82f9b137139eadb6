package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// imageMongo is the docker provider's MongoDB, run as a one-member replica
// set so that it has an oplog.
const imageMongo = "mongo:7.0"

// RealMongo returns the URL of a real MongoDB replica set member, for the
// paths FerretDB cannot show (c entries, transactions, $v:2 updates, the
// majority read concern): DRKIT_TEST_MONGO_URI when set (a throwaway
// replica set: tests write to it and ship its whole oplog), else with
// DRKIT_TEST_PROVIDER=docker a mongo:7.0 container initiated as replica set
// rs0. Without either the test is skipped, saying why: no mongod can be
// installed on the machines CI runs on.
func RealMongo(tb testing.TB) string {
	tb.Helper()
	if uri := os.Getenv("DRKIT_TEST_MONGO_URI"); uri != "" {
		return uri
	}
	docker, err := useDocker()
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	if !docker {
		tb.Skip("needs a real MongoDB replica set: set DRKIT_TEST_MONGO_URI, or DRKIT_TEST_PROVIDER=docker with a Docker engine (no mongod can be installed here; FerretDB covers the rest)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := runContainer(ctx, tb, imageMongo, "27017/tcp", nil, []string{"mongod", "--replSet", "rs0", "--bind_ip_all"})
	if err != nil {
		tb.Fatalf("testenv: start %s: %v", imageMongo, err)
	}
	uri := fmt.Sprintf("mongodb://%s:%d/?directConnection=true", c.host, c.port)
	if err := initiate(ctx, uri); err != nil {
		tb.Fatalf("testenv: %s: %v", imageMongo, err)
	}
	return uri
}

// initiate makes the server a one-member replica set and waits until it is
// its writable primary.
func initiate(ctx context.Context, uri string) error {
	cl, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return err
	}
	defer cl.Disconnect(context.Background())
	admin := cl.Database("admin")
	cfg := bson.D{{Key: "_id", Value: "rs0"}, {Key: "members", Value: bson.A{bson.D{{Key: "_id", Value: 0}, {Key: "host", Value: "localhost:27017"}}}}}
	if err := pollReady(ctx, "mongod", func(ctx context.Context) error {
		return admin.RunCommand(ctx, bson.D{{Key: "replSetInitiate", Value: cfg}}).Err()
	}); err != nil {
		return err
	}
	return pollReady(ctx, "mongod's primary", func(ctx context.Context) error {
		var h struct {
			IsWritablePrimary bool `bson:"isWritablePrimary"`
		}
		if err := admin.RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&h); err != nil {
			return err
		}
		if !h.IsWritablePrimary {
			return errors.New("not primary yet")
		}
		return nil
	})
}
