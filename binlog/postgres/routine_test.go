package postgres

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/drkit/drkit/internal/testenv"
)

// TestRoutineScannerReadsRealWAL writes heartbeats, a checkpoint, a user's
// insert, a user's transaction that also writes the heartbeat, and a record
// spanning pages into one segment of a real server, then feeds the segment
// file to the scanner in random pieces: it must read as many records as
// pg_waldump does and call exactly the heartbeat stretches routine.
func TestRoutineScannerReadsRealWAL(t *testing.T) {
	pg, conn := startPG(t, noAutovacuum)
	ctx := context.Background()
	testenv.PGExec(t, conn, "CREATE TABLE drkit_heartbeat (cluster text PRIMARY KEY, beat_us bigint NOT NULL)")
	testenv.PGExec(t, conn, "CREATE TABLE t (id int PRIMARY KEY, v text)")
	testenv.PGExec(t, conn, "INSERT INTO drkit_heartbeat VALUES ('orders', 0)")
	files, err := HeartbeatTable{DSN: pg.DSN("postgres"), Table: "drkit_heartbeat"}.lookup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(files.rels) != 2 {
		t.Fatalf("heartbeat files %v: want the heap and its primary key", files.rels)
	}

	testenv.PGExec(t, conn, "SELECT pg_switch_wal()")
	start := insertLSN(t, conn)
	segName := walFileName(t, conn, start)
	beats := func(n int) LSN {
		for i := range n {
			if _, err := conn.Exec(ctx, "INSERT INTO drkit_heartbeat VALUES ('orders', $1) ON CONFLICT (cluster) DO UPDATE SET beat_us = EXCLUDED.beat_us", i+1); err != nil {
				t.Fatal(err)
			}
		}
		return insertLSN(t, conn)
	}
	type mark struct {
		at      LSN
		routine bool
		what    string
	}
	var marks []mark
	add := func(at LSN, routine bool, what string) { marks = append(marks, mark{at, routine, what}) }
	first := beats(1) // the segment's first records: whatever the server wrote
	add(beats(80), true, "80 heartbeats")
	testenv.PGExec(t, conn, "CHECKPOINT")
	add(beats(80), true, "a checkpoint and 80 heartbeats (with page images)")
	testenv.PGExec(t, conn, "INSERT INTO t VALUES (1, 'user')")
	add(beats(10), false, "a user's insert among heartbeats")
	add(beats(10), true, "10 heartbeats")
	testenv.PGExec(t, conn, "BEGIN")
	testenv.PGExec(t, conn, "INSERT INTO t VALUES (2, 'user and heartbeat')")
	add(insertLSN(t, conn), false, "a user's open transaction")
	add(beats(1), false, "the same transaction writing the heartbeat")
	testenv.PGExec(t, conn, "COMMIT")
	add(insertLSN(t, conn), false, "the commit of a transaction that wrote user data")
	testenv.PGExec(t, conn, "SELECT pg_logical_emit_message(true, 'drkit-test', repeat('y', 30000))")
	add(beats(5), false, "a 30 kB record spanning pages")
	add(beats(40), true, "40 heartbeats")
	testenv.PGExec(t, conn, "SELECT pg_switch_wal()")

	seg, err := os.ReadFile(filepath.Join(pg.DataDir, "pg_wal", segName))
	if err != nil {
		t.Fatal(err)
	}
	segStart := uint64(start) / uint64(len(seg)) * uint64(len(seg))
	sc := newRoutineScanner(segStart, uint64(len(seg)))
	sc.SetHeartbeat(files)
	fed := segStart
	feedTo := func(end uint64) {
		for fed < end {
			n := min(end-fed, uint64(1+rand.IntN(3000)))
			sc.Feed(seg[fed-segStart : fed-segStart+n])
			fed += n
		}
	}
	feedTo(uint64(first))
	sc.Reset()
	for _, m := range marks {
		feedTo(uint64(m.at))
		if got := sc.Routine(); got != m.routine {
			t.Errorf("%s (to %s): routine %v, want %v", m.what, m.at, got, m.routine)
		}
		sc.Reset()
	}
	feedTo(segStart + uint64(len(seg)))
	if sc.broken {
		t.Fatalf("the scanner lost its place in %s", segName)
	}

	out, err := osexec.Command(filepath.Join(pg.BinDir, "pg_waldump"), "-p", filepath.Join(pg.DataDir, "pg_wal"), segName).CombinedOutput()
	want := strings.Count(string(out), "rmgr: ")
	if want == 0 {
		t.Fatalf("pg_waldump read nothing: %v\n%s", err, out)
	}
	if sc.records != want {
		t.Errorf("the scanner read %d records, pg_waldump %d", sc.records, want)
	}
	t.Logf("%s: %d records read, as pg_waldump", segName, sc.records)

	// A scan that starts on a page continuing a record (the 30 kB one, or
	// any other) skips the rest of it, calls that stretch a user's, and
	// reads the records after it as pg_waldump does from there.
	page := uint64(0)
	for p := uint64(8192); p < uint64(len(seg)); p += 8192 {
		if binary.LittleEndian.Uint16(seg[p+2:])&xlpFirstIsCont != 0 {
			page = p
			break
		}
	}
	if page == 0 {
		t.Fatal("no page of the segment continues a record, though one is 30 kB")
	}
	from := segStart + page
	sc2 := newRoutineScanner(from, uint64(len(seg)))
	sc2.SetHeartbeat(files)
	sc2.Feed(seg[page:])
	if sc2.broken || sc2.Routine() {
		t.Fatalf("a scan from %s, a page continuing a record: lost its place %v, routine %v", LSN(from), sc2.broken, sc2.Routine())
	}
	out, err = osexec.Command(filepath.Join(pg.BinDir, "pg_waldump"), "-p", filepath.Join(pg.DataDir, "pg_wal"), "-s", LSN(from).String(), segName).CombinedOutput()
	if want := strings.Count(string(out), "rmgr: "); sc2.records != want || want == 0 {
		t.Errorf("from %s the scanner read %d records, pg_waldump %d (%v)", LSN(from), sc2.records, want, err)
	}
}

func walFileName(t *testing.T, conn *pgx.Conn, at LSN) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(context.Background(), "SELECT pg_walfile_name($1::pg_lsn)", at.String()).Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
