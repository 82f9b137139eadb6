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

// One region's store is down for 30 s under write load: the other region keeps
// receiving WAL within seconds, the slot keeps what the down region lacks, and
// the region catches up afterwards without a gap.
func TestStoreOutage(t *testing.T) {
	pg, a, b := &testenv.Postgres{}, &testenv.MinIO{}, &testenv.MinIO{}
	testenv.Start(t, pg, a, b)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(b.Endpoint, "http://"))
	ta := s3Target(t, a.Endpoint, a.Bucket, "a")
	tb := s3Target(t, "http://"+proxy.Addr, b.Bucket, "b")
	bDirect := s3Target(t, b.Endpoint, b.Bucket, "b") // the test's own view of region b, not through the proxy
	stop := startShipper(t, pg, []*Target{ta, tb})
	defer stop()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	exec(t, conn, "CREATE TABLE t (v text)")
	waitDurable(t, []*Target{ta, tb}, 1, currentLSN(t, conn), 10*time.Second)

	proxy.Down()
	outageEnd := time.Now().Add(30 * time.Second)
	var last LSN
	dropped := false
	for time.Now().Before(outageEnd) {
		// Halfway through, the replication connection drops too: the shipper
		// reconnects while region b's worker is still stuck on the dead store,
		// and must resume region a without waiting for b.
		within := 5 * time.Second
		if !dropped && time.Until(outageEnd) < 15*time.Second {
			exec(t, conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_replication")
			dropped = true
			within = 15 * time.Second // reconnect backoff plus the bounded look at b
		}
		exec(t, conn, "INSERT INTO t SELECT repeat('w', 300) FROM generate_series(1, 2000)")
		last = currentLSN(t, conn)
		waitDurable(t, []*Target{ta}, 1, last, within) // region a keeps going
		time.Sleep(500 * time.Millisecond)
	}
	var restart string
	if err := conn.QueryRow(ctx, "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'drkit_orders'").Scan(&restart); err != nil {
		t.Fatal(err)
	}
	r, _ := ParseLSN(restart)
	if bEnd := durableOf(t, bDirect); r > bEnd {
		t.Fatalf("during the outage the slot advanced to %s, past region b's %s: WAL b lacks could be removed", r, bEnd)
	}
	t.Logf("after 30 s down, region b holds WAL to %s, region a to %s, slot restart %s", durableOf(t, bDirect), durableOf(t, ta), r)

	proxy.Up(t)
	took := waitDurable(t, []*Target{bDirect}, 1, last, 90*time.Second)
	t.Logf("region b caught up %s after the store came back", took)
	objs, err := bDirect.Catalog.List(ctx, 16<<20)
	if err != nil {
		t.Fatal(err)
	}
	_, problems, _ := Continuity(objs, []TimelineBegin{{TLI: 1}}, objs[0].Segment.Start(16<<20), 16<<20)
	for _, p := range problems {
		if p.State == Missing {
			t.Fatalf("region b has a gap after the outage: %+v", problems)
		}
	}
}
