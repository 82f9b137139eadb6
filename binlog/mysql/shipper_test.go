package mysql

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
)

// TestRegionBehindCatchesUp ships into two regions, then into one while the
// other is left out, then into both again. The stream restarts where the
// region behind stands; that region stores everything it lacks, the region
// ahead stores only what it lacks (not the batch's shared encoding, which
// starts earlier), and neither has a gap or a transaction twice.
func TestRegionBehindCatchesUp(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	a, b := fileCatalog(t, "a"), fileCatalog(t, "b")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	insert := func(from, to int) {
		for i := from; i < to; i++ {
			testenv.Exec(t, db, fmt.Sprintf("INSERT INTO shop.t VALUES (%d)", i))
		}
	}
	sh, stop := startShipper(t, m, a, b)
	insert(0, 3)
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))
	stop()
	sh, stop = startShipper(t, m, a)
	insert(3, 6)
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))
	stop()
	sh, stop = startShipper(t, m, a, b)
	insert(6, 8)
	want := gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, sh, want)
	stop()

	for _, c := range []*Catalog{a, b} {
		rep, err := Verify(context.Background(), c, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Problems) > 0 || rep.End != want.String() || rep.Txns != 8 {
			t.Errorf("region %s: %d transactions from %s up to %s, problems %q; want the 8 inserts up to %s and none",
				c.Pipeline.Region, rep.Txns, rep.First, rep.End, rep.Problems, want)
		}
	}
}

// TestEmptyRegionStartsAtTheServerPosition starts a shipper with an empty
// region on a server that purged its first binlogs, as every long-running
// server has: the region starts at the server's position then. (It used to
// start at the beginning of the server's history, which the server refuses
// once binlogs are purged: drd retried forever and shipped nothing.)
func TestEmptyRegionStartsAtTheServerPosition(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "FLUSH BINARY LOGS",
		"INSERT INTO shop.t VALUES (1)")
	purgeBinlogs(t, db)
	from := gtidPos(t, db, "gtid_binlog_pos")
	c := fileCatalog(t, "a")
	sh, stop := startShipper(t, m, c)
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (2)")
	want := gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, sh, want)
	stop()
	rep, err := Verify(context.Background(), c, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.First != from.String() || rep.End != want.String() || rep.Txns != 1 || len(rep.Problems) > 0 {
		t.Fatalf("region holds %d transactions from %q to %q (problems %q); want 1 from %q to %q", rep.Txns, rep.First, rep.End, rep.Problems, from, want)
	}
}

// TestSlowBacklogEndsDurable: a backlog that arrives slowly (the link
// throttled to 4 KB/s, so the stream pauses between transactions) is
// durable soon after the stream reaches the server's position at connect,
// not a flush interval (here 60 s) later. Catching up used to end at the
// first pause: the backlog's tail then waited for the interval.
func TestSlowBacklogEndsDurable(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	cat := fileCatalog(t, "a")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY, pad VARCHAR(200))")
	sh, stop := startShipper(t, m, cat)
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (0, '')")
	waitShipped(t, sh, gtidPos(t, db, "gtid_binlog_pos"))
	stop()
	for i := 1; i <= 30; i++ {
		testenv.Exec(t, db, fmt.Sprintf("INSERT INTO shop.t VALUES (%d, REPEAT('x', 200))", i))
	}
	want := gtidPos(t, db, "gtid_binlog_pos")

	proxy := testenv.NewProxy(t, fmt.Sprintf("127.0.0.1:%d", m.Port))
	proxy.AddToxic(t, "slow", "bandwidth", "downstream", 1, `{"rate": 4}`)
	slow := &Shipper{Cluster: "shop", DSN: strings.Replace(m.DSN(""), fmt.Sprintf("127.0.0.1:%d", m.Port), proxy.Addr, 1),
		ServerID: 91000 + m.ServerID, FlushInterval: time.Minute, Log: testenv.Logger(t), Targets: []*Target{{Catalog: cat}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- slow.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shipper: %v", err)
		}
	}()
	began := time.Now()
	waitShipped(t, slow, want)
	t.Logf("30 throttled transactions durable %v after the start", time.Since(began).Round(time.Millisecond))
	rep, err := Verify(context.Background(), cat, VerifyOptions{})
	if err != nil || len(rep.Problems) > 0 || rep.End != want.String() || rep.Txns != 31 {
		t.Fatalf("region: %d transactions up to %s, problems %q (%v); want 31 up to %s", rep.Txns, rep.End, rep.Problems, err, want)
	}
}

// Two drd on one MariaDB cluster: the second sees a reader registered with
// its server_id and stands by instead of dumping too (the server would kill
// one dump for the other, and two chunk histories would interleave); it takes
// over once the first stops, and the region's binlog has no gap.
func TestSecondDrdStandsBy(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	a := fileCatalog(t, "a")
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	first, stopFirst := startShipper(t, m, a)
	defer stopFirst()
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (0)")
	waitShipped(t, first, gtidPos(t, db, "gtid_binlog_pos"))
	second, stopSecond := runShipper(t, m, HeartbeatTable{}, a)
	defer stopSecond()
	testenv.WaitFor(t, 15*time.Second, "the second shipper stands by", second.Standby)
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (1)")
	waitShipped(t, first, gtidPos(t, db, "gtid_binlog_pos"))
	if !second.Standby() || first.Standby() {
		t.Fatal("the second shipper stopped standing by while the first streams")
	}
	stopFirst()
	testenv.Exec(t, db, "INSERT INTO shop.t VALUES (2)")
	want := gtidPos(t, db, "gtid_binlog_pos")
	waitShipped(t, second, want)
	if second.Standby() {
		t.Fatal("the second shipper still stands by after taking over")
	}
	rep, err := Verify(context.Background(), a, VerifyOptions{})
	if err != nil || len(rep.Problems) > 0 || rep.End != want.String() {
		t.Fatalf("region after the takeover: end %s, problems %q, %v; want %s and none", rep.End, rep.Problems, err, want)
	}
}
