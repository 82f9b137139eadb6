package mysql

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	_ "github.com/drkit/drkit/storage/s3"
)

func TestMain(m *testing.M) {
	testenv.UseS3Credentials()
	os.Exit(m.Run())
}

func s3Catalog(t *testing.T, endpoint, bucket, region string) *Catalog {
	t.Helper()
	srv := testenv.S3{Bucket: bucket, Endpoint: endpoint, Region: "us-east-1"}
	st, err := storage.Open(context.Background(), srv.StoreURL("binlog-outage"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: region, Level: 1}, Cluster: "shop"}
}

// One of three regions is blocked (its store takes connections and answers
// nothing) under write load. Its queue fills and it falls behind alone; the
// other two keep their exposure low throughout. Halfway, drd restarts: the
// blocked store cannot be read then, and the others ship anyway. Unblocked,
// the region catches up on a dump of its own, the stream takes it back, and
// every region verifies clean up to the server's position.
func TestStoreOutage(t *testing.T) {
	m := testenv.StartMariaDB(t)
	a, b, c := &testenv.MinIO{}, &testenv.MinIO{}, &testenv.MinIO{}
	testenv.Start(t, a, b, c)
	proxy := testenv.NewProxy(t, strings.TrimPrefix(b.Endpoint, "http://"))
	ca, cb, cc := s3Catalog(t, a.Endpoint, a.Bucket, "a"), s3Catalog(t, "http://"+proxy.Addr, b.Bucket, "b"), s3Catalog(t, c.Endpoint, c.Bucket, "c")
	bDirect := s3Catalog(t, b.Endpoint, b.Bucket, "b") // the test's own view of region b
	db := m.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT AUTO_INCREMENT PRIMARY KEY, pad TEXT)")

	sh, stop := startShipper(t, m, ca, cb, cc)
	testenv.Exec(t, db, "INSERT INTO shop.t (pad) VALUES ('before')")
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))

	proxy.AddToxic(t, "blocked", "timeout", "upstream", 1, `{"timeout":0}`)
	var exposures []time.Duration
	sawBehind := false
	load := func(sh *Shipper, d time.Duration) {
		sampling := testenv.SampleExposure(sh.Targets[0], sh.Targets[2])
		defer func() { exposures = append(exposures, sampling.Stop()...) }()
		for end := time.Now().Add(d); time.Now().Before(end); {
			for range 20 {
				testenv.Exec(t, db, "INSERT INTO shop.t (pad) VALUES (REPEAT('w', 2000))")
			}
			sawBehind = sawBehind || sh.Targets[1].isLagging()
			time.Sleep(50 * time.Millisecond)
		}
	}
	load(sh, testenv.Outage(t)/2)
	stop()
	// drd restarts while region b's store answers nothing.
	began := time.Now()
	sh, stop = startShipper(t, m, ca, cb, cc)
	defer stop()
	t.Logf("restarted drd streams %s after the start, region b unreadable", time.Since(began).Round(time.Millisecond))
	load(sh, testenv.Outage(t)/2)
	want := gtidPos(t, db, "gtid_binlog_pos")
	testenv.WaitFor(t, 10*time.Second, "regions a and c hold "+want.String(), func() bool {
		pa, _, _ := sh.Targets[0].Position()
		pc, _, _ := sh.Targets[2].Position()
		return pa.Covers(want) && pc.Covers(want)
	})
	p99 := testenv.P99(exposures)
	t.Logf("blocked %s: regions a and c exposure p99 %s over %d samples", testenv.Outage(t), p99, len(exposures))
	if bound := testenv.ExposureBound(t); p99 > bound {
		t.Errorf("while region b was blocked, the others' exposure p99 was %s (want ≤ %s)", p99, bound)
	}
	if !sawBehind {
		t.Errorf("region b never fell behind: its queue did not fill, so the test did not test that")
	}

	proxy.RemoveToxic(t, "blocked")
	unblocked := time.Now()
	testenv.WaitFor(t, 3*time.Minute, "region b holds "+want.String(), func() bool {
		p, _, _ := sh.Targets[1].Position()
		return p.Covers(want)
	})
	t.Logf("region b caught up %s after its store came back", time.Since(unblocked).Round(time.Millisecond))
	testenv.WaitFor(t, time.Minute, "the stream takes region b back", func() bool { return !sh.Targets[1].isLagging() })
	testenv.Exec(t, db, "INSERT INTO shop.t (pad) VALUES ('after')")
	want = gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, sh, want)
	stop()
	for _, cat := range []*Catalog{ca, bDirect, cc} {
		rep, err := Verify(context.Background(), cat, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) > 0 || rep.End != want.String() {
			t.Errorf("region %s: %d transactions up to %s, problems %q; want up to %s and none",
				cat.Pipeline.Region, rep.Txns, rep.End, rep.Problems, want)
		}
	}
	n := count(t, db, "SELECT COUNT(*) FROM shop.t")
	if rep, _ := Verify(context.Background(), bDirect, VerifyOptions{}); rep.Txns < n {
		t.Errorf("region b holds %d transactions for %d rows", rep.Txns, n)
	}
}
