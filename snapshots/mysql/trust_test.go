package mysql_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/testenv"
	"github.com/drkit/drkit/snapshots"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
)

// A fresh MariaDB holds empty databases (mariadb-install-db's test, or one
// made ahead under the snapshot's own name): they do not block a restore.
func TestRestoreIntoFreshServer(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)", "INSERT INTO shop.t VALUES (1), (2), (3)")
	e.backup(t)
	testenv.Exec(t, dst.Open(t, ""), "CREATE DATABASE IF NOT EXISTS test", "CREATE DATABASE shop")
	if _, err := e.restore(t, 0, dst, binlog.StopAt{}); err != nil {
		t.Fatalf("restore into a server with empty databases: %v", err)
	}
	if n := queryString(t, dst.Open(t, ""), "SELECT COUNT(*) FROM shop.t"); n != "3" {
		t.Fatalf("restored %s rows, want 3", n)
	}
}

// A target GTID equal to the snapshot's position: the snapshot already holds
// it, so nothing is replayed and the restore ends exactly there.
func TestTargetGTIDAtSnapshot(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT)")
	e.ship(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()", "INSERT INTO shop.t VALUES ()")
	m := e.backup(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()", "INSERT INTO shop.t VALUES ()")
	e.waitShipped(t)
	pos, err := binlog.ParsePos(m.GTIDPos)
	if err != nil || len(pos) != 1 {
		t.Fatalf("snapshot position %q: %v", m.GTIDPos, err)
	}
	var g binlog.GTID
	for _, g = range pos {
	}
	res, err := e.restore(t, 1, dst, binlog.StopAt{GTID: &g})
	if err != nil {
		t.Fatalf("restore to the snapshot's own GTID %s: %v", g, err)
	}
	d := dst.Open(t, "")
	if n := queryString(t, d, "SELECT COUNT(*) FROM shop.t"); n != "2" || res.Replayed != 0 {
		t.Fatalf("restored %s rows after replaying %d transactions; want the snapshot's 2 and none replayed", n, res.Replayed)
	}
	if got := queryString(t, d, "SELECT @@GLOBAL.gtid_slave_pos"); got != m.GTIDPos {
		t.Fatalf("target at %s, want %s", got, m.GTIDPos)
	}
}

// The chunks a replay needs are found by position, not by commit time: a
// statement that ran for minutes across the snapshot carries a commit time
// from before it. Here every chunk's key claims a time in 1970: a time bound
// would skip them all and restore the snapshot alone, silently.
func TestChunksChosenByPosition(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT)")
	e.ship(t)
	e.backup(t)
	for range 5 {
		testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
	}
	e.waitShipped(t)
	e.stop()
	dir := filepath.Join(e.dirs[0], "shop", "binlog")
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		t.Fatalf("no chunks in %s: %v", dir, err)
	}
	for _, en := range entries {
		seq, rest, ok := strings.Cut(en.Name(), "-")
		if !ok || len(rest) < 10 {
			continue
		}
		if err := os.Rename(filepath.Join(dir, en.Name()), filepath.Join(dir, seq+"-0000000000"+rest[10:])); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.restore(t, 0, dst, binlog.StopAt{})
	if err != nil {
		t.Fatal(err)
	}
	if n := queryString(t, dst.Open(t, ""), "SELECT COUNT(*) FROM shop.t"); n != "5" || res.GTIDPos != gtidPos(t, e.db).String() {
		t.Fatalf("restored %s rows to %s; want 5 at %s", n, res.GTIDPos, gtidPos(t, e.db))
	}
}

// A part whose checksum fails at its end leaves none of its rows in the
// target: LOAD DATA runs in a transaction committed only after the check.
func TestDamagedPartLeavesNoRows(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE DATABASE seq", "CREATE TABLE shop.t (id INT PRIMARY KEY, v CHAR(32))",
		"INSERT INTO shop.t SELECT seq, MD5(seq) FROM seq.seq_1_to_20000")
	m, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: e.regions, Log: testenv.Logger(t), RangeRows: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var part string
	for _, tp := range m.Tables {
		if tp.Name == "t" && len(tp.Parts) == 1 {
			part = filepath.Join(e.dirs[1], filepath.FromSlash(tp.Parts[0].Key))
		}
	}
	if part == "" {
		t.Fatalf("no single part of shop.t in %+v", m.Tables)
	}
	b, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff // the end of the frame: every row reads before the check fails
	os.WriteFile(part, b, 0o600)
	_, err = mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: e.regions[1], TargetDSN: dst.DSN(""), NoReplay: true, Log: testenv.Logger(t)})
	if err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Fatalf("restore of a damaged part: %v, want a checksum error", err)
	}
	if n := queryString(t, dst.Open(t, ""), "SELECT COUNT(*) FROM shop.t"); n != "0" {
		t.Fatalf("the damaged part left %s rows in the target", n)
	}
}

// A chunk missing after the snapshot: a restore to the newest binlog refuses
// before it loads anything, naming the gap; with AcceptGap it replays up to
// the gap and reports it.
func TestRestoreRefusesBinlogGap(t *testing.T) {
	src, dst, partial := &testenv.MariaDB{}, &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst, partial)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT)")
	e.ship(t)
	e.backup(t)
	for range 4 {
		testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
		e.waitShipped(t)
		time.Sleep(2 * flushInterval) // one chunk each
	}
	e.stop()
	dir := filepath.Join(e.dirs[0], "shop", "binlog")
	entries, _ := os.ReadDir(dir)
	if len(entries) < 4 {
		t.Fatalf("%d chunks, want at least 4", len(entries))
	}
	victim := entries[len(entries)-2].Name()
	if err := os.Remove(filepath.Join(dir, victim)); err != nil {
		t.Fatal(err)
	}
	// drctl status reads DurableEnd: it stops before the gap and names it.
	newest := gtidPos(t, e.db)
	end, _, gap, ok, err := (&binlog.Catalog{Pipeline: e.regions[0].Pipeline, Cluster: "shop"}).DurableEnd(context.Background())
	if err != nil || !ok || gap == "" || end.Covers(newest) {
		t.Fatalf("DurableEnd across a gap = %s, gap %q, %v, %v; want a position before %s and the gap named", end, gap, ok, err, newest)
	}
	_, err = e.restore(t, 0, dst, binlog.StopAt{})
	if !errors.Is(err, snapshots.ErrGap) || !strings.Contains(err.Error(), "--accept-gap") {
		t.Fatalf("restore across a binlog gap: %v; want a refusal naming --accept-gap", err)
	}
	if n := queryString(t, dst.Open(t, ""), "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'"); n != "0" {
		t.Fatal("the refused restore loaded the snapshot")
	}
	res, err := mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: e.regions[0], TargetDSN: partial.DSN(""), AcceptGap: true, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatalf("restore with AcceptGap: %v", err)
	}
	n := queryString(t, partial.Open(t, ""), "SELECT COUNT(*) FROM shop.t")
	if n == "0" || n == "4" || res.Reach == nil || res.Reach.Gap == "" {
		t.Fatalf("AcceptGap restored %s of 4 rows (reach %+v); want those before the gap", n, res.Reach)
	}
}

// A target time past what the region holds is refused before anything is
// loaded, naming the newest restorable time (drctl exits 3 for it); a
// damaged newest manifest is skipped, the restore uses the older backup and
// replays the binlog from it, and asking for the damaged one by id says so.
func TestRestoreTargetAndDamagedManifest(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT)")
	e.ship(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
	older := e.backup(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
	newer := e.backup(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
	e.waitShipped(t)
	if older.ID == newer.ID { // two backups within a second shared one folder
		t.Fatalf("two backups got one id %s", older.ID)
	}

	future := time.Now().Add(time.Hour)
	_, err := e.restore(t, 1, dst, binlog.StopAt{Time: future})
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "newest restorable time") {
		t.Fatalf("restore to an hour from now: %v; want not found, naming the newest restorable time", err)
	}
	if n := queryString(t, dst.Open(t, ""), "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'"); n != "0" {
		t.Fatal("the refused restore loaded the snapshot")
	}

	manifest := filepath.Join(e.dirs[1], "shop", "base", newer.ID, "manifest.json")
	b, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manifest, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: e.regions[1], TargetDSN: dst.DSN(""), BackupID: newer.ID, Log: testenv.Logger(t)})
	if err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("restore of the damaged backup by id: %v; want it named damaged", err)
	}
	res, err := e.restore(t, 1, dst, binlog.StopAt{})
	if err != nil {
		t.Fatalf("restore with the newest manifest damaged: %v", err)
	}
	if res.Backup.ID != older.ID {
		t.Errorf("restored backup %s, want the older intact %s", res.Backup.ID, older.ID)
	}
	if n := queryString(t, dst.Open(t, ""), "SELECT COUNT(*) FROM shop.t"); n != "3" {
		t.Fatalf("restored %s rows, want 3 (the older backup's 1 and 2 replayed)", n)
	}
}
