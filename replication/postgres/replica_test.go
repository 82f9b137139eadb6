package postgres_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	_ "github.com/drkit/drkit/internal/engine/postgres" // the engine's config rules (slot, heartbeat)
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/replication"
	pgrepl "github.com/drkit/drkit/replication/postgres"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all"
)

// env is a primary shipping WAL into file:// regions eu and us (in a folder
// the postgres user can read: standbys run drctl wal-fetch), with a base
// backup and a table of 5000 rows.
type env struct {
	pg      *testenv.Postgres
	conn    *pgx.Conn
	cfgPath string
	cfg     *config.Config
	regions []*storage.Region
	drctl   string
	cat     *replication.Catalog
	stop    func()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	work := testenv.SharedDir(t)
	e := &env{pg: &testenv.Postgres{}, drctl: testenv.Binary(t, "drctl"), cfgPath: filepath.Join(work, "drkit.yaml")}
	testenv.Start(t, e.pg)
	cfg := fmt.Sprintf("regions:\n  - name: eu\n    store: file://%[1]s/eu?mode=0644\n  - name: us\n    store: file://%[1]s/us?mode=0644\n"+
		"clusters:\n  - name: orders\n    engine: postgres\n    region: eu\n    dsn: %[2]s\n    flush_interval: 200ms\n", work, e.pg.DSN("postgres"))
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.cfg, err = config.Load(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"eu", "us"} {
		r, err := regions.Open(context.Background(), e.cfg, name, storage.RegionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.regions = append(e.regions, r)
	}
	e.cat = &replication.Catalog{Cluster: "orders", Regions: e.regions}
	e.conn = connect(t, e.pg.DSN("postgres"))
	e.ship(t)
	testenv.PGExec(t, e.conn, "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric)")
	testenv.PGExec(t, e.conn, "CREATE TABLE lines (order_id int, line int, qty int, PRIMARY KEY (order_id, line))")
	testenv.PGExec(t, e.conn, "INSERT INTO items SELECT g, 'item ' || g, g % 100 FROM generate_series(1, 5000) g")
	testenv.PGExec(t, e.conn, "INSERT INTO lines SELECT o, l, l FROM generate_series(1, 100) o, generate_series(1, 3) l")
	if _, err := pgsnap.Backup(context.Background(), pgsnap.BackupOptions{Cluster: "orders", DSN: e.pg.DSN("postgres"), Regions: e.regions, Log: testenv.Logger(t), ChunkSize: 4 << 20}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	testenv.PGExec(t, e.conn, "INSERT INTO items SELECT g, 'later ' || g, 1 FROM generate_series(5001, 6000) g")
	return e
}

func (e *env) ship(t *testing.T) {
	cl := e.cfg.Clusters[0]
	sh := &pgwal.Shipper{Cluster: cl.Name, DSN: cl.DSN, Slot: cl.Slot, FlushInterval: time.Duration(cl.FlushInterval), Log: testenv.Logger(t)}
	for _, r := range e.regions {
		sh.Targets = append(sh.Targets, &pgwal.Target{Catalog: &pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}, Required: true})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(e.stop)
}

// waitShipped waits until region us holds the primary's current WAL.
func (e *env) waitShipped(t *testing.T) {
	t.Helper()
	var lsn string
	if err := e.conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	want, _ := pgwal.ParseLSN(lsn)
	testenv.WaitFor(t, 30*time.Second, "region us holds "+lsn, func() bool {
		st := pgsnap.Status(context.Background(), e.regions[1].Pipeline, "orders", nil, time.Now())
		have, err := pgwal.ParseLSN(st.DurableLSN)
		return err == nil && have >= want
	})
}

// standby returns a new data folder and a DSN on a free port, with the
// server stopped when the test ends.
func standby(t *testing.T) (dir, dsn string) {
	t.Helper()
	dir = filepath.Join(testenv.OwnedDir(t, "postgres"), "data")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	bin, err := pgsnap.BinDir("15")
	if err != nil {
		t.Fatal(err)
	}
	testenv.StopDataDir(t, bin, dir)
	return dir, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func (e *env) create(t *testing.T, name, dir, dsn string, fromStore bool) (pgrepl.CreateResult, error) {
	t.Helper()
	q := func(s string) string { return `"` + s + `"` }
	return pgrepl.Create(context.Background(), pgrepl.CreateOptions{Cluster: e.cfg.Clusters[0], Name: name, Region: e.regions[1],
		DSN: dsn, DataDir: dir, FromStore: fromStore, Catalog: e.cat, Log: testenv.Logger(t),
		RestoreCommand: fmt.Sprintf("%s wal-fetch --config %s --cluster orders --region us %%f %%p", q(e.drctl), q(e.cfgPath))})
}

func (e *env) check(t *testing.T, dsn string) replication.Report {
	t.Helper()
	ctx := context.Background()
	p, err := pgrepl.OpenSide(ctx, "primary", e.pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Pool.Close()
	r, err := pgrepl.OpenSide(ctx, "standby", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Pool.Close()
	rep, err := (&replication.Checker{Primary: p, Replica: r, ChunkRows: 1000, Log: testenv.Logger(t)}).Run(ctx)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func count(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// TestStreamingStandbyFromStoreThenPromoteAfterCrash: a standby made from
// region us's base backup and WAL streams from the primary through its own
// slot, checks in sync chunk by chunk; bad input changes nothing; after the
// primary is killed it is promoted with every row the store held.
func TestStreamingStandbyFromStoreThenPromoteAfterCrash(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dir, dsn := standby(t)
	res, err := e.create(t, "us-1", dir, dsn, false)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if res.Existing || res.Backup == "" || res.Record.Status != replication.RecordReady {
		t.Fatalf("create: %+v", res)
	}
	sb := connect(t, dsn)
	testenv.PGExec(t, e.conn, "INSERT INTO items VALUES (7000, 'after create', 1)")
	testenv.WaitFor(t, 30*time.Second, "the standby has the new row", func() bool {
		return count(t, sb, "SELECT count(*) FROM items WHERE id = 7000") == 1
	})
	testenv.WaitFor(t, 30*time.Second, "the standby streams from the primary through its slot", func() bool {
		return count(t, e.conn, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'us-1' AND state = 'streaming'") == 1 &&
			count(t, e.conn, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'drkit_replica_us_1' AND active") == 1
	})
	if rep := e.check(t, dsn); !rep.InSync() || rep.Tables != 2 || rep.Rows != 6001+300 || rep.Chunks != 8 {
		t.Fatalf("check: %+v", rep)
	}
	if again, err := e.create(t, "us-1", dir, dsn, false); err != nil || !again.Existing {
		t.Fatalf("create again: %+v, %v", again, err)
	}

	// Bad input.
	busyDir, _ := standby(t)
	if _, err := e.create(t, "bad", busyDir, dsn, false); err == nil || !strings.Contains(err.Error(), "already answers") {
		t.Fatalf("a taken port: %v", err)
	}
	if _, err := e.create(t, "bad", filepath.Dir(dir), dsn, false); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a non-empty folder: %v", err)
	}
	down := e.cfg.Clusters[0]
	down.DSN = "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable"
	freeDir, freeDSN := standby(t)
	if _, err := pgrepl.Create(ctx, pgrepl.CreateOptions{Cluster: down, Name: "bad", Region: e.regions[1], DSN: freeDSN, DataDir: freeDir, Catalog: e.cat}); err == nil || !strings.Contains(err.Error(), "--from-store") {
		t.Fatalf("an unreachable primary: %v", err)
	}
	if entries, _ := os.ReadDir(freeDir); len(entries) != 0 {
		t.Fatalf("a refused create wrote %d files", len(entries))
	}
	if _, err := e.cat.Get(ctx, "bad"); err == nil {
		t.Fatal("a refused create was registered")
	}

	testenv.PGExec(t, e.conn, "INSERT INTO items SELECT g, 'last', 2 FROM generate_series(8001, 8500) g")
	e.waitShipped(t)
	if err := e.pg.Kill(); err != nil {
		t.Fatal(err)
	}
	e.stop()
	pr, err := pgrepl.Promote(ctx, pgrepl.PromoteOptions{Cluster: "orders", PrimaryDSN: e.pg.DSN("postgres"), Region: e.regions[1],
		Replica: config.Replica{Name: "us-1", Region: "us", DSN: dsn}, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if pr.Promotion.Fenced || pr.Gap != "" || !strings.HasPrefix(pr.Promotion.Position, "timeline 2, ") {
		t.Fatalf("promote: %+v", pr)
	}
	if n := count(t, sb, "SELECT count(*) FROM items"); n != 6501 {
		t.Fatalf("the promoted standby has %d items, want the 6501 the store held", n)
	}
	testenv.PGExec(t, sb, "INSERT INTO items VALUES (9000, 'new primary', 1)")
}

// TestFromStoreStandbyAndSwitchover: a standby that never connects to the
// primary replays what drd ships to region us; promoting it with the
// primary up fences the primary first and loses nothing.
func TestFromStoreStandbyAndSwitchover(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dir, dsn := standby(t)
	if _, err := e.create(t, "us-store", dir, dsn, true); err != nil {
		t.Fatalf("create --from-store: %v", err)
	}
	if n := count(t, e.conn, "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'us-store'"); n != 0 {
		t.Fatal("a from-store standby connected to the primary")
	}
	testenv.PGExec(t, e.conn, "INSERT INTO items SELECT g, 'x', 3 FROM generate_series(10001, 10100) g")
	pr, err := pgrepl.Promote(ctx, pgrepl.PromoteOptions{Cluster: "orders", PrimaryDSN: e.pg.DSN("postgres"), Region: e.regions[1],
		Replica: config.Replica{Name: "us-store", Region: "us", DSN: dsn}, Wait: time.Minute, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if !pr.Promotion.Fenced {
		t.Fatalf("the old primary was not fenced: %+v", pr)
	}
	old := connect(t, e.pg.DSN("postgres"))
	if _, err := old.Exec(ctx, "INSERT INTO items VALUES (20000, 'after fence', 1)"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Fatalf("the fenced primary took a write: %v", err)
	}
	sb := connect(t, dsn)
	if n := count(t, sb, "SELECT count(*) FROM items"); n != 6100 {
		t.Fatalf("the new primary has %d items, want 6100", n)
	}
}
