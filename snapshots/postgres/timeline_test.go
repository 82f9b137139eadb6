package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/testenv"
)

// shipFrom runs a shipper against dsn until stop is called.
func (e *env) shipFrom(t *testing.T, dsn string) (stop func()) {
	t.Helper()
	cl := e.cfg.Clusters[0]
	sh := &pgwal.Shipper{Cluster: cl.Name, DSN: dsn, Slot: cl.Slot, FlushInterval: 200 * time.Millisecond, Log: testenv.Logger(t)}
	for _, r := range e.regions {
		sh.Targets = append(sh.Targets, &pgwal.Target{Catalog: &pgwal.Catalog{Pipeline: r.Pipeline, Cluster: cl.Name}, Required: true})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = sh.Run(ctx); close(done) }()
	var once bool
	stop = func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func stamp(t *testing.T, conn *pgx.Conn, id int) time.Time {
	t.Helper()
	var ts time.Time
	if err := conn.QueryRow(context.Background(), "INSERT INTO stamps VALUES ($1, clock_timestamp()) RETURNING ts", id).Scan(&ts); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	return ts
}

// Promote a standby (timeline 2), point the shipper at it: restores to times on
// both timelines hold exactly the commits before them.
func TestTimelineSwitch(t *testing.T) {
	e := newEnv(t)
	standby := e.pg.StartStandby(t)
	stopOld := e.shipFrom(t, e.pg.DSN("postgres"))
	ctx := context.Background()
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE stamps (id int PRIMARY KEY, ts timestamptz NOT NULL)")
	e.backup(t)
	var ts []time.Time
	for i := 1; i <= 10; i++ {
		ts = append(ts, stamp(t, conn, i))
	}
	e.waitShipped(t, conn)
	// Let the standby have everything, then promote it and lose the primary.
	sconn := connect(t, standby.Port)
	for {
		var n int
		if err := sconn.QueryRow(ctx, "SELECT count(*) FROM stamps").Scan(&n); err == nil && n == 10 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopOld()
	if _, err := sconn.Exec(ctx, "SELECT pg_promote()"); err != nil {
		t.Fatal(err)
	}
	if err := e.pg.Kill(); err != nil {
		t.Fatal(err)
	}
	e.shipFrom(t, standby.DSN("postgres"))
	for i := 11; i <= 20; i++ {
		ts = append(ts, stamp(t, sconn, i))
	}
	e.waitShippedOn(t, sconn, 2)

	out, code := e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us")
	if code != 0 || !strings.Contains(out, "timeline 2") {
		t.Fatalf("verify across the switch: exit %d\n%s", code, out)
	}
	for _, c := range []struct {
		name string
		at   time.Time
		want int
	}{
		{"timeline 1", ts[4].Add(ts[5].Sub(ts[4]) / 2), 5},
		{"timeline 2", ts[14].Add(ts[15].Sub(ts[14]) / 2), 15},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, port, out, err := e.restore(t, "--to-region", "us", "--target-time", c.at.Format(time.RFC3339Nano), "--start")
			if err != nil {
				t.Fatalf("restore: %v\n%s", err, out)
			}
			var n int
			if err := connect(t, port).QueryRow(ctx, "SELECT count(*) FROM stamps").Scan(&n); err != nil || n != c.want {
				t.Fatalf("restored %d rows (%v), want %d", n, err, c.want)
			}
		})
	}
}

// waitShippedOn waits until both regions hold conn's current WAL on timeline
// tli, each sealed segment as one object: the shipper compacts a sealed
// segment's chunks beside the stream, and tests that read or break whole
// segments need them there.
func (e *env) waitShippedOn(t *testing.T, conn *pgx.Conn, tli uint32) {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s); err != nil {
		t.Fatal(err)
	}
	want, _ := pgwal.ParseLSN(s)
	// Generous: the test is about what the regions hold, not how fast (under
	// -race on 2 cores one wait in a full make test took over 20 s).
	deadline := time.Now().Add(60 * time.Second)
	for _, r := range e.regions {
		cat := &pgwal.Catalog{Pipeline: r.Pipeline, Cluster: "orders"}
		for {
			objs, _ := cat.List(context.Background(), 16<<20)
			if end, ok := pgwal.DurableEnd(objs, tli, 16<<20); ok && end >= want && compacted(objs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("region %s does not hold timeline %d WAL up to %s as whole segments", r.Name, tli, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// compacted reports whether only the newest segment has partial chunks.
func compacted(objs []pgwal.WALObject) bool {
	var newest pgwal.Segment
	for _, w := range objs {
		if !w.History && w.Segment.No > newest.No {
			newest = w.Segment
		}
	}
	for _, w := range objs {
		if w.Partial && w.Segment.No != newest.No {
			return false
		}
	}
	return true
}
