package mysql

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

func fileCatalog(t *testing.T, region string) *Catalog {
	t.Helper()
	st, err := file.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &Catalog{Pipeline: &storage.Pipeline{Store: st, Region: region, Level: 1}, Cluster: "shop"}
}

// startShipper runs a shipper into cats until the test ends or stop is called.
func startShipper(t *testing.T, m *testenv.MariaDB, cats ...*Catalog) (sh *Shipper, stop func()) {
	return startShipperWith(t, m, HeartbeatTable{}, cats...)
}

// startShipperWith is startShipper for a cluster with a heartbeat table.
func startShipperWith(t *testing.T, m *testenv.MariaDB, hb HeartbeatTable, cats ...*Catalog) (sh *Shipper, stop func()) {
	t.Helper()
	sh, stop = runShipper(t, m, hb, cats...)
	testenv.WaitFor(t, 20*time.Second, "the shipper streams", func() bool { return sh.Ready() == nil })
	return sh, stop
}

// runShipper starts a shipper without waiting for it to stream.
func runShipper(t *testing.T, m *testenv.MariaDB, hb HeartbeatTable, cats ...*Catalog) (sh *Shipper, stop func()) {
	t.Helper()
	sh = &Shipper{Cluster: "shop", DSN: m.DSN(""), ServerID: 90000 + m.ServerID, FlushInterval: 200 * time.Millisecond, Log: testenv.Logger(t), Heartbeat: hb}
	for _, c := range cats {
		sh.Targets = append(sh.Targets, &Target{Catalog: c})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
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
	t.Cleanup(stop)
	return sh, stop
}

func gtidPos(t *testing.T, db *sql.DB, v string) Pos {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT @@GLOBAL." + v).Scan(&s); err != nil {
		t.Fatal(err)
	}
	p, err := ParsePos(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// waitShipped waits until every catalog's region holds want.
func waitShipped(t *testing.T, sh *Shipper, want Pos) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "regions hold "+want.String(), func() bool {
		for _, tg := range sh.Targets {
			p, _, _ := tg.Position()
			if !p.Covers(want) {
				return false
			}
		}
		return true
	})
}

func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestReplayServesStoredBinlog ships transactions (with DDL and a rotation in
// the range) and replays them into an empty server with gtid_strict_mode on.
func TestReplayServesStoredBinlog(t *testing.T) {
	src := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	dst := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	testenv.Start(t, src, dst)
	s := src.Open(t, "")
	testenv.Exec(t, s, "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(50))")
	before := gtidPos(t, s, "gtid_binlog_pos")

	cat := fileCatalog(t, "eu")
	sh, _ := startShipper(t, src, cat)
	for i := 1; i <= 50; i++ {
		testenv.Exec(t, s, "INSERT INTO shop.orders VALUES ("+itoa(i)+", 'n')")
	}
	testenv.Exec(t, s, "FLUSH BINARY LOGS", "ALTER TABLE shop.orders ADD COLUMN qty INT DEFAULT 7")
	for i := 51; i <= 100; i++ {
		testenv.Exec(t, s, "INSERT INTO shop.orders VALUES ("+itoa(i)+", 'm', "+itoa(i)+")")
	}
	testenv.Exec(t, s, "UPDATE shop.orders SET note='u' WHERE id <= 10", "DELETE FROM shop.orders WHERE id > 95")
	after := gtidPos(t, s, "gtid_binlog_pos")
	waitShipped(t, sh, after)

	// The target holds what the "snapshot" held: the schema as of before.
	d := dst.Open(t, "")
	testenv.Exec(t, d, "SET GLOBAL gtid_slave_pos='"+before.String()+"'",
		"SET sql_log_bin=0", "CREATE DATABASE shop", "CREATE TABLE shop.orders (id INT PRIMARY KEY, note VARCHAR(50))")
	r := &Replay{Feed: &Feed{Catalog: cat, From: before}, Target: d, TargetHost: "127.0.0.1", Parallel: 2, Log: testenv.Logger(t)}
	res, err := r.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.Txns != 103 { // 100 inserts, the ALTER, the UPDATE, the DELETE
		t.Fatalf("replayed %d transactions, want 103", res.Txns)
	}
	if !res.Pos.Covers(after) {
		t.Fatalf("target at %s, want %s", res.Pos, after)
	}
	if n := count(t, d, "SELECT COUNT(*) FROM shop.orders"); n != 95 {
		t.Fatalf("target has %d rows, want 95", n)
	}
	if n := count(t, d, "SELECT COUNT(*) FROM shop.orders WHERE note='u' AND qty=7"); n != 10 {
		t.Fatalf("target has %d updated rows with the ALTER's default, want 10", n)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
