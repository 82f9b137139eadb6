package mysql

import (
	"encoding/binary"
	"strings"
	"testing"
)

func rotateEvent(name string, logPos uint32, crc bool) []byte {
	ev := make([]byte, headerLen+8, headerLen+8+len(name)+4)
	ev[4] = evRotate
	binary.LittleEndian.PutUint32(ev[13:], logPos)
	binary.LittleEndian.PutUint64(ev[headerLen:], 4)
	ev = append(ev, name...)
	if crc {
		ev = append(ev, 0xde, 0xad, 0xbe, 0xef)
	}
	binary.LittleEndian.PutUint32(ev[9:], uint32(len(ev)))
	return ev
}

func TestRotateTarget(t *testing.T) {
	for _, tc := range []struct {
		name     string
		logPos   uint32
		crc, ret bool
	}{
		{"mysql-bin.000002", 0, false, false},   // the dump's made-up rotate: no CRC
		{"mysql-bin.000003", 400, true, true},   // a real one in a checksummed binlog
		{"mysql-bin.000004", 400, false, false}, // a real one without
	} {
		ev := rotateEvent(tc.name, tc.logPos, tc.crc)
		h, err := parseHeader(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rotateTarget(ev, h, tc.ret)
		if err != nil || got != tc.name {
			t.Errorf("rotateTarget(%q, log_pos %d, crc %v) = %q, %v", tc.name, tc.logPos, tc.crc, got, err)
		}
	}
	ev := rotateEvent("../../etc\x00passwd", 400, false)
	h, _ := parseHeader(ev)
	if _, err := rotateTarget(ev, h, false); err == nil || !strings.Contains(err.Error(), "not a binlog file") {
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
