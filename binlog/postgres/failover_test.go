package postgres

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
)

// One drd follows a failover behind a VIP (#28 item 2). The old primary
// shipped WAL of timeline 1 well past the point where the standby was
// promoted; after the switch the same shipper must not confirm the new
// primary's slot at that old-timeline position (the new primary could then
// recycle timeline-2 WAL the region lacks): the slot stays at or below what
// the region holds of the new lineage.
func TestFailoverBehindVIPConfirmsOnlyTheNewLineage(t *testing.T) {
	pg, conn := startPG(t, nil)
	standby := pg.StartStandby(t)
	vip := testenv.NewProxy(t, "127.0.0.1:"+strconv.Itoa(pg.Port))
	dsn := strings.Replace(pg.DSN("postgres"), "127.0.0.1:"+strconv.Itoa(pg.Port), vip.Addr, 1)
	targets := fileTargets(t, "orders", "a")
	sh := &Shipper{Cluster: "orders", DSN: dsn, Slot: "drkit_orders", FlushInterval: 200 * time.Millisecond, Targets: targets, Log: testenv.Logger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	defer func() { cancel(); <-done }()

	testenv.PGExec(t, conn, "CREATE TABLE t (v text)")
	testenv.PGExec(t, conn, "INSERT INTO t VALUES ('both')")
	sconn, err := pgx.Connect(context.Background(), standby.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer sconn.Close(context.Background())
	testenv.WaitFor(t, 30*time.Second, "the standby has the row", func() bool {
		var n int
		return sconn.QueryRow(context.Background(), "SELECT count(*) FROM t").Scan(&n) == nil && n == 1
	})
	// The standby stops receiving; the primary goes on, and its WAL reaches
	// the region on timeline 1, far past the standby's end.
	testenv.PGExec(t, sconn, "ALTER SYSTEM SET primary_conninfo = ''")
	testenv.PGExec(t, sconn, "SELECT pg_reload_conf()")
	testenv.WaitFor(t, 30*time.Second, "the standby's WAL receiver stops", func() bool {
		var n int
		return sconn.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_wal_receiver").Scan(&n) == nil && n == 0
	})
	for range 4 {
		testenv.PGExec(t, conn, "INSERT INTO t SELECT repeat('x', 500) FROM generate_series(1, 20000)")
		testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	}
	old := currentLSN(t, conn)
	waitDurable(t, targets, 1, old, 30*time.Second)

	// Failover: promote the standby, lose the old primary, move the VIP.
	testenv.PGExec(t, sconn, "SELECT pg_promote()")
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	vip.Retarget(t, "127.0.0.1:"+strconv.Itoa(standby.Port))
	testenv.PGExec(t, sconn, "INSERT INTO t VALUES ('after')")
	now := currentLSN(t, sconn)
	if now >= old {
		t.Fatalf("the new primary is at %s, past the old timeline's %s: the test cannot tell the positions apart", now, old)
	}
	waitDurable(t, targets, 2, now, 60*time.Second)
	time.Sleep(2 * statusInterval / 5)     // a few status reports
	testenv.PGExec(t, sconn, "CHECKPOINT") // the slot's position is what the server keeps
	var restart string
	if err := sconn.QueryRow(context.Background(), "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'drkit_orders'").Scan(&restart); err != nil {
		t.Fatal(err)
	}
	r, err := ParseLSN(restart)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := targets[0].Catalog.List(context.Background(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	var history string
	if err := sconn.QueryRow(context.Background(), "SELECT pg_read_file('pg_wal/00000002.history')").Scan(&history); err != nil {
		t.Fatal(err)
	}
	lineage, err := ParseHistory(strings.NewReader(history), 2)
	if err != nil {
		t.Fatal(err)
	}
	held, _ := DurableEndOnLineage(objs, lineage, 16<<20)
	if r > held {
		t.Fatalf("the new primary's slot is confirmed at %s, past the %s the region holds of its lineage (the old timeline ended at %s)", r, held, old)
	}
	t.Logf("old timeline shipped to %s; new primary at %s; region holds %s of the new lineage; slot restart %s", old, now, held, r)
}
