package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
	"github.com/drkit/drkit/storage"
)

// newS3Env is a primary and two regions on two MinIO servers; the cluster
// ships to eu only, so us is a region added after the backups exist.
func newS3Env(t *testing.T) (*env, *testenv.MinIO, *testenv.MinIO) {
	t.Helper()
	testenv.UseS3Credentials()
	a, b := &testenv.MinIO{}, &testenv.MinIO{}
	e := &env{drctl: testenv.Binary(t, "drctl"), work: testenv.SharedDir(t), pg: &testenv.Postgres{}}
	testenv.Start(t, e.pg, a, b)
	e.cfgPath = filepath.Join(e.work, "drkit.yaml")
	cfg := fmt.Sprintf(`drd:
  state_dir: %[1]s/state
regions:
  - name: eu
    store: %[2]s
  - name: us
    store: %[3]s
clusters:
  - name: orders
    engine: postgres
    region: eu
    dsn: %[4]s
    ship_to: [eu]
    flush_interval: 200ms
`, e.work, a.StoreURL("eu"), b.StoreURL("us"), e.pg.DSN("postgres"))
	e.writeConfig(t, cfg)
	return e, a, b
}

// TestCopyMakesALateRegionRestorable: backups and WAL exist in eu only; a
// copy interrupted midway leaves no complete backup in us, the rerun resumes
// (skipping what arrived) and makes us pass verify and restore on its own,
// with eu's server dead.
func TestCopyMakesALateRegionRestorable(t *testing.T) {
	e, euServer, _ := newS3Env(t)
	eu, us := e.regions[0], e.regions[1]
	e.regions = []*storage.Region{eu} // ship and back up into eu only
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (id int PRIMARY KEY, payload text)")
	testenv.PGExec(t, conn, "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g")
	m := e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO t SELECT g, 'after the backup' FROM generate_series(20001, 20500) g")
	e.waitShipped(t, conn)
	layout, err := snapshots.LayoutFor("postgres")
	if err != nil {
		t.Fatal(err)
	}

	// Interrupted: cancelled after a few objects.
	ctx, cancel := context.WithCancel(context.Background())
	copied := 0
	_, err = snapshots.CopySet(ctx, "orders", eu, us, layout, snapshots.CopyOptions{Workers: 1, Log: testenv.Logger(t), OnObject: func(storage.CopyResult) {
		if copied++; copied == 3 {
			cancel()
		}
	}})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted copy: %v, want context.Canceled", err)
	}
	if list, _, err := pgsnap.ListBackups(context.Background(), us.Pipeline, "orders"); err != nil || len(list) != 0 {
		t.Fatalf("after an interrupted copy us lists %d complete backups (%v), want none", len(list), err)
	}

	out, code := e.drctlRun(t, "copy", "--cluster", "orders", "--from", "eu", "--to", "us", "--json")
	if code != 0 {
		t.Fatalf("drctl copy: exit %d\n%s", code, out)
	}
	var rep snapshots.CopyReport
	if err := json.Unmarshal([]byte(out[findJSON(out):]), &rep); err != nil {
		t.Fatalf("drctl copy --json: %v\n%s", err, out)
	}
	if len(rep.Backups) != 1 || rep.Backups[0] != m.ID || rep.Skipped < 2 || rep.Copied == 0 {
		t.Fatalf("resumed copy: %+v; want backup %s copied and the objects the first run stored skipped", rep, m.ID)
	}
	out, code = e.drctlRun(t, "copy", "--cluster", "orders", "--from", "eu", "--to", "us", "--json")
	if code != 0 || !json.Valid([]byte(out[findJSON(out):])) {
		t.Fatalf("second drctl copy: exit %d\n%s", code, out)
	}
	_ = json.Unmarshal([]byte(out[findJSON(out):]), &rep)
	if rep.Copied != 0 || rep.BackupsPresent != 1 {
		t.Fatalf("a repeated copy: %+v; want nothing copied", rep)
	}
	if out, code := e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us"); code != 0 {
		t.Fatalf("drctl verify --region us after the copy: exit %d\n%s", code, out)
	}

	if err := euServer.Kill(); err != nil {
		t.Fatal(err)
	}
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("restore from us with eu's server dead: %v\n%s", err, out)
	}
	var n, after int
	if err := connect(t, port).QueryRow(context.Background(), "SELECT count(*), count(*) FILTER (WHERE payload = 'after the backup') FROM t").Scan(&n, &after); err != nil {
		t.Fatal(err)
	}
	if n != 20500 || after != 500 {
		t.Fatalf("restored from us: %d rows, %d after the backup; want 20500 and 500", n, after)
	}
}

// findJSON returns where the JSON document starts in out (log lines may precede it).
func findJSON(out string) int {
	for i := range out {
		if out[i] == '{' && (i == 0 || out[i-1] == '\n') {
			return i
		}
	}
	return 0
}
