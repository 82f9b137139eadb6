package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// FerretDB is a throwaway FerretDB (./bin/ferretdb-test, SQLite backend),
// standing in for MongoDB: no mongod can be installed here. Start creates
// its capped local.oplog.rs, into which FerretDB then writes an i, u or d
// entry for every document written (see the MongoDB issue for its limits).
type FerretDB struct {
	// Port is the TCP port on 127.0.0.1; set by Start and kept by Restart.
	Port int
	// Dir is the server's folder (its SQLite files under data/); set by Start.
	Dir string

	proc *proc
}

// StartFerretDB starts a FerretDB with an oplog and returns it.
func StartFerretDB(tb testing.TB) *FerretDB {
	tb.Helper()
	f := &FerretDB{}
	Start(tb, f)
	return f
}

// URL returns a mongodb:// URL of the server.
func (f *FerretDB) URL() string {
	return fmt.Sprintf("mongodb://127.0.0.1:%d/", f.Port)
}

// Client returns a client of f, disconnected when the test ends.
func (f *FerretDB) Client(tb testing.TB) *mongo.Client {
	tb.Helper()
	c, err := mongo.Connect(options.Client().ApplyURI(f.URL()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c
}

// Kill SIGKILLs the server.
func (f *FerretDB) Kill() error { return f.proc.kill() }

// Restart starts the server again on its folder and port after Kill.
func (f *FerretDB) Restart(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := f.run(ctx); err != nil {
		tb.Fatalf("testenv: restart FerretDB: %v", err)
	}
}

func (f *FerretDB) start(ctx context.Context, tb testing.TB) error {
	var err error
	if f.Dir, err = tempDir("ferretdb", account{}); err != nil {
		return err
	}
	registerCleanup(tb, cleanup(&f.proc, f.Dir, syscall.SIGTERM))
	if f.Port, err = freePort(); err != nil {
		return err
	}
	if err := f.run(ctx); err != nil {
		return err
	}
	return f.createOplog(ctx)
}

func (f *FerretDB) run(ctx context.Context) error {
	bin, err := findBinary("ferretdb-test")
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", f.Port)
	if f.proc, err = startProc("ferretdb-test", account{}, filepath.Join(f.Dir, "ferretdb.log"), nil, bin, addr, filepath.Join(f.Dir, "data")); err != nil {
		return err
	}
	return f.proc.waitReady(ctx, f.ready)
}

func (f *FerretDB) ready(ctx context.Context) error {
	c, err := mongo.Connect(options.Client().ApplyURI(f.URL()).SetServerSelectionTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	return c.Ping(ctx, nil)
}

// createOplog creates local.oplog.rs as a replica set member has it.
func (f *FerretDB) createOplog(ctx context.Context) error {
	c, err := mongo.Connect(options.Client().ApplyURI(f.URL()))
	if err != nil {
		return err
	}
	defer c.Disconnect(context.Background())
	err = c.Database("local").CreateCollection(ctx, "oplog.rs", options.CreateCollection().SetCapped(true).SetSizeInBytes(1<<30))
	if err != nil {
		return fmt.Errorf("create local.oplog.rs: %w", err)
	}
	return c.Database("local").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
}
