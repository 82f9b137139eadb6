package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	mywal "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	drkitregions "github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/replication"
	myrepl "github.com/drkit/drkit/replication/mysql"
	rdrepl "github.com/drkit/drkit/replication/redis"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
)

// TestDrdWatchesRegisteredReplicas: a replica made by replication/mysql is
// registered in the catalog only (not in the config); drd probes it, shows it
// streaming, finds drift with its scheduled check, and when a promotion is
// recorded restarts itself on the promoted replica and ships its writes.
func TestDrdWatchesRegisteredReplicas(t *testing.T) {
	src, target := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, target)
	dir, addr := t.TempDir(), freeAddr(t)
	cfgPath := writeConfig(t, fmt.Sprintf(`drd:
  listen: %[1]s
regions:
  - {name: eu, store: 'file://%[2]s/eu?mode=0644'}
  - {name: us, store: 'file://%[2]s/us?mode=0644'}
clusters:
  - name: shop
    engine: mysql
    region: eu
    dsn: '%[3]s'
    flush_interval: 200ms
    monitor: {interval: 1s}
    sync_check: {schedule: '@every 3s', chunk_rows: 500}
`, addr, dir, src.DSN("")))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	db := src.Open(t, "")
	for _, q := range []string{"CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, v INT)",
		"INSERT INTO shop.t SELECT seq, seq FROM shop.seq_1_to_2000"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var regions []*storage.Region
	for _, rc := range cfg.Regions {
		r, err := drkitregions.Open(context.Background(), cfg, rc.Name, storage.RegionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	cat := &replication.Catalog{Cluster: "shop", Regions: regions}
	stopShipping := shipOnce(t, cfg, regions)
	if _, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: regions}); err != nil {
		t.Fatal(err)
	}
	if _, err := myrepl.Create(context.Background(), myrepl.CreateOptions{Cluster: cfg.Clusters[0], Name: "us-1", Region: regions[1], DSN: target.DSN(""), Catalog: cat}); err != nil {
		t.Fatalf("create replica: %v", err)
	}
	stopShipping()

	cmd, logs := startDrd(t, "--config", cfgPath)
	metrics := "http://" + addr + "/metrics"
	waitUntil(t, 30*time.Second, "drd shows the registered replica streaming", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, `drkit_replica_state{cluster="shop",engine="mysql",kind="streaming",region="us",replica="us-1"} 1`) &&
			strings.Contains(body, `drkit_replica_drift_chunks{cluster="shop",engine="mysql",region="us",replica="us-1"} 0`)
	}, logs)
	if _, err := target.Open(t, "").Exec("SET SESSION sql_log_bin=0; DELETE FROM shop.t WHERE id = 1234"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the scheduled check finds the missing row", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, `drkit_replica_drift_chunks{cluster="shop",engine="mysql",region="us",replica="us-1"} 1`) &&
			strings.Contains(body, `drkit_replica_in_sync{cluster="shop",engine="mysql",region="us",replica="us-1"} 0`)
	}, logs)
	if _, body := get(t, "http://"+addr+"/api/v1/schedules"); !strings.Contains(body, `"check-shop"`) || !strings.Contains(body, "drift in 1 chunk(s) of shop.t") {
		t.Fatalf("schedules: %s", body)
	}

	if err := cat.Promoted(context.Background(), replication.Promotion{Cluster: "shop", Replica: "us-1", Region: "us", DSN: target.DSN(""), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// drd re-executes itself (same process) on the promoted replica and ships
	// what is written there from where the regions stand.
	waitUntil(t, 40*time.Second, "drd restarts on the promoted replica", func() bool {
		return strings.Contains(logs.String(), "drd: restarting: cluster shop: replica us-1 was promoted to primary") &&
			strings.Contains(logs.String(), "following the recorded promotion")
	}, logs)
	newPrimary := target.Open(t, "")
	for _, q := range []string{"STOP SLAVE", "SET GLOBAL read_only=0", "INSERT INTO shop.t VALUES (5000, 5000)"} {
		if _, err := newPrimary.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var want string
	if err := newPrimary.QueryRow("SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
		t.Fatal(err)
	}
	wantPos, err := mywal.ParsePos(want)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		c := &mywal.Catalog{Pipeline: r.Pipeline, Cluster: "shop"}
		waitUntil(t, 30*time.Second, "region "+r.Name+" holds the new primary's write "+want, func() bool {
			end, _, ok, err := c.End(context.Background())
			return err == nil && ok && end.Covers(wantPos)
		}, logs)
	}
	select {
	case err := <-done:
		t.Fatalf("drd exited (%v) instead of restarting itself\n%s", err, logs.String())
	default:
	}
}

func waitUntil(t *testing.T, within time.Duration, what string, ok func() bool, logs *logBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s\ndrd's log:\n%s", within, what, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// shipOnce streams the cluster's binlog into the regions until the returned
// func is called (before drd takes over).
func shipOnce(t *testing.T, cfg *config.Config, regions []*storage.Region) func() {
	t.Helper()
	cl := cfg.Clusters[0]
	sh := &mywal.Shipper{Cluster: cl.Name, DSN: cl.DSN, ServerID: cl.ServerID + 1, FlushInterval: 200 * time.Millisecond, Log: slog.New(slog.DiscardHandler)}
	for _, r := range regions {
		sh.Targets = append(sh.Targets, &mywal.Target{Catalog: &mywal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	deadline := time.Now().Add(30 * time.Second)
	for sh.Ready() != nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // the inserts made before it started reach both regions
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestDrdWatchesRedisReplica: a Redis cluster has no shipper, but drd probes
// its registered replica (up, link, lag from the heartbeat key), runs the
// scheduled check and finds a key changed on the replica alone; a stopped
// replica is reported down with no lag.
func TestDrdWatchesRedisReplica(t *testing.T) {
	prim, rep := &testenv.Redis{Password: "pw"}, &testenv.Redis{Password: "pw"}
	testenv.Start(t, prim, rep)
	dir, addr := t.TempDir(), freeAddr(t)
	cfgPath := writeConfig(t, fmt.Sprintf(`drd:
  listen: %[1]s
regions:
  - {name: eu, store: 'file://%[2]s/eu?mode=0644'}
  - {name: us, store: 'file://%[2]s/us?mode=0644'}
clusters:
  - name: cache
    engine: redis
    region: eu
    dsn: '%[3]s'
    monitor: {interval: 1s}
    sync_check: {schedule: '@every 2s', chunk_rows: 100}
`, addr, dir, prim.URL()))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	pc := prim.Client(t)
	for i := range 500 {
		if err := pc.Set(ctx, fmt.Sprintf("k%03d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var regions []*storage.Region
	for _, rc := range cfg.Regions {
		r, err := drkitregions.Open(ctx, cfg, rc.Name, storage.RegionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		regions = append(regions, r)
	}
	cat := &replication.Catalog{Cluster: "cache", Regions: regions}
	if _, err := rdrepl.Create(ctx, rdrepl.CreateOptions{Cluster: cfg.Clusters[0], Name: "us-1", Region: "us", DSN: rep.URL(), Catalog: cat, Force: true}); err != nil {
		t.Fatalf("create replica: %v", err)
	}

	_, logs := startDrd(t, "--config", cfgPath)
	metrics := "http://" + addr + "/metrics"
	const labels = `{cluster="cache",engine="redis",region="us",replica="us-1"}`
	waitUntil(t, 30*time.Second, "drd shows the registered Redis replica streaming and in sync", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, `drkit_replica_state{cluster="cache",engine="redis",kind="streaming",region="us",replica="us-1"} 1`) &&
			strings.Contains(body, "drkit_replication_link_up"+labels+" 1") &&
			strings.Contains(body, "drkit_replication_lag_bytes"+labels+" 0") &&
			strings.Contains(body, "drkit_replica_drift_chunks"+labels+" 0")
	}, logs)
	if _, body := get(t, "http://"+addr+"/api/v1/status"); !strings.Contains(body, `"lag_source":"heartbeat"`) {
		t.Fatalf("status: the lag comes from the heartbeat key: %s", body)
	}
	rc := rep.Client(t)
	if err := rc.ConfigSet(ctx, "replica-read-only", "no").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.Set(ctx, "k250", "drift", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the scheduled check finds the changed key", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, "drkit_replica_drift_chunks"+labels+" 1") &&
			strings.Contains(body, "drkit_replica_in_sync"+labels+" 0")
	}, logs)
	if err := rep.Kill(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the killed replica is down, with no lag", func() bool {
		_, body := get(t, metrics)
		return strings.Contains(body, "drkit_up"+labels+" 0") && !strings.Contains(body, "drkit_replication_lag_bytes"+labels)
	}, logs)
}
