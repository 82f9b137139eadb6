package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	driver "github.com/go-sql-driver/mysql"

	"github.com/drkit/drkit/internal/testenv"
)

// TestDumpConnReadsTheBinlogAsStored reads a real server's binlog through
// dumpConn, holding every event while later ones are read (as transactions
// do), and compares each with the bytes at its position in the server's
// binlog files: small events packed into shared buffers, events larger than a
// buffer's free space, an event longer than one protocol packet (sent as
// continuation packets), a rotation, and the start from a GTID position.
func TestDumpConnReadsTheBinlogAsStored(t *testing.T) {
	m := testenv.StartMariaDB(t)
	testenv.Exec(t, m.Open(t, ""), "SET GLOBAL max_allowed_packet = 67108864")
	db := m.Open(t, "") // sessions that take the new limit
	testenv.Exec(t, db, "CREATE DATABASE shop", "CREATE TABLE shop.t (id INT PRIMARY KEY AUTO_INCREMENT, v LONGBLOB)")
	from := gtidPos(t, db, "gtid_binlog_pos")
	// 3,000 rows of 600 bytes fill several 1 MiB buffers; the 300 kB and
	// 2 MB values do not fit one's free space.
	for i := range 3000 {
		testenv.Exec(t, db, "INSERT INTO shop.t (v) VALUES (REPEAT('x', 600))")
		switch i {
		case 1000:
			testenv.Exec(t, db, "INSERT INTO shop.t (v) VALUES (REPEAT('y', 300000))")
		case 2000:
			testenv.Exec(t, db, "FLUSH BINARY LOGS", "INSERT INTO shop.t (v) VALUES (REPEAT('z', 2000000))")
		case 2500: // a rows event over 16 MiB: two packets
			testenv.Exec(t, db, "INSERT INTO shop.t (v) VALUES (REPEAT('w', 17000000))")
		}
	}
	want := gtidPos(t, db, "gtid_binlog_pos")

	d := dial(t, m, 99001, from)
	type event struct {
		file string
		ev   []byte
	}
	var evs []event
	var file string
	a := &assembler{}
	got := from.Clone()
	for !got.Covers(want) {
		ev, err := d.next()
		if err != nil {
			t.Fatalf("after %d events: %v", len(evs), err)
		}
		evs = append(evs, event{file, ev})
		if ev[4] == evRotate { // it is the last event of the file it leaves
			// mysql-bin.000001, maybe followed by a checksum
			name := string(ev[headerLen+8:])
			file = name[:strings.IndexByte(name, '.')+7]
		}
		tx, err := a.feed(ev)
		if err != nil {
			t.Fatal(err)
		}
		if tx != nil {
			got.Advance(tx.GTID)
		}
	}

	files := map[string][]byte{}
	compared, large, huge := 0, 0, 0
	for i, e := range evs {
		pos := binary.LittleEndian.Uint32(e.ev[13:])
		if flags := binary.LittleEndian.Uint16(e.ev[17:]); pos == 0 || flags&0x20 != 0 || e.ev[4] == evFormatDescription {
			// made up for the stream (LOG_EVENT_ARTIFICIAL_F: the first
			// rotation and GTID list) or re-flagged by the server (the
			// format description's "in use" flag)
			continue
		}
		data, ok := files[e.file]
		if !ok {
			var err error
			if data, err = os.ReadFile(filepath.Join(m.Dir, "data", e.file)); err != nil {
				t.Fatal(err)
			}
			files[e.file] = data
		}
		if int(pos) > len(data) || !bytes.Equal(data[int(pos)-len(e.ev):pos], e.ev) {
			t.Fatalf("event %d (type %d, %d bytes) differs from %s at %d", i, e.ev[4], len(e.ev), e.file, pos)
		}
		compared++
		if len(e.ev) > 64<<10 {
			large++
		}
		if len(e.ev) > maxPayload {
			huge++
		}
	}
	if len(files) != 2 || compared < 3000*4 || large != 3 || huge != 1 {
		t.Fatalf("compared %d events (%d over 64 kB, %d over 16 MiB) in %d files; want over 12000 (3, 1) in 2", compared, large, huge, len(files))
	}
}

// TestDumpConnNamesServerErrors starts a dump from a position whose binlog
// the server purged: the error is the server's, not a broken stream.
func TestDumpConnNamesServerErrors(t *testing.T) {
	m := testenv.StartMariaDB(t)
	db := m.Open(t, "")
	testenv.Exec(t, db, "CREATE DATABASE shop")
	start := gtidPos(t, db, "gtid_binlog_pos")
	testenv.Exec(t, db, "CREATE TABLE shop.t (id INT PRIMARY KEY)", "FLUSH BINARY LOGS", "INSERT INTO shop.t VALUES (1)")
	purgeBinlogs(t, db)
	d := dial(t, m, 99002, start)
	var err error
	// The rotation and format description of the first file may come first.
	for range 5 {
		if _, err = d.next(); err != nil {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "binlog dump") || !strings.Contains(err.Error(), "1236") {
		t.Fatalf("got %v; want the server's error 1236 for the binlog dump", err)
	}
	t.Log(err)
}

// dial opens a dump connection to m as replica id from start, closed when
// the test ends.
func dial(t *testing.T, m *testenv.MariaDB, id uint32, start Pos) *dumpConn {
	t.Helper()
	cfg, err := driver.ParseDSN(m.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	d, err := openDump(context.Background(), cfg, id, start)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}

// purgeBinlogs rotates the binlog and purges every file before the new one,
// as binlog_expire_logs_seconds does on a long-running server.
func purgeBinlogs(t *testing.T, db *sql.DB) {
	t.Helper()
	testenv.Exec(t, db, "FLUSH BINARY LOGS")
	var file, doDB, ignoreDB string
	var pos int64
	if err := db.QueryRow("SHOW MASTER STATUS").Scan(&file, &pos, &doDB, &ignoreDB); err != nil {
		t.Fatal(err)
	}
	testenv.Exec(t, db, "PURGE BINARY LOGS TO '"+file+"'")
}
