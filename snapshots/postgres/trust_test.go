package postgres_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	pgwal "github.com/drkit/drkit/binlog/postgres"
	"github.com/drkit/drkit/internal/testenv"
	pgsnap "github.com/drkit/drkit/snapshots/postgres"
)

// exitCodeOf returns a finished command's exit code (0 without an error).
func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	type coder interface{ ExitCode() int }
	if c, ok := err.(coder); ok {
		return c.ExitCode()
	}
	t.Fatal(err)
	return -1
}

func countRows(t *testing.T, conn *pgx.Conn, table string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// wholeSegments lists a region's whole WAL segment objects, oldest first.
func wholeSegments(t *testing.T, walDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(walDir)
	if err != nil {
		t.Fatal(err)
	}
	var whole []string
	for _, en := range entries {
		if !en.IsDir() && pgwal.IsSegmentName(en.Name()[:min(24, len(en.Name()))]) {
			whole = append(whole, en.Name())
		}
	}
	return whole
}

// A segment missing in the middle of a region's WAL: a restore to the newest
// WAL refuses (exit 1) naming the segment and how far it could go, instead of
// promoting a third of the data; status does not count WAL past the gap;
// --accept-gap restores up to the gap and says so; a target past the newest
// WAL is refused before anything is written (exit 3).
func TestRestoreRefusesWALGap(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE big (round int, v text)")
	e.backup(t)
	for round := 1; round <= 4; round++ {
		testenv.PGExec(t, conn, "INSERT INTO big SELECT $1, repeat(md5(g::text), 20) FROM generate_series(1, 20000) g", round)
		testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	}
	testenv.PGExec(t, conn, "INSERT INTO big VALUES (5, 'open segment')")
	e.waitShipped(t, conn)
	want := countRows(t, conn, "big")

	walDir := filepath.Join(e.work, "us", "orders", "wal")
	whole := wholeSegments(t, walDir)
	if len(whole) < 4 {
		t.Fatalf("only %d whole segments", len(whole))
	}
	victim := whole[len(whole)-3]
	if err := os.Remove(filepath.Join(walDir, victim)); err != nil {
		t.Fatal(err)
	}
	seg := victim[:24]

	dir, _, out, err := e.restore(t, "--to-region", "us", "--start")
	if code := exitCodeOf(t, err); code != 1 || !strings.Contains(out, "segment "+seg+" is missing") || !strings.Contains(out, "--accept-gap") {
		t.Fatalf("restore across a gap: exit %d, want 1 naming %s and --accept-gap:\n%s", code, seg, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("the refused restore wrote %d entries into %s", len(entries), dir)
	}

	out, code := e.drctlRun(t, "status", "--json")
	var st []pgsnap.RegionStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st) != 2 {
		t.Fatalf("status --json: exit %d\n%s", code, out)
	}
	byRegion := map[string]pgsnap.RegionStatus{st[0].Region: st[0], st[1].Region: st[1]}
	eu, us := byRegion["eu"], byRegion["us"]
	euEnd, _ := pgwal.ParseLSN(eu.DurableLSN)
	usEnd, _ := pgwal.ParseLSN(us.DurableLSN)
	if !strings.Contains(us.Error, "WAL gap") || !strings.Contains(us.Error, seg) || usEnd >= euEnd || eu.Error != "" {
		t.Fatalf("status does not show the gap: eu %+v, us %+v", eu, us)
	}

	_, port, out, err := e.restore(t, "--to-region", "us", "--start", "--accept-gap")
	if err != nil || !strings.Contains(out, "WARNING: --accept-gap") || !strings.Contains(out, seg) {
		t.Fatalf("restore --accept-gap: %v\n%s", err, out)
	}
	if got := countRows(t, connect(t, port), "big"); got == 0 || got >= want {
		t.Fatalf("--accept-gap restored %d rows; want some, fewer than the %d written", got, want)
	}

	// The intact region restores everything.
	_, port, out, err = e.restore(t, "--to-region", "eu", "--start")
	if err != nil {
		t.Fatalf("restore from eu: %v\n%s", err, out)
	}
	if got := countRows(t, connect(t, port), "big"); got != want {
		t.Fatalf("eu restored %d rows, want %d", got, want)
	}

	// Past the newest WAL: refused with exit 3 before anything is fetched.
	future := time.Now().Add(time.Hour).UTC().Format("2006-01-02 15:04:05.999999+00")
	dir, _, out, err = e.restore(t, "--to-region", "eu", "--target-time", future)
	if code := exitCodeOf(t, err); code != 3 || !strings.Contains(out, "holds no WAL that far") {
		t.Fatalf("restore to a time past the newest WAL: exit %d, want 3:\n%s", code, out)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("the refused restore wrote into %s", dir)
	}

	// A start that fails after the files are written (the port is taken):
	// the folder is left for inspection, and the message says how to retry.
	dir, _, out, err = e.restore(t, "--to-region", "eu", "--start", "--port", strconv.Itoa(e.pg.Port))
	if code := exitCodeOf(t, err); code != 1 || !strings.Contains(out, "was left as it is for inspection") || !strings.Contains(out, dir) || !strings.Contains(out, "To retry") {
		t.Fatalf("a restore whose start fails: exit %d, want 1 naming the folder left and how to retry:\n%s", code, out)
	}
}

// One truncated manifest does not block a region: backups, status and
// restore skip it (and name it), verify reports it, --backup chooses a backup
// explicitly, and backups sort by WAL position, not by the clock of the host
// that took them.
func TestDamagedManifestIsSkipped(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE t (id int)")
	older := e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(1, 100)")
	middle := e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(101, 200)")
	newest := e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(201, 300)")
	e.waitShipped(t, conn)

	// The oldest backup was taken on a host whose clock ran a day fast.
	p := filepath.Join(e.work, "us", "orders", "base", older.ID, "manifest.json")
	var m map[string]any
	b, _ := os.ReadFile(p)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["start_time"] = older.StartTime.Add(24 * time.Hour)
	m["stop_time"] = older.StopTime.Add(24 * time.Hour)
	b, _ = json.Marshal(m)
	os.WriteFile(p, b, 0o600)
	// The newest backup's manifest is cut short.
	p = filepath.Join(e.work, "us", "orders", "base", newest.ID, "manifest.json")
	b, _ = os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o600)

	out, code := e.drctlRun(t, "backups", "--cluster", "orders", "--region", "us", "--json")
	var list []pgsnap.Manifest
	if code != 0 || json.Unmarshal([]byte(out[strings.Index(out, "["):]), &list) != nil {
		t.Fatalf("backups with a damaged manifest: exit %d\n%s", code, out)
	}
	if len(list) != 2 || list[0].ID != older.ID || list[1].ID != middle.ID || !strings.Contains(out, newest.ID) {
		t.Fatalf("backups = %v, want %s then %s by WAL position, and a warning naming %s:\n%s", ids(list), older.ID, middle.ID, newest.ID, out)
	}

	out, code = e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us")
	if code != 1 || !strings.Contains(out, "damaged backup manifest") || !strings.Contains(out, newest.ID) {
		t.Fatalf("verify with a damaged manifest: exit %d\n%s", code, out)
	}
	out, code = e.drctlRun(t, "status", "--json")
	if code != 0 || !strings.Contains(out, "damaged backup manifest") || !strings.Contains(out, `"id": "`+middle.ID+`"`) {
		t.Fatalf("status with a damaged manifest: exit %d\n%s", code, out)
	}

	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil || !strings.Contains(out, "restored backup "+middle.ID) || !strings.Contains(out, "skipped damaged backup manifest") {
		t.Fatalf("restore falls back to %s: %v\n%s", middle.ID, err, out)
	}
	if n := countRows(t, connect(t, port), "t"); n != 300 {
		t.Fatalf("restored %d rows, want 300", n)
	}
	_, _, out, err = e.restore(t, "--to-region", "us", "--backup", newest.ID)
	if code := exitCodeOf(t, err); code == 0 || !strings.Contains(out, "is damaged") {
		t.Fatalf("--backup of the damaged one: exit %d\n%s", code, out)
	}
	_, port, out, err = e.restore(t, "--to-region", "us", "--backup", older.ID, "--start")
	if err != nil || !strings.Contains(out, "restored backup "+older.ID) {
		t.Fatalf("--backup %s: %v\n%s", older.ID, err, out)
	}
	if n := countRows(t, connect(t, port), "t"); n != 300 {
		t.Fatalf("restored %d rows from the oldest backup, want 300", n)
	}
}

func ids(list []pgsnap.Manifest) []string {
	var out []string
	for _, m := range list {
		out = append(out, m.ID)
	}
	return out
}

// A backup of a server that carries recovery targets in postgresql.auto.conf
// and postgresql.conf (a server that was itself restored, or set by hand): a restore resets every
// target it does not set, so neither "multiple recovery targets" nor an old
// target stopping recovery early.
func TestOldRecoveryTargetsAreReset(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "ALTER SYSTEM SET recovery_target_time = '2020-01-01 00:00:00+00'")
	testenv.PGExec(t, conn, "ALTER SYSTEM SET recovery_target_name = 'long-gone'")
	// And one in postgresql.conf itself, which the base backup carries too.
	f, err := os.OpenFile(filepath.Join(e.pg.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\nrecovery_target_xid = '3'\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	testenv.PGExec(t, conn, "CREATE TABLE t (id int)")
	e.backup(t)
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(1, 50)")
	var lsn string
	if err := conn.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	testenv.PGExec(t, conn, "INSERT INTO t SELECT generate_series(51, 80)")
	e.waitShipped(t, conn)

	_, port, out, err := e.restore(t, "--to-region", "us", "--start")
	if err != nil {
		t.Fatalf("restore to the newest WAL: %v\n%s", err, out)
	}
	if n := countRows(t, connect(t, port), "t"); n != 80 {
		t.Fatalf("restored %d rows, want 80", n)
	}
	dir, port, out, err := e.restore(t, "--to-region", "eu", "--target-lsn", lsn, "--start")
	if err != nil {
		auto, _ := os.ReadFile(filepath.Join(dir, "postgresql.auto.conf"))
		t.Fatalf("restore to LSN %s: %v\n%s\npostgresql.auto.conf:\n%s", lsn, err, out, auto)
	}
	if n := countRows(t, connect(t, port), "t"); n != 50 {
		t.Fatalf("restored %d rows to %s, want 50", n, lsn)
	}
}

// verify --all-checksums reads every WAL object and names a flipped one;
// plain verify says it read no WAL.
func TestVerifyAllReadsWAL(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	conn := connect(t, e.pg.Port)
	testenv.PGExec(t, conn, "CREATE TABLE big (v text)")
	e.backup(t)
	for range 2 {
		testenv.PGExec(t, conn, "INSERT INTO big SELECT repeat(md5(g::text), 20) FROM generate_series(1, 20000) g")
		testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	}
	e.waitShipped(t, conn)

	out, code := e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us")
	if code != 0 || !strings.Contains(out, "WAL objects not read") {
		t.Fatalf("plain verify: exit %d\n%s", code, out)
	}
	out, code = e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us", "--all-checksums")
	if code != 0 || !strings.Contains(out, "WAL object(s)") {
		t.Fatalf("verify --all-checksums of a sound region: exit %d\n%s", code, out)
	}
	whole := wholeSegments(t, filepath.Join(e.work, "us", "orders", "wal"))
	victim := whole[len(whole)-1]
	flipByte(t, filepath.Join(e.work, "us", "orders", "wal"), func(rel string) bool { return rel == victim })
	out, code = e.drctlRun(t, "verify", "--cluster", "orders", "--region", "us", "--all-checksums")
	if code != 1 || !strings.Contains(out, "WAL object orders/wal/"+victim) || !strings.Contains(out, "checksum mismatch") {
		t.Fatalf("verify --all-checksums with %s flipped: exit %d\n%s", victim, code, out)
	}
}

// The restored server runs as the folder's owner with no supplementary
// groups: those of the (root) drctl that started it do not follow it.
func TestRestoredServerDropsGroups(t *testing.T) {
	e := newEnv(t)
	e.ship(t)
	e.backup(t)
	dataDir := filepath.Join(testenv.OwnedDir(t, "postgres"), "data")
	if bin, err := pgsnap.BinDir("15"); err == nil {
		testenv.StopDataDir(t, bin, dataDir)
	}
	port := freePort(t)
	cmd := exec.Command(e.drctl, "restore", "--config", e.cfgPath, "--cluster", "orders", "--to-region", "us",
		"--target-dir", dataDir, "--port", strconv.Itoa(port), "--start")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{4242}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	pid, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strings.SplitN(string(pid), "\n", 2)[0], "status"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Groups:") && strings.TrimSpace(strings.TrimPrefix(line, "Groups:")) != "" {
			t.Fatalf("the restored server keeps supplementary groups: %s", line)
		}
	}
	// Recovery ran with replay settings; the server left running has the
	// folder's own.
	var sb string
	if err := connect(t, port).QueryRow(context.Background(), "SHOW shared_buffers").Scan(&sb); err != nil || sb != "128MB" {
		t.Fatalf("the restored server runs with shared_buffers %q (%v), want the folder's 128MB", sb, err)
	}
	var fsync string // the recovery run's fsync=off must not outlive it
	if err := connect(t, port).QueryRow(context.Background(), "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("the restored server runs with fsync %q (%v), want on", fsync, err)
	}
	if log, _ := os.ReadFile(filepath.Join(dataDir, "drkit-restore.log")); !strings.Contains(string(log), "redo done") {
		t.Fatalf("no completed recovery in the server's log:\n%s", log)
	}
}
