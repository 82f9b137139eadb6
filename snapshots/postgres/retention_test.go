package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// Three backups with WAL between them; retention.full 2 expires the first and
// the WAL only it needed; the kept ones still verify and restore.
func TestRetention(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (v text)")
	var ids []string
	for range 3 {
		ids = append(ids, e.backup(t).ID)
		testenv.PGExec(t, conn, "INSERT INTO t SELECT repeat('x', 500) FROM generate_series(1, 20000)")
		testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	}
	e.waitShipped(t, conn)
	us := e.regions[1].Pipeline
	ctx := context.Background()

	if res, err := pgsnap.Prune(ctx, us, "orders", config.Retention{}, time.Now(), false); err != nil || len(res.Expired) != 0 {
		t.Fatalf("no retention configured: %+v, %v; want nothing removed", res, err)
	}
	dry, err := pgsnap.Prune(ctx, us, "orders", config.Retention{Full: 2}, time.Now(), true)
	if err != nil || len(dry.Expired) != 1 || dry.Expired[0] != ids[0] || dry.WALObjects == 0 {
		t.Fatalf("dry run = %+v, %v; want the oldest backup and some WAL", dry, err)
	}
	if left, _, _ := pgsnap.ListBackups(ctx, us, "orders"); len(left) != 3 {
		t.Fatalf("a dry run removed backups: %d left", len(left))
	}
	res, err := pgsnap.Prune(ctx, us, "orders", config.Retention{Full: 2}, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	left, _, _ := pgsnap.ListBackups(ctx, us, "orders")
	if len(left) != 2 || left[0].ID != ids[1] {
		t.Fatalf("after retention.full 2: %d backups, first %s; want %s and %s", len(left), left[0].ID, ids[1], ids[2])
	}
	rep, err := pgsnap.Verify(ctx, us, "orders", pgsnap.VerifyOptions{All: true})
	if err != nil || !rep.OK {
		t.Fatalf("verify after pruning %d WAL objects: %+v, %v", res.WALObjects, rep.Problems, err)
	}
	// A window that covers nothing still keeps the newest backup.
	res, err = pgsnap.Prune(ctx, us, "orders", config.Retention{Window: config.Duration(time.Nanosecond)}, time.Now().Add(time.Hour), false)
	if err != nil || len(res.Kept) != 1 || res.Kept[0] != ids[2] {
		t.Fatalf("window retention = %+v, %v; want the newest kept", res, err)
	}
	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("restore after pruning: %v\n%s", err, out)
	}
	var n int
	if err := connect(t, port).QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 60000 {
		t.Fatalf("restored %d rows (%v), want 60000", n, err)
	}
}

// A copy into the region holds a lease while it runs: prune deletes no WAL
// then (the backup it brings, written last, may need it), and does once the
// copy ended.
func TestPruneWaitsForCopies(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (v text)")
	for range 2 {
		e.backup(t)
		testenv.PGExec(t, conn, "INSERT INTO t SELECT repeat('x', 500) FROM generate_series(1, 20000)")
		testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	}
	e.waitShipped(t, conn)
	us := e.regions[1].Pipeline
	ctx := context.Background()
	end, err := snapshots.BeginCopy(ctx, us.Store, "orders", "eu")
	if err != nil {
		t.Fatal(err)
	}
	res, err := pgsnap.Prune(ctx, us, "orders", config.Retention{Full: 1}, time.Now(), false)
	if err != nil || res.CopyInProgress == "" || res.WALObjects != 0 {
		t.Fatalf("prune during a copy = %+v, %v; want no WAL deleted and the lease named", res, err)
	}
	end()
	res, err = pgsnap.Prune(ctx, us, "orders", config.Retention{Full: 1}, time.Now(), false)
	if err != nil || res.CopyInProgress != "" || res.WALObjects == 0 {
		t.Fatalf("prune after the copy = %+v, %v; want the old WAL deleted", res, err)
	}
}
