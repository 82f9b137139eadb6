package postgres_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/config"
	_ "github.com/drkit/drkit/internal/engine/postgres" // the engine's config rules (slot, heartbeat)
	"github.com/drkit/drkit/internal/regions"
	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/all"
)

// env is a primary, two file:// regions a restore can read, and the config.
type env struct {
	pg      *testenv.Postgres
	cfgPath string
	cfg     *config.Config
	regions []*storage.Region
	drctl   string
	work    string
}

func newEnv(t *testing.T) *env { return newEnvWith(t, "") }

// newEnvWith adds clusterYAML (indented keys) to the orders cluster's config.
func newEnvWith(t *testing.T, clusterYAML string) *env {
	t.Helper()
	return newEnvFull(t, testenv.SharedDir(t), &testenv.Postgres{}, clusterYAML)
}

// newEnvIn uses the given folder and (not yet started) server.
func newEnvIn(t *testing.T, work string, pg *testenv.Postgres) *env {
	t.Helper()
	return newEnvFull(t, work, pg, "")
}

func newEnvFull(t *testing.T, work string, pg *testenv.Postgres, clusterYAML string) *env {
	t.Helper()
	if !strings.Contains(clusterYAML, "flush_interval:") {
		clusterYAML = "    flush_interval: 200ms\n" + clusterYAML
	}
	e := &env{drctl: testenv.Binary(t, "drctl"), work: work, pg: pg}
	testenv.Start(t, e.pg)
	e.cfgPath = filepath.Join(e.work, "drkit.yaml")
	cfg := fmt.Sprintf(`regions:
  - name: eu
    store: file://%[1]s/eu?mode=0644
  - name: us
    store: file://%[1]s/us?mode=0644
clusters:
  - name: orders
    engine: postgres
    region: eu
    dsn: %[2]s
%[3]s`, e.work, e.pg.DSN("postgres"), clusterYAML)
	e.writeConfig(t, cfg)
	return e
}

// writeConfig writes and loads the config and opens its regions eu and us.
func (e *env) writeConfig(t *testing.T, cfg string) {
	t.Helper()
	if err := os.WriteFile(e.cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.cfg, err = config.Load(e.cfgPath); err != nil {
		t.Fatal(err)
	}
	e.regions = nil // a rewritten config opens them anew
	for _, name := range []string{"eu", "us"} {
		r, err := regions.Open(context.Background(), e.cfg, name, storage.RegionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.regions = append(e.regions, r)
	}
}

// ship runs a WAL shipper into both regions until the test ends.
func (e *env) ship(t *testing.T) {
	t.Helper()
	cl := e.cfg.Clusters[0]
	sh := &pgwal.Shipper{Cluster: cl.Name, DSN: cl.DSN, Slot: cl.Slot, FlushInterval: time.Duration(cl.FlushInterval), Log: testenv.Logger(t)}
	for _, r := range e.regions {
		sh.Targets = append(sh.Targets, &pgwal.Target{Catalog: &pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}, Required: true})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func (e *env) backup(t *testing.T) pgsnap.Manifest {
	t.Helper()
	m, err := pgsnap.Backup(context.Background(), pgsnap.BackupOptions{Cluster: "orders", DSN: e.pg.DSN("postgres"), Regions: e.regions, Log: testenv.Logger(t), ChunkSize: 1 << 20})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return m
}

// waitShipped waits until both regions hold the primary's current WAL.
func (e *env) waitShipped(t *testing.T, conn *pgx.Conn) {
	t.Helper()
	e.waitShippedOn(t, conn, 1)
}

// restore runs drctl restore (a real process: PostgreSQL will run its
// wal-fetch) into a new folder and returns the folder and port.
func (e *env) restore(t *testing.T, args ...string) (dataDir string, port int, out string, err error) {
	t.Helper()
	dataDir = filepath.Join(testenv.OwnedDir(t, "postgres"), "data")
	port = testenv.FreePort(t)
	bin, berr := pgsnap.BinDir("15")
	if berr == nil {
		testenv.StopDataDir(t, bin, dataDir)
	}
	cmd := exec.Command(e.drctl, append([]string{"restore", "--config", e.cfgPath, "--cluster", "orders", "--target-dir", dataDir, "--port", strconv.Itoa(port)}, args...)...)
	b, err := cmd.CombinedOutput()
	return dataDir, port, string(b), err
}

func connect(t *testing.T, port int) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestPITR: commits stamped every ~100 ms; a restore to a time between two of
// them from the second region holds exactly the commits at or before it.
func TestPITR(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE stamps (id int PRIMARY KEY, ts timestamptz NOT NULL)")
	e.backup(t)
	var stamps []time.Time
	for i := 1; i <= 20; i++ {
		var ts time.Time
		if err := conn.QueryRow(context.Background(), "INSERT INTO stamps VALUES ($1, clock_timestamp()) RETURNING ts", i).Scan(&ts); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, ts)
		time.Sleep(100 * time.Millisecond)
	}
	e.waitShipped(t, conn)
	target := stamps[11].Add(stamps[12].Sub(stamps[11]) / 2) // after commit 12, before 13

	dataDir, port, out, err := e.restore(t, "--to-region", "us", "--target-time", target.Format(time.RFC3339Nano), "--start")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	r := connect(t, port)
	var n, maxID int
	if err := r.QueryRow(context.Background(), "SELECT count(*), max(id) FROM stamps").Scan(&n, &maxID); err != nil {
		t.Fatal(err)
	}
	if n != 12 || maxID != 12 {
		t.Fatalf("restored %d rows up to id %d; want exactly the 12 committed at or before %s", n, maxID, target)
	}
	var inRecovery bool
	if err := r.QueryRow(context.Background(), "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Fatalf("restored server still in recovery (%v)", err)
	}
	t.Logf("restored %d rows into %s on port %d", n, dataDir, port)
}

// TestRestoreLatestAndVerifyBackup: without a target, a restore reaches the last
// commit (partial segment included); pg_verifybackup accepts the unpacked folder.
func TestRestoreLatestAndVerifyBackup(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (id int)")
	e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(1, 1000)")
	e.waitShipped(t, conn)

	// Unpacked but not started: pg_verifybackup checks files and WAL.
	dataDir, _, out, err := e.restore(t, "--to-region", "eu")
	if err != nil {
		t.Fatalf("drctl restore: %v\n%s", err, out)
	}
	verifyBackup(t, dataDir)

	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("drctl restore --start: %v\n%s", err, out)
	}
	var n int
	if err := connect(t, port).QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1000 {
		t.Fatalf("latest restore has %d rows (%v), want 1000", n, err)
	}
}

// verifyBackup runs pg_verifybackup on a restored, not yet started folder.
func verifyBackup(t *testing.T, dataDir string) {
	t.Helper()
	bin, err := pgsnap.BinDir("15")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(filepath.Join(bin, "pg_verifybackup"), dataDir).CombinedOutput(); err != nil {
		t.Fatalf("pg_verifybackup %s: %v\n%s", dataDir, err, b)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func splitLines(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") }
func joinLines(l []string) string  { return strings.Join(l, "\n") }
