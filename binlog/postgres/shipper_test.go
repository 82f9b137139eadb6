package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func fileTargets(t *testing.T, cluster string, regions ...string) []*Target {
	t.Helper()
	var out []*Target
	for _, r := range regions {
		st, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &Target{Catalog: &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: r, Level: 1}, Cluster: cluster}, Required: true})
	}
	return out
}

func startShipper(t *testing.T, pg *testenv.Postgres, targets []*Target) (stop func()) {
	t.Helper()
	sh := &Shipper{Cluster: "orders", DSN: pg.DSN("postgres"), Slot: "drkit_orders", FlushInterval: 200 * time.Millisecond, Targets: targets, Log: testenv.Logger(t)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("shipper: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("the shipper did not stop within 20s")
		}
	}
}

// startPG starts a PostgreSQL primary with settings and connects to it for
// the test.
func startPG(t *testing.T, settings map[string]string) (*testenv.Postgres, *pgx.Conn) {
	t.Helper()
	pg := &testenv.Postgres{Settings: settings}
	testenv.Start(t, pg)
	conn, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return pg, conn
}

// noAutovacuum keeps autovacuum's catalog writes (a user's WAL to the
// scanner) out of tests that expect stretches of nothing but heartbeats.
var noAutovacuum = map[string]string{"autovacuum": "off"}

func currentLSN(t *testing.T, conn *pgx.Conn) LSN {
	t.Helper()
	return queryLSN(t, conn, "pg_current_wal_lsn()")
}

// insertLSN is where the next WAL record goes, written out or not.
func insertLSN(t *testing.T, conn *pgx.Conn) LSN {
	t.Helper()
	return queryLSN(t, conn, "pg_current_wal_insert_lsn()")
}

func queryLSN(t *testing.T, conn *pgx.Conn, fn string) LSN {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), "SELECT "+fn+"::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	l, err := ParseLSN(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// waitDurable waits until every target holds WAL up to want without a gap.
func waitDurable(t *testing.T, targets []*Target, tli uint32, want LSN, within time.Duration) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		all := true
		for _, tg := range targets {
			objs, err := tg.Catalog.List(context.Background(), 16<<20)
			if err != nil {
				t.Fatal(err)
			}
			if end, ok := DurableEnd(objs, tli, 16<<20); !ok || end < want {
				all = false
			}
		}
		if all {
			return time.Since(began)
		}
		if time.Since(began) > within {
			t.Fatalf("WAL up to %s not durable in every region within %s", want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShipperStreamsToEveryRegion(t *testing.T) {
	pg, conn := startPG(t, nil)
	ctx := context.Background()
	targets := fileTargets(t, "orders", "eu", "us")
	stop := startShipper(t, pg, targets)

	testenv.PGExec(t, conn, "CREATE TABLE t (id int, v text)")
	testenv.PGExec(t, conn, "INSERT INTO t SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g")
	lsn := currentLSN(t, conn)
	took := waitDurable(t, targets, 1, lsn, 5*time.Second)
	t.Logf("a commit at %s was durable in both regions after %s", lsn, took)

	testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	testenv.PGExec(t, conn, "INSERT INTO t VALUES (0, 'after switch')")
	lsn = currentLSN(t, conn)
	waitDurable(t, targets, 1, lsn, 5*time.Second)

	// The slot is confirmed no further than the regions hold.
	var restart string
	if err := conn.QueryRow(ctx, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'drkit_orders'").Scan(&restart); err != nil {
		t.Fatal(err)
	}
	r, _ := ParseLSN(restart)
	for _, tg := range targets {
		objs, _ := tg.Catalog.List(ctx, 16<<20)
		end, _ := DurableEnd(objs, 1, 16<<20)
		if r > end {
			t.Fatalf("slot restart_lsn %s is beyond region %s's durable end %s", r, tg.region(), end)
		}
		// The sealed segment's chunks are compacted into one object beside
		// the stream: soon after, not before the next WAL is durable.
		var whole, partial int
		testenv.WaitFor(t, 10*time.Second, "region "+tg.region()+" stores the sealed segment whole", func() bool {
			objs, _ := tg.Catalog.List(ctx, 16<<20)
			whole, partial = 0, 0
			for _, w := range objs {
				if w.Partial {
					partial++
				} else if !w.History {
					whole++
				}
			}
			return whole > 0
		})
		t.Logf("region %s: %d complete segments, %d partial chunks, durable to %s", tg.region(), whole, partial, end)
	}
	stop()

	// A restart resumes from what the regions hold, without a gap.
	testenv.PGExec(t, conn, "INSERT INTO t SELECT g, 'while drd was down' FROM generate_series(1, 1000) g")
	lsn = currentLSN(t, conn)
	stop = startShipper(t, pg, targets)
	defer stop()
	waitDurable(t, targets, 1, lsn, 10*time.Second)
}

// TestShipperHoldsBackHeartbeats: WAL that holds only drd's heartbeat waits
// up to the heartbeat's flush interval, while a user's commit among the
// heartbeats is still durable within the normal flush interval.
func TestShipperHoldsBackHeartbeats(t *testing.T) {
	pg, conn := startPG(t, noAutovacuum)
	ctx := context.Background()
	testenv.PGExec(t, conn, "CREATE TABLE drkit_heartbeat (cluster text PRIMARY KEY, beat_us bigint NOT NULL)")
	testenv.PGExec(t, conn, "CREATE TABLE t (id int)")
	targets := fileTargets(t, "orders", "eu", "us")
	sh := &Shipper{Cluster: "orders", DSN: pg.DSN("postgres"), Slot: "drkit_orders", FlushInterval: 200 * time.Millisecond, Targets: targets, Log: testenv.Logger(t),
		Heartbeat: HeartbeatTable{DSN: pg.DSN("postgres"), Table: "drkit_heartbeat", FlushInterval: 4 * time.Second}}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sh.Run(sctx) }()
	defer func() {
		cancel()
		<-done
	}()
	beat := func(n int) LSN {
		testenv.PGExec(t, conn, fmt.Sprintf("INSERT INTO drkit_heartbeat VALUES ('orders', %d) ON CONFLICT (cluster) DO UPDATE SET beat_us = EXCLUDED.beat_us", n))
		return currentLSN(t, conn)
	}
	durable := func() LSN {
		low := LSN(0)
		for i, tg := range targets {
			objs, err := tg.Catalog.List(ctx, 16<<20)
			if err != nil {
				t.Fatal(err)
			}
			end, _ := DurableEnd(objs, 1, 16<<20)
			if i == 0 || end < low {
				low = end
			}
		}
		return low
	}
	// What was there before the shipper looked the table up ships as usual.
	waitDurable(t, targets, 1, beat(0), 5*time.Second)
	time.Sleep(time.Second) // the first heartbeat stretch starts after the lookup

	before := durable()
	var last LSN
	for i := range 10 {
		last = beat(i + 1)
		time.Sleep(200 * time.Millisecond)
	}
	if d := durable(); d > before {
		t.Errorf("heartbeat-only WAL was shipped within 2 s (durable %s -> %s, heartbeat at %s); it may wait 4 s", before, d, last)
	}
	took := waitDurable(t, targets, 1, last, 5*time.Second)
	t.Logf("10 heartbeats over 2 s were held back and shipped %s later", took)

	// A user's commit among heartbeats ships within the flush interval.
	beat(100)
	testenv.PGExec(t, conn, "INSERT INTO t VALUES (1)")
	user := currentLSN(t, conn)
	beat(101)
	if took := waitDurable(t, targets, 1, user, 3*time.Second); took > time.Second {
		t.Errorf("a user's commit among heartbeats took %s to be durable; flush_interval is 200ms", took)
	}
}

// A cluster of 512 MiB WAL segments: a whole segment is larger than a
// region's queue (256 MiB), and must still be written, not wait forever.
func TestShipperLargeSegments(t *testing.T) {
	const segSize = 512 << 20
	pg := &testenv.Postgres{InitArgs: []string{"--wal-segsize=512"}, Settings: map[string]string{"min_wal_size": "2GB", "max_wal_size": "4GB"}}
	testenv.Start(t, pg)
	conn, err := pgx.Connect(context.Background(), pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	targets := fileTargets(t, "orders", "eu")
	stop := startShipper(t, pg, targets)
	defer stop()
	testenv.PGExec(t, conn, "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
	first := currentLSN(t, conn)
	testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	testenv.PGExec(t, conn, "INSERT INTO t VALUES (1001)")
	want := currentLSN(t, conn)
	deadline := time.Now().Add(90 * time.Second)
	for {
		objs, err := targets[0].Catalog.List(context.Background(), segSize)
		if err != nil {
			t.Fatal(err)
		}
		whole := false
		for _, w := range objs {
			whole = whole || (!w.Partial && !w.History && w.Segment.No == uint64(first)/segSize)
		}
		if end, ok := DurableEnd(objs, 1, segSize); whole && ok && end >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the 512 MiB segment holding %s is not stored whole (and WAL up to %s durable) within 90s", first, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A second drd on the same cluster stands by while the first holds the slot
// (drkit_shipper_standby), and takes over within seconds of the first's end:
// its retries on the busy slot do not back off to 30 s.
func TestStandbyTakesOver(t *testing.T) {
	pg, conn := startPG(t, nil)
	first := fileTargets(t, "orders", "eu")
	run := func(targets []*Target) (*Shipper, func()) {
		sh := &Shipper{Cluster: "orders", DSN: pg.DSN("postgres"), Slot: "drkit_orders", FlushInterval: 200 * time.Millisecond, Targets: targets, Log: testenv.Logger(t)}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = sh.Run(ctx); close(done) }()
		return sh, func() { cancel(); <-done }
	}
	active, stopActive := run(first)
	defer stopActive()
	testenv.WaitFor(t, 20*time.Second, "the first shipper streams", func() bool { return active.Ready() == nil })
	second := []*Target{{Catalog: first[0].Catalog, Required: true}}
	standby, stopStandby := run(second)
	defer stopStandby()
	testenv.WaitFor(t, 10*time.Second, "the second shipper stands by", standby.Standby)
	if active.Standby() || standby.Ready() == nil {
		t.Fatal("both shippers claim the slot")
	}
	time.Sleep(8 * time.Second) // long enough for a doubling backoff to reach 8 s
	stopActive()
	stopped := time.Now()
	testenv.WaitFor(t, 20*time.Second, "the standby takes over", func() bool { return standby.Ready() == nil })
	if took := time.Since(stopped); took > 4500*time.Millisecond {
		t.Fatalf("the standby took over %s after the active shipper stopped; want within a few seconds", took.Round(time.Millisecond))
	}
	if standby.Standby() {
		t.Fatal("the shipper still says it stands by after taking over")
	}
	testenv.PGExec(t, conn, "CREATE TABLE after_takeover (id int)")
	waitDurable(t, second, 1, currentLSN(t, conn), 20*time.Second)
}

// A session whose context is cancelled ends at once. pgconn reports an
// already cancelled context as a timeout, which the loop took for "nothing
// received yet" and went round forever (a drd that could not stop, seen as
// a make test hang once flushes no longer failed on the cancelled context).
func TestLoopEndsOnCancelledContext(t *testing.T) {
	pg, _ := startPG(t, nil)
	ctx := context.Background()
	conn, err := ConnectReplication(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sys, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	segSize, _, err := ServerSettings(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ensureSlot(ctx, conn, "loop_test"); err != nil {
		t.Fatal(err)
	}
	start := SegmentOf(uint32(sys.Timeline), LSN(sys.XLogPos), segSize)
	if err := pglogrepl.StartReplication(ctx, conn, "loop_test", pglogrepl.LSN(start.Start(segSize)), pglogrepl.StartReplicationOptions{Timeline: sys.Timeline, Mode: pglogrepl.PhysicalReplication}); err != nil {
		t.Fatal(err)
	}
	ss := &session{s: &Shipper{Cluster: "orders", FlushInterval: 50 * time.Millisecond, Log: testenv.Logger(t)}, conn: conn, segSize: segSize,
		tli: uint32(sys.Timeline), seg: start, received: start.Start(segSize), scan: newRoutineScanner(uint64(start.Start(segSize)), segSize),
		hbFiles: make(chan heartbeatFiles, 1), catch: &catchUp{open: start}}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	done := make(chan error, 1)
	go func() { done <- ss.loop(cancelled) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("loop ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loop did not end within 5 s of its context's cancellation")
	}
}
