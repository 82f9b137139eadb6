package mongodb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/drkit/drkit/internal/engine"
	"github.com/drkit/drkit/internal/sandbox"
	mgsnap "github.com/drkit/drkit/snapshots/mongodb"
)

var _ engine.Driller = Engine{}

// Sandbox implements engine.Driller: a mongod on a free port with its data
// in dir, or, where no mongod is installed, ferretdb-test (FerretDB, the
// test server `make deps` builds), that the restore fills (--target-dsn).
func (Engine) Sandbox(ctx context.Context, env engine.Env, dir string, record func(int) error) (engine.Sandbox, error) {
	port, err := sandbox.FreePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, fmt.Errorf("mongodb drill sandbox: %w", err)
	}
	var p *sandbox.Proc
	name := "mongod"
	if bin, err := sandbox.Find("mongod"); err == nil {
		p, err = sandbox.Start(dir, name, record, bin, "--dbpath", data, "--port", strconv.Itoa(port), "--bind_ip", "127.0.0.1")
		if err != nil {
			return nil, err
		}
	} else if bin, ferr := sandbox.Find("ferretdb-test"); ferr == nil {
		name = "ferretdb-test"
		p, err = sandbox.Start(dir, name, record, bin, "127.0.0.1:"+strconv.Itoa(port), data)
		if err != nil {
			return nil, err
		}
	} else {
		return nil, fmt.Errorf("mongodb drill sandbox: neither mongod nor ferretdb-test: %w (install mongod)", err)
	}
	url := fmt.Sprintf("mongodb://127.0.0.1:%d/", port)
	c, err := mongo.Connect(options.Client().ApplyURI(url).SetServerSelectionTimeout(time.Second))
	if err != nil {
		p.Stop()
		return nil, err
	}
	s := &mongoSandbox{proc: p, c: c, url: url, cluster: env.Cluster.Name, table: env.Cluster.Monitor.Heartbeat.Table}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := p.WaitReady(wctx, name, dir, func(ctx context.Context) error { return c.Ping(ctx, nil) }); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

type mongoSandbox struct {
	proc           *sandbox.Proc
	c              *mongo.Client
	url            string
	cluster, table string
}

func (s *mongoSandbox) RestoreFlags() map[string]string {
	return map[string]string{"target-dsn": s.url}
}

// Start: the restore filled a running server.
func (s *mongoSandbox) Start(context.Context) error { return nil }

// Newest reads the heartbeat document drd writes.
func (s *mongoSandbox) Newest(ctx context.Context) (time.Time, string, bool, error) {
	var doc struct {
		At time.Time `bson:"at"`
	}
	err := s.c.Database("drkit").Collection(s.table).FindOne(ctx, bson.D{{Key: "_id", Value: s.cluster}}).Decode(&doc)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, "", false, nil
	}
	if err != nil {
		return time.Time{}, "", false, fmt.Errorf("read heartbeat drkit.%s: %w", s.table, err)
	}
	return doc.At, "heartbeat drkit." + s.table, true, nil
}

func (s *mongoSandbox) Close() error {
	_ = s.c.Disconnect(context.Background())
	s.proc.Stop()
	return nil
}

var _ engine.TargetDriller = Engine{}

// DrillTarget implements engine.TargetDriller: the server at dsn, which
// must not be the cluster's primary or a replica.
func (Engine) DrillTarget(ctx context.Context, env engine.Env, dsn string) (engine.DrillTarget, error) {
	if err := engine.RefuseProduction(env.Cluster, dsn, mongoAddr); err != nil {
		return nil, err
	}
	c, err := mongo.Connect(options.Client().ApplyURI(dsn).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		return nil, fmt.Errorf("drill.target: %w", err)
	}
	if err := c.Ping(ctx, nil); err != nil {
		_ = c.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("drill.target: %w", err)
	}
	return &mongoSandbox{c: c, url: dsn, cluster: env.Cluster.Name, table: env.Cluster.Monitor.Heartbeat.Table}, nil
}

// mongoAddr is a connection string's first host (a drill target is one
// server).
func mongoAddr(dsn string) (string, error) {
	cs, err := connstring.ParseAndValidate(dsn)
	if err != nil {
		return "", err
	}
	if len(cs.Hosts) == 0 {
		return "", fmt.Errorf("no host in the connection string")
	}
	h := cs.Hosts[0]
	if !strings.Contains(h, ":") {
		h += ":27017"
	}
	return h, nil
}

// CheckEmpty implements engine.DrillTarget.
func (s *mongoSandbox) CheckEmpty(ctx context.Context) error { return mgsnap.CheckEmpty(ctx, s.c) }

// Clear implements engine.DrillTarget.
func (s *mongoSandbox) Clear(ctx context.Context) error { return mgsnap.ClearTarget(ctx, s.c) }
