package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	mywal "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/internal/testenv/oapifake"
	"github.com/drkit/drkit/internal/testenv/route53fake"
	"github.com/drkit/drkit/storage"
)

// TestReplicaCommandsMariaDB drives the replica commands as an operator
// would: backup, replica create in region us, list, check (in sync, then
// drift found with its range and exit 1), promote with a DNS switch (Route 53
// is a labelled fake), and list again showing the new primary.
func TestReplicaCommandsMariaDB(t *testing.T) {
	src, target := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}, &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	testenv.Start(t, src, target)
	dir := t.TempDir()
	cfgPath := writeFile(t, fmt.Sprintf("regions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"clusters:\n  - {name: shop, engine: mysql, region: eu, dsn: '%[2]s', flush_interval: 200ms}\n", dir, src.DSN("")))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	db := src.Open(t, "")
	for _, q := range []string{"CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARCHAR(20))",
		"INSERT INTO shop.t SELECT seq, CONCAT('v', seq) FROM shop.seq_1_to_3000"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	ship(t, cfg)
	if code, out, errOut := drctl(t, "backup", "--config", cfgPath, "--cluster", "shop"); code != exitOK {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := db.Exec("INSERT INTO shop.t VALUES (3001, 'after backup')"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // two flush intervals: region us holds it

	code, out, errOut := drctl(t, "replica", "create", "--config", cfgPath, "--region", "us", "--name", "us-1", "--dsn", target.DSN(""))
	if code != exitOK || !strings.Contains(out, "replica us-1 of shop in region us is ready") {
		t.Fatalf("replica create: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = drctl(t, "replica", "list", "--config", cfgPath, "--json")
	var rows []replicaRow
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 || rows[0].Source != "catalog" || rows[0].Status != "ready" {
		t.Fatalf("replica list: exit %d\n%s", code, out)
	}
	if code, out, errOut = drctl(t, "replica", "check", "--config", cfgPath, "--chunk-rows", "1000"); code != exitOK || !strings.Contains(out, "replica us-1: in sync (1 tables, 4 chunks, 3001 rows") {
		t.Fatalf("replica check: exit %d\n%s%s", code, out, errOut)
	}
	rdb := target.Open(t, "")
	if _, err := rdb.Exec("SET SESSION sql_log_bin=0; UPDATE shop.t SET v='drift' WHERE id=1500"); err != nil {
		t.Fatal(err)
	}
	code, out, _ = drctl(t, "replica", "check", "--config", cfgPath, "--chunk-rows", "1000")
	if code != exitFailure || !strings.Contains(out, "shop.t [1001, 2001): primary 1000 rows, replica 1000 rows, contents differ") {
		t.Fatalf("replica check with drift: exit %d\n%s", code, out)
	}

	zone := route53fake.Start(t, "Z1")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	code, out, errOut = drctl(t, "promote", "--config", cfgPath, "--region", "us",
		"--dns-zone", "Z1", "--dns-name", "shop-db.example.com", "--dns-endpoint", zone.URL)
	if code != exitOK || !strings.Contains(out, "promoted us-1 (region us) to primary of shop") || !strings.Contains(out, "fenced") {
		t.Fatalf("promote: exit %d\n%s%s", code, out, errOut)
	}
	if got := zone.Record("Z1", "shop-db.example.com", "A"); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Fatalf("DNS record = %v", got)
	}
	code, out, _ = drctl(t, "replica", "list", "--config", cfgPath)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("primary: root@tcp(127.0.0.1:%d)/", target.Port)) || !strings.Contains(out, "(region us)") {
		t.Fatalf("replica list after promote: exit %d\n%s", code, out)
	}
	if code, _, errOut = drctl(t, "promote", "--config", cfgPath, "--region", "us"); code != exitNotFound {
		t.Fatalf("promote again: exit %d (want %d: no replica left)\n%s", code, exitNotFound, errOut)
	}
}

// ship runs the cluster's binlog shipper into every region until the test ends.
func ship(t *testing.T, cfg *config.Config) {
	t.Helper()
	cl := cfg.Clusters[0]
	sh := &mywal.Shipper{Cluster: cl.Name, DSN: cl.DSN, ServerID: cl.ServerID, FlushInterval: time.Duration(cl.FlushInterval), Log: testLog()}
	for _, rc := range cfg.Regions {
		r, err := regions.Open(context.Background(), cfg, rc.Name, storage.RegionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		sh.Targets = append(sh.Targets, &mywal.Target{Catalog: &mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for sh.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("the shipper did not start streaming")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestReplicaCommandsRedis: replica create on a Redis cluster, check in sync
// and then with a key changed on the replica alone (exit 1, the key's range
// shown), promote, with the cluster's failover: moving a public IP to the
// replica's stand-by VM on a FAKE OUTSCALE API (127.0.0.1 stands in for the
// public IP, which must answer on the replica's port).
func TestReplicaCommandsRedis(t *testing.T) {
	prim, target := &testenv.Redis{Password: "pw"}, &testenv.Redis{Password: "pw"}
	testenv.Start(t, prim, target)
	dir := t.TempDir()
	cloud := oapifake.NewCloud("AKTEST")
	t.Cleanup(cloud.Close)
	osc := cloud.AddRegion("eu-west-2", oapifake.OOS{})
	oldVM, standby := cloud.AddVM("eu-west-2"), cloud.AddVM("eu-west-2")
	cloud.AddPublicIP("eu-west-2", "127.0.0.1", oldVM)
	t.Setenv("OSC_ACCESS_KEY", "AKTEST")
	t.Setenv("OSC_SECRET_KEY", "secret")
	cfgPath := writeFile(t, fmt.Sprintf("regions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"outscale: {endpoints: {eu-west-2: '%[3]s'}}\n"+
		"clusters:\n  - {name: cache, engine: redis, region: eu, dsn: '%[2]s', failover: {public_ip: 127.0.0.1, region: eu-west-2, vms: {us-1: %[4]s}}}\n",
		dir, prim.URL(), osc.Endpoint(), standby))
	ctx := context.Background()
	pc, tc := prim.Client(t), target.Client(t)
	for i := range 2500 {
		if err := pc.Set(ctx, fmt.Sprintf("k%05d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := drctl(t, "replica", "create", "--config", cfgPath, "--region", "us", "--name", "us-1", "--dsn", target.URL(), "--force")
	if code != exitOK {
		t.Fatalf("replica create: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = drctl(t, "replica", "check", "--config", cfgPath); code != exitOK || !strings.Contains(out, "replica us-1: in sync (1 tables, 3 chunks, 2500 rows") {
		t.Fatalf("replica check: exit %d\n%s%s", code, out, errOut)
	}
	if err := tc.ConfigSet(ctx, "replica-read-only", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if err := tc.Set(ctx, "k01500", "drift", 0).Err(); err != nil {
		t.Fatal(err)
	}
	code, out, _ = drctl(t, "replica", "check", "--config", cfgPath)
	if code != exitFailure || !strings.Contains(out, "db0.keys [k01000, k02000): primary 1000 rows, replica 1000 rows, contents differ") {
		t.Fatalf("replica check with drift: exit %d\n%s", code, out)
	}
	if code, out, errOut = drctl(t, "promote", "--config", cfgPath, "--region", "us"); code != exitOK || !strings.Contains(out, "promoted us-1 (region us) to primary of cache") ||
		!strings.Contains(out, "public ip: public IP 127.0.0.1 moved to "+standby+" (from "+oldVM+")") {
		t.Fatalf("promote: exit %d\n%s%s", code, out, errOut)
	}
	if got := cloud.PublicIP("eu-west-2", "127.0.0.1"); got != standby {
		t.Errorf("the public IP is linked to %s after the promotion, want the stand-by %s", got, standby)
	}
	for _, region := range []string{"eu", "us"} {
		recs, _ := filepath.Glob(filepath.Join(dir, region, "cache", "replication", "primary.json"))
		b, err := os.ReadFile(recs[0])
		if err != nil || !strings.Contains(string(b), `"public_ip": "public IP 127.0.0.1 moved to `+standby) {
			t.Errorf("region %s's promotion record %v lacks the move: %s %v", region, recs, b, err)
		}
	}
}

// TestReplicaCheckMongoDB: drctl replica check on a MongoDB cluster whose
// replica (a second FerretDB with the same documents: FerretDB has no
// replica sets) is in sync, then holds a changed document (exit 1, its _id
// range shown); replica create is refused on FerretDB.
func TestReplicaCheckMongoDB(t *testing.T) {
	prim, rep := testenv.StartFerretDB(t), testenv.StartFerretDB(t)
	dir := t.TempDir()
	cfgPath := writeFile(t, fmt.Sprintf("regions:\n  - {name: eu, store: 'file://%[1]s/eu'}\n  - {name: us, store: 'file://%[1]s/us'}\n"+
		"clusters:\n  - name: docs\n    engine: mongodb\n    region: eu\n    dsn: '%[2]s'\n    replicas: [{name: us-1, region: us, dsn: '%[3]s'}]\n", dir, prim.URL(), rep.URL()))
	ctx := context.Background()
	var docs []any
	for i := range 1500 {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("k%05d", i)}, {Key: "n", Value: i}})
	}
	for _, c := range []*mongo.Client{prim.Client(t), rep.Client(t)} {
		if _, err := c.Database("app").Collection("items").InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := drctl(t, "replica", "check", "--config", cfgPath); code != exitOK || !strings.Contains(out, "replica us-1: in sync (1 tables, 2 chunks, 1500 rows") {
		t.Fatalf("replica check: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := rep.Client(t).Database("app").Collection("items").UpdateOne(ctx, bson.D{{Key: "_id", Value: "k01200"}}, bson.D{{Key: "$set", Value: bson.D{{Key: "n", Value: -1}}}}); err != nil {
		t.Fatal(err)
	}
	code, out, _ := drctl(t, "replica", "check", "--config", cfgPath)
	if code != exitFailure || !strings.Contains(out, `app.items ["k01000", +inf): primary 500 rows, replica 500 rows, contents differ`) {
		t.Fatalf("replica check with drift: exit %d\n%s", code, out)
	}
	// A replica is a member of the primary's replica set: FerretDB has none,
	// and the refusal says so before anything is registered.
	other := testenv.StartFerretDB(t)
	code, out, errOut := drctl(t, "replica", "create", "--config", cfgPath, "--region", "us", "--name", "us-2", "--dsn", other.URL())
	if code == exitOK || !strings.Contains(errOut, "cluster docs's primary is not a replica set member (a standalone mongod, or FerretDB)") {
		t.Fatalf("replica create on FerretDB: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := drctl(t, "replica", "list", "--config", cfgPath); code != exitOK || !strings.Contains(out, "us-1") || strings.Contains(out, "us-2") {
		t.Errorf("replica list after a refused create: exit %d\n%s%s; want us-1 and not us-2", code, out, errOut)
	}
}
