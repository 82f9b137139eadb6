package mysql

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"
)

func rotateEvent(name string, logPos uint32, crc bool) []byte {
	ev := make([]byte, headerLen+8, headerLen+8+len(name)+4)
	ev[4] = evRotate
	binary.LittleEndian.PutUint32(ev[13:], logPos)
	binary.LittleEndian.PutUint64(ev[headerLen:], 4)
	ev = append(ev, name...)
	size := len(ev)
	if crc {
		size += 4
	}
	binary.LittleEndian.PutUint32(ev[9:], uint32(size))
	if crc {
		ev = binary.LittleEndian.AppendUint32(ev, crc32.ChecksumIEEE(ev))
	}
	return ev
}

// crcLikeAName finds a rotate of name whose CRC32's four bytes all look like
// part of a binlog name, the case a name-shaped check cannot tell apart.
func crcLikeAName(t *testing.T, logPos uint32) (string, []byte) {
	t.Helper()
	for i := range 1 << 20 {
		name := fmt.Sprintf("mariadb-bin.%06d", i)
		ev := rotateEvent(name, logPos, true)
		if binlogName.Match(ev[len(ev)-4:]) {
			return name, ev
		}
	}
	t.Fatal("no rotate with a name-like CRC in 2^20 names")
	return "", nil
}

func TestRotateTarget(t *testing.T) {
	for _, tc := range []struct {
		name   string
		logPos uint32
		crc    bool
	}{
		{"mysql-bin.000002", 0, false},  // the dump's first made-up rotate
		{"mysql-bin.000005", 0, true},   // a made-up rotate after a checksummed file
		{"mysql-bin.000003", 400, true}, // a real one in a checksummed binlog
		{"mysql-bin.000004", 400, false},
	} {
		ev := rotateEvent(tc.name, tc.logPos, tc.crc)
		h, err := parseHeader(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rotateTarget(ev, h)
		if err != nil || got != tc.name {
			t.Errorf("rotateTarget(%q, log_pos %d, crc %v) = %q, %v", tc.name, tc.logPos, tc.crc, got, err)
		}
	}
	// A made-up rotate whose CRC looks like the end of a name: an ACK naming
	// "mariadb-bin.000043Xy.9" would sort after every position of the real
	// file and release every waiting commit.
	for _, logPos := range []uint32{0, 400} {
		name, ev := crcLikeAName(t, logPos)
		h, _ := parseHeader(ev)
		if got, err := rotateTarget(ev, h); err != nil || got != name {
			t.Errorf("a rotate (log_pos %d) with a name-like CRC: %q, %v; want %q", logPos, got, err, name)
		}
	}
	ev := rotateEvent("../../etc\x00passwd", 400, false)
	h, _ := parseHeader(ev)
	if _, err := rotateTarget(ev, h); err == nil || !strings.Contains(err.Error(), "not a binlog file") {
		t.Errorf("a rotate naming no binlog file: err = %v", err)
	}
}

func TestSemiSyncHeader(t *testing.T) {
	d := &dumpConn{semiSync: true}
	ev, err := d.semiSyncEvent([]byte{0x00, semiSyncMagic, semiSyncAckReq, 'e', 'v'})
	if err != nil || string(ev) != "ev" || !d.ackReq {
		t.Fatalf("flagged event: %q, ackReq %v, %v", ev, d.ackReq, err)
	}
	if ev, err = d.semiSyncEvent([]byte{0x00, semiSyncMagic, 0, 'e'}); err != nil || string(ev) != "e" || d.ackReq {
		t.Fatalf("unflagged event: %q, ackReq %v, %v", ev, d.ackReq, err)
	}
	if _, err := d.semiSyncEvent([]byte{0x00, 0x12, 0x34, 0x56}); err == nil || !strings.Contains(err.Error(), "rpl_semi_sync_master_enabled") {
		t.Fatalf("an event without the header: err = %v", err)
	}
}

// TestAckGoesWithTheTransaction: the position an event asks to be
// acknowledged travels with the transaction it ends, in the binlog file the
// last rotate named.
func TestAckGoesWithTheTransaction(t *testing.T) {
	a := &assembler{semiSync: true}
	if _, err := a.feed(rotateEvent("bin.000007", 0, false)); err != nil {
		t.Fatal(err)
	}
	if a.file != "bin.000007" {
		t.Fatalf("file = %q after the rotate", a.file)
	}
	xid := make([]byte, headerLen+8)
	binary.LittleEndian.PutUint32(xid[13:], 1234)
	a.askedAck(xid)
	if a.ack == nil || *a.ack != (AckPos{File: "bin.000007", Pos: 1234}) {
		t.Fatalf("ack = %+v", a.ack)
	}
}
