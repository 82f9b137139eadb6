package mysql

import (
	"fmt"
	"testing"
)

func TestParseChunkBase(t *testing.T) {
	for _, tc := range []struct {
		base  string
		seq   uint64
		last  int64
		fence uint64
		ok    bool
	}{
		{"000000000007-1733500000", 7, 1733500000, 0, true},
		{"000000000007-1733500000-f3", 7, 1733500000, 3, true},
		{"000000000007-1733500000-f0", 0, 0, 0, false}, // fences start at 1
		{"000000000007-1733500000-fx", 0, 0, 0, false},
		{"000000000007", 0, 0, 0, false},
		{"x-1", 0, 0, 0, false},
	} {
		seq, last, fence, ok := parseChunkBase(tc.base)
		if ok != tc.ok || (ok && (seq != tc.seq || last != tc.last || fence != tc.fence)) {
			t.Errorf("parseChunkBase(%q) = %d, %d, %d, %v", tc.base, seq, last, fence, ok)
		}
	}
}

// TestFenceLatest: of chunks numbered alike, the newest lease holder's
// counts; a lone chunk counts whatever its fence, and equal fences are all
// kept for the continuity check to judge.
func TestFenceLatest(t *testing.T) {
	refs := []ChunkRef{
		{Seq: 1, Fence: 1}, {Seq: 2, Fence: 1},
		{Seq: 3, Fence: 1}, {Seq: 3, Fence: 2}, // the old holder's late upload of 3
		{Seq: 4, Fence: 2},
		{Seq: 5, Fence: 0}, // ha turned off: no fence, still counts
		{Seq: 6, Fence: 0}, {Seq: 6, Fence: 0},
	}
	kept, late := fenceLatest(refs)
	if got := fmt.Sprint(kept); got != fmt.Sprint([]ChunkRef{refs[0], refs[1], refs[3], refs[4], refs[5], refs[6], refs[7]}) {
		t.Errorf("kept %v", got)
	}
	if len(late) != 1 || late[0] != refs[2] {
		t.Errorf("late %v, want the fence-1 chunk 3", late)
	}
}

func FuzzChunkBase(f *testing.F) {
	for _, s := range []string{"000000000007-1733500000", "000000000007-1733500000-f3", "1-2-f", "-", "1--f1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		seq, last, fence, ok := parseChunkBase(base)
		if !ok {
			return
		}
		// What parses names the same chunk when written back.
		again := fmt.Sprintf("%012d-%010d", seq, last)
		if fence > 0 {
			again += fmt.Sprintf("-f%d", fence)
		}
		s2, l2, f2, ok2 := parseChunkBase(again)
		if !ok2 || s2 != seq || l2 != last || f2 != fence {
			t.Fatalf("%q parsed as %d %d %d, which writes back as %q", base, seq, last, fence, again)
		}
	})
}
