package postgres

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/s3"
)

func TestMain(m *testing.M) {
	testenv.UseS3Credentials()
	os.Exit(m.Run())
}

func s3Target(t *testing.T, endpoint, bucket, region string) *Target {
	t.Helper()
	srv := testenv.S3{Bucket: bucket, Endpoint: endpoint, Region: "us-east-1"}
	st, err := storage.Open(context.Background(), srv.StoreURL("wal-outage"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Target{Catalog: &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: region, Level: 1}, Cluster: "orders"}, Required: true}
}

func durableOf(t *testing.T, tg *Target) LSN {
	t.Helper()
	objs, err := tg.Catalog.List(context.Background(), 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := DurableEnd(objs, 1, 16<<20)
	return end
}

// One of three regions is blocked (its store takes connections and answers
// nothing) under write load: its queue fills and it falls behind alone; the
// other two keep their exposure low throughout, also across a reconnect; the
// slot never passes what the blocked (required) region holds; once unblocked
// it catches up from the others, takes the stream again, and no region has a
// gap.
func TestStoreOutage(t *testing.T) {
	pg, a, b, c := &testenv.Postgres{}, &testenv.MinIO{}, &testenv.MinIO{}, &testenv.MinIO{}
	testenv.Start(t, pg, a, b, c)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(b.Endpoint, "http://"))
	ta := s3Target(t, a.Endpoint, a.Bucket, "a")
	tb := s3Target(t, "http://"+proxy.Addr, b.Bucket, "b")
	tc := s3Target(t, c.Endpoint, c.Bucket, "c")
	tc.Required = false
	bDirect := s3Target(t, b.Endpoint, b.Bucket, "b") // the test's own view of region b, not through the proxy
	tb.QueueBytes = 16 << 20                          // full within seconds of this load (a and c keep the default)
	stop := startShipper(t, pg, []*Target{ta, tb, tc})
	defer stop()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	testenv.PGExec(t, conn, "CREATE TABLE t (v text)")
	waitDurable(t, []*Target{ta, tb, tc}, 1, currentLSN(t, conn), 10*time.Second)

	proxy.AddToxic(t, "blocked", "timeout", "upstream", 1, `{"timeout":0}`)
	sampling := testenv.SampleExposure(ta, tc)
	sawBehind := false
	outageEnd := time.Now().Add(testenv.Outage(t))
	var last LSN
	dropped := false
	for time.Now().Before(outageEnd) {
		// Halfway through, the replication connection drops too: the shipper
		// reconnects while region b's store still answers nothing, and must
		// resume the others without waiting for b.
		if !dropped && time.Until(outageEnd) < testenv.Outage(t)/2 {
			testenv.PGExec(t, conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
			dropped = true
		}
		testenv.PGExec(t, conn, "INSERT INTO t SELECT repeat('w', 300) FROM generate_series(1, 1500)")
		last = currentLSN(t, conn)
		sawBehind = sawBehind || tb.isLagging()
		time.Sleep(100 * time.Millisecond)
	}
	waitDurable(t, []*Target{ta, tc}, 1, last, 10*time.Second)
	samples := sampling.Stop()
	p99 := testenv.P99(samples)
	t.Logf("blocked %s: regions a and c exposure p99 %s over %d samples", testenv.Outage(t), p99, len(samples))
	if bound := testenv.ExposureBound(t); p99 > bound {
		t.Errorf("while region b was blocked, the others' exposure p99 was %s (want ≤ %s)", p99, bound)
	}
	if !sawBehind {
		t.Errorf("region b never fell behind: its queue did not fill, so the test did not test that")
	}
	var restart string
	if err := conn.QueryRow(ctx, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'drkit_orders'").Scan(&restart); err != nil {
		t.Fatal(err)
	}
	r, _ := ParseLSN(restart)
	if bEnd := durableOf(t, bDirect); r > bEnd {
		t.Fatalf("during the outage the slot advanced to %s, past region b's %s: WAL b lacks could be removed", r, bEnd)
	}
	t.Logf("region b holds WAL to %s, region a to %s, slot restart %s", durableOf(t, bDirect), durableOf(t, ta), r)

	proxy.RemoveToxic(t, "blocked")
	took := waitDurable(t, []*Target{bDirect}, 1, last, 3*time.Minute)
	t.Logf("region b caught up %s after its store came back", took)
	deadline := time.Now().Add(time.Minute)
	for tb.isLagging() {
		if time.Now().After(deadline) {
			t.Fatal("region b caught up but the stream did not take it back within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
	testenv.PGExec(t, conn, "INSERT INTO t VALUES ('after')")
	waitDurable(t, []*Target{ta, bDirect, tc}, 1, currentLSN(t, conn), 10*time.Second)
	for _, tg := range []*Target{ta, bDirect, tc} {
		objs, err := tg.Catalog.List(ctx, 16<<20)
		if err != nil {
			t.Fatal(err)
		}
		_, problems, _ := Continuity(objs, []TimelineBegin{{TLI: 1}}, objs[0].Segment.Start(16<<20), 16<<20)
		for _, p := range problems {
			if p.State == Missing {
				t.Fatalf("region %s has a gap after the outage: %+v", tg.region(), problems)
			}
		}
	}
}
