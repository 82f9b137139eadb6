package mysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	binlog "github.com/drkit/drkit/binlog/mysql"
	"github.com/drkit/drkit/internal/config"
	"github.com/drkit/drkit/internal/testenv"
	mysnap "github.com/drkit/drkit/snapshots/mysql"
	"github.com/drkit/drkit/storage"
	"github.com/drkit/drkit/storage/file"
)

const flushInterval = 200 * time.Millisecond

// env is a MariaDB source shipping its binlog into two file:// regions.
type env struct {
	src     *testenv.MariaDB
	db      *sql.DB
	dirs    []string
	regions []*storage.Region
	shipper *binlog.Shipper
	stop    func()
}

func newEnv(t *testing.T, src *testenv.MariaDB) *env {
	t.Helper()
	e := &env{src: src, db: src.Open(t, "")}
	for _, name := range []string{"eu", "us"} {
		dir := t.TempDir()
		st, err := file.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		e.dirs = append(e.dirs, dir)
		e.regions = append(e.regions, &storage.Region{Name: name, Store: st, Pipeline: &storage.Pipeline{Store: st, Region: name, Level: 1}})
	}
	return e
}

// ship starts drd's shipper for the source into both regions.
func (e *env) ship(t *testing.T) {
	t.Helper()
	e.shipper = &binlog.Shipper{Cluster: "shop", DSN: e.src.DSN(""), ServerID: 70000 + e.src.ServerID, FlushInterval: flushInterval, Log: testenv.Logger(t)}
	for _, r := range e.regions {
		e.shipper.Targets = append(e.shipper.Targets, &binlog.Target{Catalog: &binlog.Catalog{Pipeline: r.Pipeline, Cluster: "shop"}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.shipper.Run(ctx) }()
	stopped := false
	e.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shipper: %v", err)
		}
	}
	t.Cleanup(e.stop)
	testenv.WaitFor(t, 30*time.Second, "the shipper streams", func() bool { return e.shipper.Ready() == nil })
}

// waitShipped waits until both regions hold the source's current position.
func (e *env) waitShipped(t *testing.T) binlog.Pos {
	t.Helper()
	want := gtidPos(t, e.db)
	testenv.WaitFor(t, 30*time.Second, "both regions hold "+want.String(), func() bool {
		for _, tg := range e.shipper.Targets {
			if p, _, _ := tg.Position(); !p.Covers(want) {
				return false
			}
		}
		return true
	})
	return want
}

func (e *env) backup(t *testing.T) mysnap.Manifest {
	t.Helper()
	m, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: e.src.DSN(""), Regions: e.regions, Log: testenv.Logger(t), RangeRows: 1000})
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return m
}

func (e *env) restore(t *testing.T, region int, target *testenv.MariaDB, stop binlog.StopAt) (mysnap.RestoreResult, error) {
	t.Helper()
	return mysnap.Restore(context.Background(), mysnap.RestoreOptions{
		Cluster: "shop", Region: e.regions[region], TargetDSN: target.DSN(""), Stop: stop, Log: testenv.Logger(t),
	})
}

func gtidPos(t *testing.T, db *sql.DB) binlog.Pos {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT @@GLOBAL.gtid_binlog_pos").Scan(&s); err != nil {
		t.Fatal(err)
	}
	p, err := binlog.ParsePos(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func queryString(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	var s sql.NullString
	if err := db.QueryRow(q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s.String
}

// fingerprint is a digest of a table's contents, comparable across servers.
func fingerprint(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("CHECKSUM TABLE " + table + " EXTENDED")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var name string
	var sum sql.NullString
	if !rows.Next() {
		t.Fatalf("CHECKSUM TABLE %s: no row", table)
	}
	if err := rows.Scan(&name, &sum); err != nil {
		t.Fatal(err)
	}
	return sum.String
}

const schema = `CREATE DATABASE shop;
CREATE TABLE shop.orders (
  id INT PRIMARY KEY AUTO_INCREMENT,
  note VARCHAR(100) CHARACTER SET utf8mb4,
  legacy VARCHAR(20) CHARACTER SET latin1,
  amount DECIMAL(10,2),
  created TIMESTAMP(6) NULL,
  flags BIT(8),
  data BLOB,
  doubled INT AS (id * 2) VIRTUAL
) ENGINE=InnoDB;
CREATE TABLE shop.audit (n INT PRIMARY KEY AUTO_INCREMENT, order_id INT, at DATETIME);
CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.orders FOR EACH ROW INSERT INTO shop.audit (order_id, at) VALUES (NEW.id, NOW());
CREATE VIEW shop.big AS SELECT id, amount FROM shop.orders WHERE amount > 100;
CREATE VIEW shop.big_ids AS SELECT id FROM shop.big;
CREATE FUNCTION shop.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
CREATE USER 'app'@'%' IDENTIFIED BY 's3cret';
GRANT SELECT, INSERT ON shop.* TO 'app'@'%'`

// seed writes rows whose bytes are hard to carry: tabs, newlines, backslashes,
// NUL, NULL, non-ASCII text in two character sets, BIT values, binary.
func seed(t *testing.T, db *sql.DB) {
	t.Helper()
	for _, q := range strings.Split(schema, ";\n") {
		testenv.Exec(t, db, q)
	}
	testenv.Exec(t, db,
		`SET time_zone='+05:00'`,
		`INSERT INTO shop.orders (note, legacy, amount, created, flags, data) VALUES
		 ('tab\there', 'caf\xe9', 10.50, '2026-01-02 03:04:05.123456', b'10100101', X'00FF5C0A09'),
		 ('new\nline \\ back', NULL, 250.00, NULL, b'0', NULL),
		 ('ünïcödé 😀', 'plain', NULL, '2026-06-01 00:00:00', NULL, X''),
		 ('\\N literal', '', 0.01, '1999-12-31 23:59:59', b'11111111', X'5C4E')`,
		`SET time_zone=SYSTEM`)
}

func TestSnapshotAndPITR(t *testing.T) {
	src := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	byTime := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	byGTID := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	latest := &testenv.MariaDB{Args: []string{"--gtid-strict-mode=ON"}}
	testenv.Start(t, src, byTime, byGTID, latest)
	e := newEnv(t, src)
	seed(t, e.db)
	e.ship(t)
	m := e.backup(t)
	if m.Rows != 4+4 { // 4 orders, 4 audit rows
		t.Fatalf("backup has %d rows, want 8", m.Rows)
	}

	// After the snapshot: DDL, a rotation, and transactions a second apart.
	testenv.Exec(t, e.db,
		"ALTER TABLE shop.orders ADD COLUMN qty INT NOT NULL DEFAULT 1",
		"FLUSH BINARY LOGS",
		"INSERT INTO shop.orders (note, qty) VALUES ('before target', 5)")
	gtidA := gtidPos(t, e.db)
	time.Sleep(1100 * time.Millisecond)
	mid := time.Now()
	time.Sleep(1100 * time.Millisecond)
	testenv.Exec(t, e.db, "INSERT INTO shop.orders (note, qty) VALUES ('after target', 6)", "DELETE FROM shop.orders WHERE id = 1")
	all := fingerprint(t, e.db, "shop.orders")
	e.waitShipped(t)

	t.Run("target time between two commits", func(t *testing.T) {
		res, err := e.restore(t, 0, byTime, binlog.StopAt{Time: mid})
		if err != nil {
			t.Fatal(err)
		}
		d := byTime.Open(t, "")
		if got := queryString(t, d, "SELECT GROUP_CONCAT(note ORDER BY id) FROM shop.orders WHERE note LIKE '%target'"); got != "before target" {
			t.Fatalf("rows around the target: %q, want only 'before target'", got)
		}
		if res.Replayed != 2 { // the ALTER and the first insert (its trigger is inside it)
			t.Fatalf("replayed %d transactions, want 2", res.Replayed)
		}
		if n := queryString(t, d, "SELECT COUNT(*) FROM shop.audit"); n != "5" {
			t.Fatalf("audit has %s rows, want 5 (4 loaded + 1 replayed; the trigger must not fire on load)", n)
		}
	})

	t.Run("target GTID", func(t *testing.T) {
		g := gtidA[0]
		if _, err := e.restore(t, 0, byGTID, binlog.StopAt{GTID: &g}); err != nil {
			t.Fatal(err)
		}
		d := byGTID.Open(t, "")
		if got := queryString(t, d, "SELECT @@GLOBAL.gtid_slave_pos"); got != gtidA.String() {
			t.Fatalf("target at %s, want %s", got, gtidA)
		}
		if got := queryString(t, d, "SELECT COUNT(*) FROM shop.orders"); got != "5" {
			t.Fatalf("%s orders, want 5", got)
		}
	})

	t.Run("latest from the second region after the first is lost", func(t *testing.T) {
		if err := os.RemoveAll(e.dirs[0]); err != nil {
			t.Fatal(err)
		}
		res, err := e.restore(t, 1, latest, binlog.StopAt{})
		if err != nil {
			t.Fatal(err)
		}
		d := latest.Open(t, "")
		if got := fingerprint(t, d, "shop.orders"); got != all {
			t.Fatalf("restored orders checksum %s, source %s", got, all)
		}
		if res.GTIDPos != gtidPos(t, e.db).String() {
			t.Fatalf("restored to %s, source at %s", res.GTIDPos, gtidPos(t, e.db))
		}
		// Everything but the rows: values, view chains, routines, users, grants.
		checks := map[string]string{
			"SELECT HEX(data) FROM shop.orders WHERE id = 4":               "5C4E",
			"SELECT note FROM shop.orders WHERE id = 3":                    "ünïcödé 😀",
			"SELECT legacy IS NULL FROM shop.orders WHERE id = 2":          "1",
			"SELECT BIN(flags) FROM shop.orders WHERE id = 4":              "11111111",
			"SELECT UNIX_TIMESTAMP(created) FROM shop.orders WHERE id = 4": "946666799.000000",
			"SELECT COUNT(*) FROM shop.big_ids":                            "1",
			"SELECT shop.twice(21)":                                        "42",
			"SELECT COUNT(*) FROM mysql.user WHERE User = 'app'":           "1",
			"SELECT doubled FROM shop.orders WHERE id = 3":                 "6",
		}
		for q, want := range checks {
			if got := queryString(t, d, q); got != want {
				t.Errorf("%s = %q, want %q", q, got, want)
			}
		}
		// The first row (USAGE) exists with the user alone; the grant is the point.
		if g := queryString(t, d, "SELECT GROUP_CONCAT(PRIVILEGE_TYPE ORDER BY PRIVILEGE_TYPE) FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = \"'app'@'%'\" AND TABLE_SCHEMA = 'shop'"); g != "INSERT,SELECT" {
			t.Errorf("app's privileges on shop: %q, want INSERT,SELECT", g)
		}
	})
}

// TestMillionRows: a table big enough to be split into key ranges and parts,
// read in parallel and loaded in parallel, arrives identical.
func TestMillionRows(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE big", "CREATE DATABASE seq",
		"CREATE TABLE big.t (id BIGINT PRIMARY KEY, k INT, c CHAR(60), pad VARCHAR(30), KEY (k))",
		"INSERT INTO big.t SELECT seq, seq % 1000, MD5(seq), CONCAT('pad-', seq) FROM seq.seq_1_to_1000000",
		"ANALYZE TABLE big.t")
	m, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: e.regions[:1], Log: testenv.Logger(t), PartSize: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	parts := 0
	for _, tp := range m.Tables {
		parts += len(tp.Parts)
	}
	if m.Rows != 1_000_000 || parts < 4 {
		t.Fatalf("backup: %d rows in %d parts, want 1000000 rows in at least 4 parts (key ranges)", m.Rows, parts)
	}
	res, err := mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: e.regions[0], TargetDSN: dst.DSN(""), NoReplay: true, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if res.GTIDPos != m.GTIDPos {
		t.Fatalf("restored at %s, backup at %s", res.GTIDPos, m.GTIDPos)
	}
	if got, want := fingerprint(t, dst.Open(t, ""), "big.t"), fingerprint(t, e.db, "big.t"); got != want {
		t.Fatalf("checksum of big.t: restored %s, source %s", got, want)
	}
}

// TestRestoreRefusesNonEmptyTarget: nothing is changed on a server that
// already holds data.
func TestRestoreRefusesNonEmptyTarget(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY)")
	e.backup(t)
	d := dst.Open(t, "")
	testenv.Exec(t, d, "CREATE DATABASE precious", "CREATE TABLE precious.t (id INT PRIMARY KEY)", "INSERT INTO precious.t VALUES (1)")
	_, err := e.restore(t, 0, dst, binlog.StopAt{})
	if err == nil || !strings.Contains(err.Error(), "precious") || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("restore into a server with data: %v, want a refusal naming the database", err)
	}
	if n := queryString(t, d, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'shop'"); n != "0" {
		t.Fatal("the refused restore created database shop on the target")
	}
}

// TestRetention: the expired backup goes, and so does the binlog only it
// needed; what the kept backup needs stays and still rolls forward.
func TestRetention(t *testing.T) {
	src := &testenv.MariaDB{}
	testenv.Start(t, src)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT)")
	e.ship(t)
	old := e.backup(t)
	for range 3 {
		testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
		e.waitShipped(t)
		time.Sleep(flushInterval) // one chunk each
	}
	time.Sleep(time.Second) // backup ids are per second
	kept := e.backup(t)
	testenv.Exec(t, e.db, "INSERT INTO shop.t VALUES ()")
	e.waitShipped(t)

	p := e.regions[0].Pipeline
	res, err := mysnap.Prune(context.Background(), p, "shop", config.Retention{Full: 1}, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Expired) != 1 || res.Expired[0] != old.ID || res.BinlogChunks < 3 {
		t.Fatalf("prune: expired %v and %d binlog chunks, want [%s] and at least 3", res.Expired, res.BinlogChunks, old.ID)
	}
	rep, err := binlog.Verify(context.Background(), &binlog.Catalog{Pipeline: p, Cluster: "shop"}, binlog.VerifyOptions{})
	if err != nil || len(rep.Problems) > 0 {
		t.Fatalf("verify after prune: %v %v", err, rep.Problems)
	}
	pos, _ := binlog.ParsePos(kept.GTIDPos)
	if err := rep.Covers(pos); err != nil {
		t.Fatalf("the kept backup lost its binlog: %v", err)
	}
	if list, _, _ := mysnap.ListBackups(context.Background(), p, "shop"); len(list) != 1 || list[0].ID != kept.ID {
		t.Fatalf("backups after prune: %v", list)
	}
}

// TestSnapshotCarriesEveryType backs up and restores a row of each type's
// extremes, one of zero and odd values and one of NULLs, and compares every
// value as the servers print it: the load format must not change a value
// (integer bounds, FLOAT and DOUBLE precision, zero dates, negative TIME
// with fractions, YEAR 0000, ENUM ”, JSON, binary bytes, BIT(64)).
func TestSnapshotCarriesEveryType(t *testing.T) {
	src, dst := &testenv.MariaDB{}, &testenv.MariaDB{}
	testenv.Start(t, src, dst)
	e := newEnv(t, src)
	testenv.Exec(t, e.db, "CREATE DATABASE types", `CREATE TABLE types.t (id INT PRIMARY KEY,
		ti TINYINT, tu TINYINT UNSIGNED, si SMALLINT, mi MEDIUMINT, mu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
		bi BIGINT, bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, de DECIMAL(30,10),
		dt DATE, dtm DATETIME, dtm6 DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME, tm3 TIME(3), y YEAR,
		e ENUM('a','b c',''), s SET('x','y','z'), j JSON, b BINARY(4), vb VARBINARY(10), tx TEXT, bt BIT(64))`,
		`SET sql_mode=''; INSERT INTO types.t VALUES
		(1, -128, 0, -32768, -8388608, 0, -2147483648, 0, -9223372036854775808, 0, -3.40282e38, -1.7976931348623157e308,
		 -99999999999999999999.9999999999, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000001',
		 '1970-01-01 00:00:01.001', '-838:59:59', '-838:59:58.999', 1901, 'a', '', '[]', X'00000000', X'', '', b'0'),
		(2, 127, 255, 32767, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
		 3.40282e38, 1.7976931348623157e308, 99999999999999999999.9999999999, '9999-12-31', '9999-12-31 23:59:59',
		 '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07.999', '838:59:59', '838:59:58.999', 2155, 'b c', 'x,y,z',
		 '{"a": [1, 2.5, "x\\ty"]}', X'FFFFFFFF', X'5C0A4E', 'tab\tnl\n\\N', b'1111111111111111111111111111111111111111111111111111111111111111'),
		(3, 0, 1, -1, -1, 1, 0, 1, -1, 1, 0.1, 0.1, 0.0000000001, '0000-00-00', '0000-00-00 00:00:00',
		 '0000-00-00 00:00:00.000000', NULL, '00:00:00', '-00:00:00.500', 0, '', 'y', 'null', X'5C4E0000', X'00',
		 '\\N', b'101'),
		(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
		 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`)
	want := printRows(t, src, "SELECT * FROM types.t ORDER BY id")
	if len(want) != 4 {
		t.Fatalf("source has %d rows, want 4", len(want))
	}
	if _, err := mysnap.Backup(context.Background(), mysnap.BackupOptions{Cluster: "shop", DSN: src.DSN(""), Regions: e.regions[:1], Log: testenv.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	if _, err := mysnap.Restore(context.Background(), mysnap.RestoreOptions{Cluster: "shop", Region: e.regions[0], TargetDSN: dst.DSN(""), NoReplay: true, Log: testenv.Logger(t)}); err != nil {
		t.Fatal(err)
	}
	got := printRows(t, dst, "SELECT * FROM types.t ORDER BY id")
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("row %d restored as\n%q\nsource\n%q", i+1, got, want[i])
		}
	}
}

// printRows returns each row of q as the server prints its values (text
// protocol, bytes as they are, no parseTime), NULL as "NULL".
func printRows(t *testing.T, m *testenv.MariaDB, q string) []string {
	t.Helper()
	db, err := sql.Open("mysql", fmt.Sprintf("root@tcp(127.0.0.1:%d)/", m.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(context.Background(), "SET SESSION character_set_results=binary, time_zone='+00:00'"); err != nil {
		t.Fatal(err)
	}
	rows, err := c.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i, v := range vals {
			if v == nil {
				fmt.Fprintf(&b, "%s=NULL ", cols[i])
			} else {
				fmt.Fprintf(&b, "%s=%q ", cols[i], v)
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
