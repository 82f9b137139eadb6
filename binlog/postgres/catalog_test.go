package postgres

import (
	"testing"

	"github.com/drkit/drkit/storage"
)

const seg16 = 16 << 20

func TestSegmentNames(t *testing.T) {
	s := SegmentOf(1, LSN(0x1_2300_0000), seg16)
	if got := s.Name(seg16); got != "000000010000000100000023" {
		t.Fatalf("Name = %s", got)
	}
	back, err := ParseSegmentName("000000010000000100000023", seg16)
	if err != nil || back != s {
		t.Fatalf("ParseSegmentName = %+v, %v", back, err)
	}
	if s.Start(seg16) != LSN(0x1_2300_0000) {
		t.Fatalf("Start = %s", s.Start(seg16))
	}
	for name, want := range map[string]bool{"000000010000000100000023": true, "00000002.history": false, "0000000100000001000000ZZ": false} {
		if IsSegmentName(name) != want {
			t.Errorf("IsSegmentName(%s) != %v", name, want)
		}
	}
	if !IsHistoryName("00000002.history") || IsHistoryName("0000000G.history") {
		t.Error("IsHistoryName")
	}
}

func wal(name string, partial bool, from, to uint64) WALObject {
	s, _ := ParseSegmentName(name, seg16)
	if !partial {
		to = seg16
	}
	return WALObject{Name: name, Segment: s, Partial: partial, From: from, To: to, Object: storage.Object{}}
}

func TestDurableEnd(t *testing.T) {
	base := LSN(0x1_0000_0000) // segment ...0100000000
	cases := []struct {
		name string
		objs []WALObject
		want LSN
		ok   bool
	}{
		{"empty", nil, 0, false},
		{"two segments", []WALObject{wal("000000010000000100000000", false, 0, 0), wal("000000010000000100000001", false, 0, 0)}, base + 2*seg16, true},
		{"segment then partials", []WALObject{wal("000000010000000100000000", false, 0, 0), wal("000000010000000100000001", true, 0, 100), wal("000000010000000100000001", true, 100, 250)}, base + seg16 + 250, true},
		{"gap between segments", []WALObject{wal("000000010000000100000000", false, 0, 0), wal("000000010000000100000002", false, 0, 0)}, base + seg16, true},
		{"gap inside partials", []WALObject{wal("000000010000000100000001", true, 0, 100), wal("000000010000000100000001", true, 200, 300)}, base + seg16 + 100, true},
		{"orphan chunk first", []WALObject{wal("000000010000000100000001", true, 100, 300)}, 0, false},
		{"partials superseded by the segment", []WALObject{wal("000000010000000100000000", false, 0, 0), wal("000000010000000100000000", true, 0, 100)}, base + seg16, true},
	}
	for _, tc := range cases {
		got, ok := DurableEnd(tc.objs, 1, seg16)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: DurableEnd = %s, %v; want %s, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseWALKey(t *testing.T) {
	sha := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	w, ok := parseWALKey(storage.ObjectInfo{Key: "c/wal/x", Size: 10}, "000000010000000100000001."+sha+".zst.age", seg16)
	if !ok || w.Partial || w.Object.Compression != "zstd" || w.Object.Encryption != "age" || w.Object.SHA256 != sha || w.Object.PlainSize != seg16 {
		t.Fatalf("segment key parsed as %+v, %v", w, ok)
	}
	w, ok = parseWALKey(storage.ObjectInfo{Key: "c/wal/y", Size: 10}, "000000010000000100000001.partial/00000000-00001000."+sha+".raw", seg16)
	if !ok || !w.Partial || w.From != 0 || w.To != 0x1000 || w.Object.PlainSize != 0x1000 {
		t.Fatalf("partial key parsed as %+v, %v", w, ok)
	}
	if _, ok := parseWALKey(storage.ObjectInfo{}, "000000010000000100000001.nothex.zst", seg16); ok {
		t.Fatal("a name without a SHA-256 was accepted")
	}
	w, ok = parseWALKey(storage.ObjectInfo{}, "00000002.history."+sha+".zst", seg16)
	if !ok || !w.History {
		t.Fatalf("history key parsed as %+v, %v", w, ok)
	}
}
