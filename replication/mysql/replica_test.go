package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/replication"
	myrepl "github.com/drkit/drkit/replication/mysql"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

// env is a MariaDB primary shipping its binlog to regions eu and us, with a
// snapshot taken and more written after it.
type env struct {
	src     *testenv.MariaDB
	db      *sql.DB
	regions []*storage.Region
	shipper *binlog.Shipper
	cat     *replication.Catalog
	stop    func()
}

func newEnv(t *testing.T, servers ...testenv.Server) *env {
	t.Helper()
	src := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	testenv.Start(t, append([]testenv.Server{src}, servers...)...)
	e := &env{src: src, db: src.Open(t, "")}
	for _, name := range []string{"eu", "us"} {
		st, err := file.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		e.regions = append(e.regions, &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name, Level: 1}})
	}
	e.cat = &replication.Catalog{Cluster: "shop", Regions: e.regions}
	testenv.Exec(t, e.db,
		"CREATE DATABASE shop",
		"CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), note TEXT NULL)",
		"CREATE TABLE shop.lines (order_id INT, line INT, qty INT, PRIMARY KEY (order_id, line))",
		"CREATE TABLE shop.log (msg VARCHAR(40))")
	insertItems(t, e.db, 1, 2000)
	for o := 1; o <= 50; o++ {
		testenv.Exec(t, e.db, fmt.Sprintf("INSERT INTO shop.lines VALUES (%d,1,1),(%d,2,2),(%d,3,3)", o, o, o))
	}
	testenv.Exec(t, e.db, "INSERT INTO shop.log VALUES ('a'), ('b')")
	e.ship(t)
	if _, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: e.regions, Log: testenv.Logger(t), RangeRows: 500}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	insertItems(t, e.db, 2001, 3000)
	testenv.Exec(t, e.db, "UPDATE shop.items SET price = price + 1 WHERE id % 7 = 0", "FLUSH BINARY LOGS", "DELETE FROM shop.lines WHERE order_id = 3")
	e.waitShipped(t)
	return e
}

func insertItems(t *testing.T, db *sql.DB, from, to int) {
	t.Helper()
	var vals []string
	for i := from; i <= to; i++ {
		note := "NULL"
		if i%3 == 0 {
			note = "'n'"
		}
		vals = append(vals, fmt.Sprintf("(%d,'item %d',%d.25,%s)", i, i, i%100, note))
	}
	testenv.Exec(t, db, "INSERT INTO shop.items VALUES "+strings.Join(vals, ","))
}

func (e *env) ship(t *testing.T) {
	t.Helper()
	e.shipper = &binlog.Shipper{Cluster: "shop", DSN: e.src.DSN(""), ServerID: 80000 + e.src.ServerID, FlushInterval: 200 * time.Millisecond, Log: testenv.Logger(t)}
	for _, r := range e.regions {
		e.shipper.Targets = append(e.shipper.Targets, &binlog.Target{Catalog: &binlog.Catalog{Pipeline: r.Pipeline, Cluster: "shop"}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.shipper.Run(ctx) }()
	stopped := false
	e.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(e.stop)
	testenv.WaitFor(t, 30*time.Second, "the shipper streams", func() bool { return e.shipper.Ready() == nil })
}

func (e *env) waitShipped(t *testing.T) {
	t.Helper()
	var s string
	if err := e.db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&s); err != nil {
		t.Fatal(err)
	}
	want, _ := binlog.ParsePos(s)
	testenv.WaitFor(t, 30*time.Second, "both regions hold "+s, func() bool {
		for _, tg := range e.shipper.Targets {
			if p, _, _ := tg.Position(); !p.Covers(want) {
				return false
			}
		}
		return true
	})
}

func (e *env) cluster() config.Cluster {
	return config.Cluster{Name: "shop", Engine: "mysql", Region: "eu", DSN: e.src.DSN("")}
}

func (e *env) create(t *testing.T, name string, target string) (myrepl.CreateResult, error) {
	t.Helper()
	return myrepl.Create(context.Background(), myrepl.CreateOptions{Cluster: e.cluster(), Name: name,
		Region: e.regions[1], DSN: target, Catalog: e.cat, Log: testenv.Logger(t)})
}

func (e *env) check(t *testing.T, replica *testenv.MariaDB) replication.Report {
	t.Helper()
	ctx := context.Background()
	p, err := myrepl.OpenSide(ctx, "primary", e.src.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer p.DB.Close()
	r, err := myrepl.OpenSide(ctx, "replica", replica.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer r.DB.Close()
	rep, err := (&replication.Checker{Primary: p, Replica: r, ChunkRows: 500, Log: testenv.Logger(t)}).Run(ctx)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep
}

func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestReplicaFromStoreDriftAndPromoteAfterCrash: a replica made from region
// us's snapshot and binlog follows the primary with GTID; drift made on it
// directly (a changed row, a missing row) is found with its key range; bad
// input changes nothing; after the primary is killed, a replica lacking
// transactions that the store holds is refused, and promoted once it has them.
func TestReplicaFromStoreDriftAndPromoteAfterCrash(t *testing.T) {
	replica, other := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}, &testenv.MariaDB{}
	e := newEnv(t, replica, other)
	ctx := context.Background()

	res, err := e.create(t, "us-1", replica.DSN(""))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if res.Existing || res.Restore == nil || res.Record.Status != replication.RecordReady {
		t.Fatalf("create result: %+v", res)
	}
	rdb := replica.Open(t, "")
	testenv.Exec(t, e.db, "INSERT INTO shop.items VALUES (5000, 'after create', 1, NULL)")
	testenv.WaitFor(t, 20*time.Second, "the new row replicates", func() bool {
		return count(t, rdb, "SELECT COUNT(*) FROM shop.items WHERE id = 5000") == 1
	})
	if rep := e.check(t, replica); !rep.InSync() || rep.Tables != 3 || rep.Rows != int64(3001+147+2) {
		t.Fatalf("a fresh replica must be in sync: %+v", rep)
	}

	again, err := e.create(t, "us-1", replica.DSN(""))
	if err != nil || !again.Existing {
		t.Fatalf("create again must find the running replica: %+v, %v", again, err)
	}

	// Drift: a row changed and a row deleted on the replica only.
	testenv.Exec(t, rdb, "SET SESSION sql_log_bin=0", "UPDATE shop.items SET name='changed' WHERE id=1200",
		"DELETE FROM shop.items WHERE id=2600", "SET SESSION sql_log_bin=1")
	rep := e.check(t, replica)
	if rep.InSync() || len(rep.Diffs) != 2 {
		t.Fatalf("want 2 differing ranges, got %+v", rep)
	}
	for i, id := range []int{1200, 2600} {
		d := rep.Diffs[i]
		var from, to int
		fmt.Sscan(d.From, &from)
		fmt.Sscan(d.To, &to)
		if d.Table != "shop.items" || id < from || id >= to {
			t.Errorf("diff %d: %s %s does not hold id %d", i, d.Table, d.Range(), id)
		}
	}
	if rep.Diffs[1].PrimaryRows != rep.Diffs[1].ReplicaRows+1 {
		t.Errorf("the missing row's range: primary %d rows, replica %d", rep.Diffs[1].PrimaryRows, rep.Diffs[1].ReplicaRows)
	}
	testenv.Exec(t, rdb, "SET SESSION sql_log_bin=0", "UPDATE shop.items SET name='item 1200' WHERE id=1200",
		"INSERT INTO shop.items SELECT 2600, 'item 2600', 0.25, NULL", "SET SESSION sql_log_bin=1")
	if rep := e.check(t, replica); !rep.InSync() {
		t.Fatalf("repaired: %+v", rep)
	}

	// Bad input: nothing changes on the target.
	odb := other.Open(t, "")
	testenv.Exec(t, odb, "CREATE DATABASE mine", "CREATE TABLE mine.t (id INT)") // an empty database alone does not count
	if _, err := e.create(t, "bad", other.DSN("")); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a non-empty target: %v", err)
	}
	wrong := strings.Replace(other.DSN(""), "root@", "root:wrong@", 1)
	if _, err := e.create(t, "bad", wrong); err == nil || !strings.Contains(err.Error(), "Access denied") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong credentials must say so without the password: %v", err)
	}
	down := e.cluster()
	down.DSN = "root@tcp(127.0.0.1:1)/"
	if _, err := myrepl.Create(ctx, myrepl.CreateOptions{Cluster: down, Name: "bad", Region: e.regions[1], DSN: other.DSN(""), Catalog: e.cat}); err == nil || !strings.Contains(err.Error(), "primary") {
		t.Fatalf("an unreachable primary: %v", err)
	}
	if n := count(t, odb, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('mine','shop')"); n != 1 {
		t.Fatalf("the refused target changed: %d schemas", n)
	}
	if rows, _ := odb.Query("SHOW SLAVE STATUS"); rows.Next() {
		t.Fatal("the refused target was made a replica")
	}
	if _, err := e.cat.Get(ctx, "bad"); err == nil {
		t.Fatal("a refused create was registered")
	}

	// The replica stops applying; the primary writes more, ships it, dies.
	testenv.Exec(t, rdb, "STOP SLAVE SQL_THREAD")
	for i := 6001; i <= 6100; i += 10 {
		insertItems(t, e.db, i, i+9)
	}
	e.waitShipped(t)
	if err := e.src.Kill(); err != nil {
		t.Fatal(err)
	}
	e.stop()
	opts := myrepl.PromoteOptions{Cluster: "shop", PrimaryDSN: e.src.DSN(""), Region: e.regions[1], Wait: time.Second, Log: testenv.Logger(t),
		Replica: config.Replica{Name: "us-1", Region: "us", DSN: replica.DSN("")}}
	if _, err := myrepl.Promote(ctx, opts); err == nil || !strings.Contains(err.Error(), "missing domain 0: 10 transaction(s)") {
		t.Fatalf("promote must refuse a replica without the store's last 10 transactions: %v", err)
	}
	if n := count(t, rdb, "SELECT @@read_only"); n != 1 {
		t.Fatal("a refused promotion changed the replica")
	}
	testenv.Exec(t, rdb, "START SLAVE SQL_THREAD") // the relay log holds them
	opts.Wait = 20 * time.Second
	pr, err := myrepl.Promote(ctx, opts)
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if pr.Promotion.Fenced || pr.Gap != "" || pr.StorePosition == "" || !strings.Contains(pr.ClientChange, "could not be fenced") {
		t.Fatalf("promote result: %+v", pr)
	}
	if n := count(t, rdb, "SELECT COUNT(*) FROM shop.items WHERE id BETWEEN 6001 AND 6100"); n != 100 {
		t.Fatalf("the promoted replica has %d of the 100 rows the store held", n)
	}
	testenv.Exec(t, rdb, "INSERT INTO shop.items VALUES (7000, 'written on the new primary', 1, NULL)")
	if rows, _ := rdb.Query("SHOW SLAVE STATUS"); rows.Next() {
		t.Fatal("the promoted server still has a replication source")
	}
}

// TestSwitchoverFencesTheOldPrimary: with the primary up, promote makes it
// read_only first and waits for the replica to have its last transaction.
func TestSwitchoverFencesTheOldPrimary(t *testing.T) {
	replica := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	e := newEnv(t, replica)
	ctx := context.Background()
	if _, err := e.create(t, "us-1", replica.DSN("")); err != nil {
		t.Fatalf("create: %v", err)
	}
	insertItems(t, e.db, 8001, 8500)
	pr, err := myrepl.Promote(ctx, myrepl.PromoteOptions{Cluster: "shop", PrimaryDSN: e.src.DSN(""), Region: e.regions[1], Log: testenv.Logger(t),
		Replica: config.Replica{Name: "us-1", Region: "us", DSN: replica.DSN("")}})
	if err != nil {
		t.Fatalf("promote: %v", err)
	}
	if !pr.Promotion.Fenced || count(t, e.db, "SELECT @@read_only") != 1 {
		t.Fatalf("the old primary was not fenced: %+v", pr)
	}
	rdb := replica.Open(t, "")
	if n := count(t, rdb, "SELECT COUNT(*) FROM shop.items"); n != 3500 {
		t.Fatalf("the new primary has %d rows, want 3500", n)
	}
	if n := count(t, rdb, "SELECT @@read_only"); n != 0 {
		t.Fatal("the new primary is read-only")
	}
}
