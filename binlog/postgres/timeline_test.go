package postgres

import (
	"slices"
	"strings"
	"testing"
)

func TestParseHistoryAndTimelineOf(t *testing.T) {
	h := "1\t0/3000158\tno recovery target specified\n\n2\t0/5800000\tbefore 2026-11-21\n"
	lin, err := ParseHistory(strings.NewReader(h), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(lin) != 3 || lin[0].TLI != 1 || lin[1].Begin != LSN(0x3000158) || lin[2].TLI != 3 || lin[2].Begin != LSN(0x5800000) {
		t.Fatalf("lineage = %+v", lin)
	}
	for no, want := range map[uint64]uint32{1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 9: 3} {
		if got := TimelineOf(lin, no, seg16); got != want {
			t.Errorf("TimelineOf(segment %d) = %d, want %d", no, got, want)
		}
	}
}

func TestContinuity(t *testing.T) {
	lin := []TimelineBegin{{TLI: 1}, {TLI: 2, Begin: LSN(3*seg16 + 100)}}
	objs := []WALObject{
		wal("000000010000000000000001", false, 0, 0),
		wal("000000010000000000000002", false, 0, 0),
		wal("000000010000000000000003", true, 0, 100), // the old timeline's last, partial: not needed
		wal("000000020000000000000003", false, 0, 0),
		wal("000000020000000000000005", false, 0, 0), // 4 is missing
		// Sealed, its chunks not compacted yet: whole.
		wal("000000020000000000000006", true, 0, seg16/2),
		wal("000000020000000000000006", true, seg16/2, seg16),
		wal("000000020000000000000007", true, 0, 100), // sealed with only its start: missing
		wal("000000020000000000000008", true, 0, 4096),
	}
	found, problems, last := Continuity(objs, lin, LSN(seg16+10), seg16)
	if found != 5 || last != "000000020000000000000008" {
		t.Fatalf("found %d, last %s", found, last)
	}
	want := []SegmentStatus{{"000000020000000000000004", Missing}, {"000000020000000000000007", Missing}, {"000000020000000000000008", Uploading}}
	if !slices.Equal(problems, want) {
		t.Fatalf("problems = %+v, want %+v", problems, want)
	}
}

func TestDurableEndOnLineage(t *testing.T) {
	lin := []TimelineBegin{{TLI: 1}, {TLI: 2, Begin: LSN(3*seg16 + 100)}}
	objs := []WALObject{
		wal("000000010000000000000002", false, 0, 0),
		wal("000000010000000000000003", true, 0, 100), // TL1's end: read from TL2's file instead
		wal("000000010000000000000004", false, 0, 0),  // an abandoned branch of TL1
	}
	if end, ok := DurableEndOnLineage(objs, lin, seg16); !ok || end != LSN(3*seg16) {
		t.Fatalf("before TL2's first segment: %s, %v; want the start of segment 3", end, ok)
	}
	objs = append(objs, wal("000000020000000000000003", false, 0, 0), wal("000000020000000000000004", true, 0, 50))
	if end, ok := DurableEndOnLineage(objs, lin, seg16); !ok || end != LSN(4*seg16+50) {
		t.Fatalf("after TL2 streamed: %s, %v", end, ok)
	}
}

func TestChunkedSegments(t *testing.T) {
	lin := []TimelineBegin{{TLI: 1}}
	objs := []WALObject{
		wal("000000010000000000000001", false, 0, 0),
		wal("000000010000000000000002", true, 0, seg16/2), // sealed, as chunks: compact it
		wal("000000010000000000000002", true, seg16/2, seg16),
		wal("000000010000000000000003", false, 0, 0), // whole, chunks not deleted yet
		wal("000000010000000000000003", true, 0, seg16),
		wal("000000010000000000000004", true, 0, 100),   // a gap: nothing to compact
		wal("000000010000000000000005", true, 0, seg16), // the newest: the stream's
	}
	got := ChunkedSegments(objs, lin, seg16)
	if len(got) != 1 || got[0] != (Segment{TLI: 1, No: 2}) {
		t.Fatalf("ChunkedSegments = %+v, want segment 2", got)
	}
}
